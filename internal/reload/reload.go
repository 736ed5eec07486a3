// Package reload keeps a value built from files up to date with them, without a goroutine: the
// files are looked at (os.Stat) by the first use after every check interval, and the value is built
// again when one of them changed. It serves the TLS certificates of the listeners (cert-manager
// rotates them) and the credentials file of the remote-write edge.
//
// A file that changed into something the builder refuses (a half-written certificate, a key that
// does not match, invalid YAML) keeps the last good value serving: the refusal is logged once per
// version of the files and counted (weir_config_reloads_total{result="failure"},
// weir_config_last_reload_successful = 0); the files are tried again when they change again.
//
// Start with New and Value.Get.
package reload

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultInterval is how often the files are looked at, at most: a rotated certificate serves new
// handshakes within this time of its files changing, at the price of a few stat calls a second.
const DefaultInterval = time.Second

// Options configure a Value. Name and Paths are required.
type Options struct {
	// Name says what the files are (the config label of the metrics, e.g. "remote-write-tls").
	Name string
	// Paths are the files the value is built from; empty paths are ignored.
	Paths []string
	// Interval is the least time between two looks at the files (zero: DefaultInterval).
	Interval time.Duration
	// Logger gets a line for each reload and each refused version of the files (nil: none).
	Logger *slog.Logger
	// Registerer gets the reload metrics (nil: none). Several Values may share one: their metrics
	// differ by the config label.
	Registerer prometheus.Registerer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Value is a T built from files by a build function and rebuilt when they change. Get is safe for
// concurrent use; at most one caller at a time looks at the files, and the others keep the current
// value meanwhile.
type Value[T any] struct {
	opts  Options
	build func() (T, error)

	cur     atomic.Pointer[T]
	nextDue atomic.Int64 // unix nanoseconds of the next look at the files

	mu       sync.Mutex // serialises looks at the files; guards the fields below
	seen     []os.FileInfo
	failedOn []os.FileInfo // the version of the files last refused, to report it once
	failedEr string        // or the error that stopped looking at them (a missing file)

	reloads *prometheus.CounterVec
	ok      prometheus.Gauge
	last    prometheus.Gauge
}

// New builds the first value; an error then is a start-up error (the files must be good).
func New[T any](opts Options, build func() (T, error)) (*Value[T], error) {
	if opts.Name == "" || build == nil {
		return nil, errors.New("reload: a value needs a name and a build function")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Logger = opts.Logger.With("config", opts.Name)
	paths := opts.Paths[:0:0]
	for _, p := range opts.Paths {
		if p != "" {
			paths = append(paths, p)
		}
	}
	opts.Paths = paths
	v := &Value[T]{opts: opts, build: build}
	v.newMetrics()
	seen, err := v.stat()
	if err != nil {
		return nil, err
	}
	val, err := build()
	if err != nil {
		return nil, err
	}
	v.publish(seen, val)
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{v.reloads, v.ok, v.last} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("reload %s: metrics: %w", opts.Name, err)
			}
		}
	}
	return v, nil
}

func (v *Value[T]) newMetrics() {
	labels := prometheus.Labels{"config": v.opts.Name}
	v.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "weir_config_reloads_total",
		Help:        "Reloads of configuration files (TLS certificates, credentials) after they changed, by result (success, failure: the previous version keeps serving).",
		ConstLabels: labels,
	}, []string{"result"})
	v.reloads.WithLabelValues("success")
	v.reloads.WithLabelValues("failure")
	v.ok = prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "weir_config_last_reload_successful",
		Help:        "1 if the configuration files as they are now were loaded, 0 if their last change was refused (the previous version serves).",
		ConstLabels: labels,
	})
	v.last = prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "weir_config_last_reload_success_timestamp_seconds",
		Help:        "When the configuration serving now was loaded.",
		ConstLabels: labels,
	})
}

// Get returns the current value, first rebuilding it if the check interval has passed and the files
// changed. It never fails: a refused change keeps the previous value.
func (v *Value[T]) Get() T {
	now := v.opts.Now()
	if now.UnixNano() >= v.nextDue.Load() && v.mu.TryLock() {
		_ = v.check(now) // a refused change is logged and counted by check; the last good value serves
		v.mu.Unlock()
	}
	return *v.cur.Load()
}

// Check looks at the files now, whatever the interval, and returns the error of a refused change
// (nil when nothing changed or the change was loaded). For tests and for callers that were told
// about a change.
func (v *Value[T]) Check() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.check(v.opts.Now())
}

// check must be called with mu held.
func (v *Value[T]) check(now time.Time) error {
	v.nextDue.Store(now.Add(v.opts.Interval).UnixNano())
	seen, err := v.stat()
	if err == nil && sameFiles(seen, v.seen) {
		return nil
	}
	if err == nil {
		var val T
		if val, err = v.build(); err == nil {
			v.publish(seen, val)
			v.reloads.WithLabelValues("success").Inc()
			v.opts.Logger.Info("configuration files changed; reloaded", "files", v.opts.Paths)
			return nil
		}
	}
	v.ok.Set(0)
	if seen != nil && sameFiles(seen, v.failedOn) || seen == nil && err.Error() == v.failedEr {
		return err // reported already
	}
	v.failedOn, v.failedEr = seen, err.Error()
	v.reloads.WithLabelValues("failure").Inc()
	v.opts.Logger.Error("configuration files changed but cannot be loaded; the previous version keeps serving",
		"files", v.opts.Paths, "err", err)
	return err
}

func (v *Value[T]) publish(seen []os.FileInfo, val T) {
	v.cur.Store(&val)
	v.seen, v.failedOn, v.failedEr = seen, nil, ""
	v.ok.Set(1)
	v.last.Set(float64(v.opts.Now().UnixNano()) / 1e9)
}

// stat describes the files as they are now (following symbolic links, as Kubernetes' Secret volumes
// swap a link to a new directory).
func (v *Value[T]) stat() ([]os.FileInfo, error) {
	seen := make([]os.FileInfo, len(v.opts.Paths))
	for i, p := range v.opts.Paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reload %s: %w", v.opts.Name, err)
		}
		seen[i] = fi
	}
	return seen, nil
}

// sameFiles reports whether a and b describe the same versions of the same files: the same inode
// (a replaced file is another one), size and modification time.
func sameFiles(a, b []os.FileInfo) bool {
	if len(a) != len(b) || a == nil || b == nil {
		return false
	}
	for i := range a {
		if !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()) {
			return false
		}
	}
	return true
}
