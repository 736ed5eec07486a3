package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/weir-metrics/weir/internal/flags"
)

// memLimit is --enable-auto-gomemlimit and --auto-gomemlimit.ratio, as in Thanos: GOMEMLIMIT set to a
// share of the container's memory limit (cgroup v1 or v2; the machine's memory outside a container),
// so that the garbage collector works harder before the kernel's OOM killer ends the process.
type memLimit struct {
	auto  bool
	ratio float64
}

func (m *memLimit) registerFlags(r flags.Registry) {
	r.Flag("enable-auto-gomemlimit", "Set GOMEMLIMIT to --auto-gomemlimit.ratio of the container's memory limit (of the machine's memory outside a container). A GOMEMLIMIT set in the environment wins.").
		Default("false").BoolVar(&m.auto)
	r.Flag("auto-gomemlimit.ratio", "Share of the container's memory limit given to GOMEMLIMIT, in (0, 1]; the rest is head room for memory the Go runtime does not manage.").
		Default("0.9").FloatVar(&m.ratio)
}

func (m memLimit) validate() error {
	if math.IsNaN(m.ratio) || m.ratio <= 0 || m.ratio > 1 {
		return fmt.Errorf("--auto-gomemlimit.ratio: %g is not in (0, 1]", m.ratio)
	}
	return nil
}

// apply sets GOMEMLIMIT when asked to. A limit that cannot be found is logged, not fatal: the node
// runs as it would without the flag.
func (m memLimit) apply(logger *slog.Logger) {
	if !m.auto {
		return
	}
	limit, err := memlimit.Set(memlimit.WithRatio(m.ratio),
		memlimit.WithProvider(memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)))
	switch {
	case err != nil && !errors.Is(err, memlimit.ErrNoLimit):
		logger.Warn("--enable-auto-gomemlimit: GOMEMLIMIT not set", "err", err)
	case limit == math.MaxInt64:
		logger.Info("--enable-auto-gomemlimit: no memory limit found; GOMEMLIMIT stays unlimited")
	default:
		logger.Info("GOMEMLIMIT set", "limit_bytes", limit, "ratio", m.ratio)
	}
}
