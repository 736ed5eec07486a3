package hashring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-metrics/weir/internal/watch"
)

// DefaultReloadInterval is how often a FileSource re-reads its file without a change notification
// (the value of Thanos' --receive.hashrings-file-refresh-interval).
const DefaultReloadInterval = 5 * time.Minute

// Snapshot is one loaded hashrings file. Snapshots are immutable; a reload publishes a new one.
type Snapshot struct {
	// Rings places every tenant's series.
	Rings *Rings
	// Version is 1 for the first file loaded and grows by one with every file loaded after it.
	Version uint64
	// ConfigHash is the xxhash64 of the file's bytes.
	ConfigHash uint64
	// LoadedAt is when the file was loaded.
	LoadedAt time.Time
}

// FileConfig configures a FileSource.
type FileConfig struct {
	// Path is the hashrings file (--receive.hashrings-file).
	Path string
	// Interval is how often the file is re-read even when no change was notified (zero:
	// DefaultReloadInterval). Change notifications (fsnotify on the file's directory, which also sees
	// Kubernetes ConfigMap updates) make reloads prompt; the interval is the fallback.
	Interval time.Duration
	// Options are the flags the file is read with.
	Options Options
	// StartDegraded lets NewFileSource succeed when the file is missing or invalid at start: Current
	// is then nil (Err says why) until Run loads a good file. Otherwise that is a start-up error.
	StartDegraded bool
}

// Validate checks the configuration.
func (c FileConfig) Validate() error {
	if c.Path == "" {
		return errors.New("hashrings file: no path")
	}
	if c.Interval < 0 {
		return fmt.Errorf("hashrings file refresh interval %s: must not be negative", c.Interval)
	}
	return c.Options.Validate()
}

// FileSource serves the hashrings of a file and reloads them when the file changes. A new file that
// cannot be read or is invalid is refused: it is logged, counted (weir_hashring_reloads_total
// {result="failure"}) and reported by Err, and the last good snapshot keeps serving. The same bad file
// is reported once, not on every re-read.
//
// Readers call Current (one atomic load) for the snapshot to use, typically once per request, and may
// wait on Changed to learn about new snapshots. All methods are safe for concurrent use.
type FileSource struct {
	cfg    FileConfig
	logger *slog.Logger
	m      *metrics

	cur     atomic.Pointer[Snapshot]
	running atomic.Bool

	mu       sync.Mutex // serialises loads; guards the fields below
	changed  chan struct{}
	refusals watch.Refusals // why the file on disk is not the one serving, reported once
}

// NewFileSource loads cfg.Path and registers the source's metrics on reg (nil: none). A missing or
// invalid file is an error, unless cfg.StartDegraded. No goroutine is started before Run.
func NewFileSource(cfg FileConfig, logger *slog.Logger, reg prometheus.Registerer) (*FileSource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultReloadInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &FileSource{
		cfg:     cfg,
		logger:  logger.With("component", "hashring", "file", cfg.Path),
		m:       newMetrics(),
		changed: make(chan struct{}),
	}
	if err := s.Reload(); err != nil {
		if !cfg.StartDegraded {
			return nil, err
		}
		s.logger.Warn("starting without a hashring; waiting for a valid hashrings file", "err", err)
	}
	if err := s.m.register(reg); err != nil {
		return nil, err
	}
	return s, nil
}

// Current returns the snapshot serving now: nil only when the source started degraded and no valid
// file has been loaded yet.
func (s *FileSource) Current() *Snapshot { return s.cur.Load() }

// Changed returns a channel that is closed when a snapshot newer than the current one is published.
// Call it again after it fires.
func (s *FileSource) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Err returns why the last load was refused, or nil when the file on disk is the one serving. With a
// nil Current, it is the reason there is no ring.
func (s *FileSource) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusals.Err()
}

// Reload reads the file now and publishes a new snapshot if its content changed and is valid. It
// returns the reason a changed file was refused (the last good snapshot keeps serving).
func (s *FileSource) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()

	data, err := os.ReadFile(s.cfg.Path)
	if err != nil {
		return s.refuse("read "+err.Error(), fmt.Errorf("read hashrings file: %w", err))
	}
	sum := xxhash.Sum64(data)
	prev := s.cur.Load()
	if prev != nil && prev.ConfigHash == sum {
		// Unchanged (or changed back to the file serving): nothing to refuse any more.
		s.refusals.Loaded()
		s.m.lastSuccess.Set(1)
		return nil
	}
	rings, err := Load(data, s.cfg.Options)
	if err != nil {
		return s.refuse(fmt.Sprintf("content %x", sum), fmt.Errorf("hashrings file %s: %w", s.cfg.Path, err))
	}

	next := &Snapshot{Rings: rings, Version: 1, ConfigHash: sum, LoadedAt: time.Now()}
	if prev != nil {
		next.Version = prev.Version + 1
	}
	s.cur.Store(next)
	s.refusals.Loaded()
	close(s.changed)
	s.changed = make(chan struct{})
	s.m.serving(next)
	s.m.reloadsSuccess.Inc()
	s.logger.Info("hashrings loaded", "version", next.Version, "config_hash", fmt.Sprintf("%016x", sum), "hashrings", len(rings.Hashrings()))
	return nil
}

// refuse records a failed load. what identifies the failure (the read error, or the refused content),
// so that re-reading the same bad file is not logged and counted again. s.mu is held.
func (s *FileSource) refuse(what string, err error) error {
	s.m.lastSuccess.Set(0)
	if !s.refusals.Refused(what, err) {
		return err
	}
	s.m.reloadsFailure.Inc()
	if cur := s.cur.Load(); cur != nil {
		s.logger.Error("hashrings file refused; the last good one keeps serving", "err", err, "serving_version", cur.Version)
	} else {
		s.logger.Error("hashrings file refused; no hashring is serving", "err", err)
	}
	return err
}

// Run watches the file until ctx is done, reloading it on change notifications (after a short settle
// delay) and every FileConfig.Interval. When change notifications are unavailable (no inotify, or the
// directory does not exist yet) it polls only. Run returns nil when ctx is done; it may be called
// once. It leaves no goroutine behind.
func (s *FileSource) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("hashring: FileSource.Run called twice")
	}
	watch.File(ctx, s.cfg.Path, s.cfg.Interval, s.logger, func() { _ = s.Reload() }) // refusals are logged and counted by Reload
	return nil
}
