package hashring

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// StaticSource serves hashrings given once, in Thanos' hashrings JSON, on the command line
// (--receive.hashrings): they never change while the process runs. It has the methods of FileSource
// that a router follows.
type StaticSource struct {
	cur  *Snapshot
	none chan struct{} // never closed: nothing ever changes
}

// NewStaticSource parses data and registers the source's metrics on reg (nil: none). Invalid rings
// are an error: unlike a file, nothing could fix them without a restart.
func NewStaticSource(data []byte, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*StaticSource, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	rings, err := Load(data, opts)
	if err != nil {
		return nil, fmt.Errorf("hashrings: %w", err)
	}
	sum := xxhash.Sum64(data)
	s := &StaticSource{cur: &Snapshot{Rings: rings, Version: 1, ConfigHash: sum, LoadedAt: time.Now()}, none: make(chan struct{})}
	m := newMetrics()
	if err := m.register(reg); err != nil {
		return nil, err
	}
	m.serving(s.cur)
	m.reloadsSuccess.Inc()
	if logger != nil {
		logger.Info("hashrings loaded from the command line", "config_hash", fmt.Sprintf("%016x", sum), "hashrings", len(rings.Hashrings()))
	}
	return s, nil
}

// Current returns the snapshot, never nil.
func (s *StaticSource) Current() *Snapshot { return s.cur }

// Changed returns a channel that is never closed.
func (s *StaticSource) Changed() <-chan struct{} { return s.none }

// Err returns nil: the rings given were valid, or the source does not exist.
func (s *StaticSource) Err() error { return nil }

// Run waits for ctx to be done; there is nothing to watch.
func (s *StaticSource) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
