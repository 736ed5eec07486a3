package limits

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
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"

	"github.com/weir-metrics/weir/internal/flags"
	"github.com/weir-metrics/weir/internal/watch"
)

// DefaultReloadInterval is the default of --receive.limits-config-reload-timer: how often the file is
// re-read without a change notification. Reading an unchanged file costs one hash.
const DefaultReloadInterval = time.Second

// Config says where the limits come from. Without File or Inline nothing is limited.
type Config struct {
	// File is --receive.limits-config-file, watched and reloaded.
	File string
	// Inline is --receive.limits-config: the file's content on the command line (never reloaded).
	Inline string
	// ReloadInterval is --receive.limits-config-reload-timer (zero: DefaultReloadInterval).
	ReloadInterval time.Duration
	// Routers is --receive.limits.routers: how many routers share each tenant's ingestion rate
	// (0: as many as the tenant's hashring has endpoints, for nodes that are router and ingester).
	Routers int
	// RelabelFile and Relabel are Thanos' --receive.relabel-config-file and --receive.relabel-config:
	// a YAML list of relabel_config applied to every tenant's series before its own rules (read at
	// start, as in Thanos).
	RelabelFile string
	Relabel     string
}

// RegisterFlags registers the flags of c on r, with their defaults.
func (c *Config) RegisterFlags(r flags.Registry) {
	r.Flag("receive.limits-config-file", "Path to a YAML file of per-tenant write limits (Thanos' format, with Weir's extensions; see docs/limits.md). Reloaded when it changes: a file that does not parse is refused, logged and counted, and the last good one keeps serving.").
		PlaceHolder("<file-path>").StringVar(&c.File)
	r.Flag("receive.limits-config", "Alternative to --receive.limits-config-file: the limits YAML itself (not reloaded).").
		PlaceHolder("<content>").StringVar(&c.Inline)
	c.ReloadInterval = DefaultReloadInterval
	flags.Duration(r.Flag("receive.limits-config-reload-timer", "How often the limits file is re-read besides change notifications (which make reloads prompt)."), &c.ReloadInterval)
	r.Flag("receive.limits.routers", "How many routers share a tenant's ingestion_rate_limit: each router enforces rate/N (0: N is the number of endpoints of the tenant's hashring, right when every node is router and ingester).").
		Default("0").IntVar(&c.Routers)
	r.Flag("receive.relabel-config-file", "Path to a YAML list of relabel_config applied by routers to every series before it is placed (before each tenant's own relabel_configs of the limits file).").
		PlaceHolder("<file-path>").StringVar(&c.RelabelFile)
	r.Flag("receive.relabel-config", "Alternative to --receive.relabel-config-file: the relabel YAML itself.").
		PlaceHolder("<content>").StringVar(&c.Relabel)
}

// Validate reports the first flag error.
func (c Config) Validate() error {
	switch {
	case c.File != "" && c.Inline != "":
		return errors.New("--receive.limits-config-file and --receive.limits-config: give one of them")
	case c.ReloadInterval < 0:
		return flags.Named("receive.limits-config-reload-timer", fmt.Errorf("%s: must not be negative", c.ReloadInterval))
	case c.Routers < 0:
		return flags.Named("receive.limits.routers", fmt.Errorf("%d: must not be negative", c.Routers))
	case c.RelabelFile != "" && c.Relabel != "":
		return errors.New("--receive.relabel-config-file and --receive.relabel-config: give one of them")
	}
	return nil
}

// relabelRules reads the global relabel rules of c (none: nil).
func (c Config) relabelRules() ([]*relabel.Config, error) {
	data, flag := []byte(c.Relabel), "receive.relabel-config"
	if c.RelabelFile != "" {
		flag = "receive.relabel-config-file"
		var err error
		if data, err = os.ReadFile(c.RelabelFile); err != nil {
			return nil, flags.Named(flag, err)
		}
	}
	if len(data) == 0 {
		return nil, nil
	}
	var rules []*relabel.Config
	if err := yaml.UnmarshalStrict(data, &rules); err != nil {
		return nil, flags.Named(flag, fmt.Errorf("parse relabel YAML: %w", err))
	}
	for i, rc := range rules {
		if rc == nil {
			return nil, flags.Named(flag, fmt.Errorf("rule %d is empty", i))
		}
		if err := rc.Validate(model.UTF8Validation); err != nil {
			return nil, flags.Named(flag, fmt.Errorf("rule %d: %w", i, err))
		}
	}
	return rules, nil
}

// Source serves the current limits (Current: one atomic load) and reloads them from the file. A file
// that cannot be read or parsed is refused: logged once per bad content, counted
// (weir_limits_config_reloads_total{result="failure"}), reported by Err, and the last good snapshot
// keeps serving. A Source is safe for concurrent use.
type Source struct {
	cfg    Config
	logger *slog.Logger
	m      *sourceMetrics
	// relabel are the global relabel rules, put before every tenant's own in each snapshot.
	relabel []*relabel.Config

	cur     atomic.Pointer[Snapshot]
	running atomic.Bool

	mu       sync.Mutex     // serialises loads; guards the fields below
	hash     uint64         // of the content serving
	refusals watch.Refusals // why the file on disk is not the one serving, reported once
}

type sourceMetrics struct {
	reloadsSuccess prometheus.Counter
	reloadsFailure prometheus.Counter
	lastSuccess    prometheus.Gauge
	lastSuccessAt  prometheus.Gauge
	version        prometheus.Gauge
	limits         *prometheus.GaugeVec
}

func newSourceMetrics(reg prometheus.Registerer) *sourceMetrics {
	f := promauto.With(reg)
	reloads := f.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_limits_config_reloads_total",
		Help: "Attempts to load a new limits file, by result (success: new limits serve; failure: the file was refused and the previous limits keep serving).",
	}, []string{"result"})
	return &sourceMetrics{
		reloadsSuccess: reloads.WithLabelValues("success"),
		reloadsFailure: reloads.WithLabelValues("failure"),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_limits_config_last_reload_successful",
			Help: "1 if the last attempt to load the limits file succeeded (or found it unchanged), 0 if it was refused.",
		}),
		lastSuccessAt: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_limits_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful load of the limits file.",
		}),
		version: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_limits_config_version",
			Help: "Version of the limits serving: 1 for the first file loaded, +1 on every change loaded; 0 without limits.",
		}),
		limits: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_limits",
			Help: "The limits serving, whole-cluster figures as in the file, by tenant (\"\" for write.default) and limit; limits that are not set (0) are left out.",
		}, []string{"tenant", "limit"}),
	}
}

// serving exports the limits of snap.
func (m *sourceMetrics) serving(snap *Snapshot) {
	m.limits.Reset()
	export := func(tenantID string, l *Limits) {
		for name, v := range l.values() {
			if v > 0 {
				m.limits.WithLabelValues(tenantID, name).Set(v)
			}
		}
	}
	export("", snap.def)
	for id, l := range snap.tenants {
		export(id, l)
	}
}

// NewSource loads the limits of cfg. A missing or invalid file at start is an error (a node must not
// start unlimited by mistake). Metrics are registered on reg.
func NewSource(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil || reg == nil {
		return nil, errors.New("limits source needs a logger and a registerer")
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	rules, err := cfg.relabelRules()
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, logger: logger.With("component", "limits"), m: newSourceMetrics(reg), relabel: rules}
	switch {
	case cfg.Inline != "":
		if err := s.load([]byte(cfg.Inline)); err != nil {
			return nil, fmt.Errorf("--receive.limits-config: %w", err)
		}
	case cfg.File != "":
		if err := s.Reload(); err != nil {
			return nil, err
		}
	case rules != nil: // relabelling without limits
		if err := s.load(nil); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Current returns the limits serving now; nil (which limits nothing, see Snapshot.For) when none are
// configured.
func (s *Source) Current() *Snapshot {
	if s == nil {
		return nil
	}
	return s.cur.Load()
}

// Config returns the configuration the source was made with.
func (s *Source) Config() Config { return s.cfg }

// Err returns why the last load was refused, or nil when the file on disk is the one serving.
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusals.Err()
}

// Reload reads the file now and serves its limits if its content changed and is valid; it returns
// why a changed file was refused. Without a file it does nothing.
func (s *Source) Reload() error {
	if s.cfg.File == "" {
		return nil
	}
	data, err := os.ReadFile(s.cfg.File)
	if err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.refuse("read "+err.Error(), fmt.Errorf("read limits file: %w", err))
	}
	if err := s.load(data); err != nil {
		return fmt.Errorf("limits file %s: %w", s.cfg.File, err)
	}
	return nil
}

func (s *Source) load(data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := xxhash.Sum64(data)
	prev := s.cur.Load()
	if prev != nil && s.hash == sum {
		s.refusals.Loaded()
		s.m.lastSuccess.Set(1)
		return nil
	}
	next, err := Parse(data)
	if err != nil {
		return s.refuse(fmt.Sprintf("content %x", sum), err)
	}
	next.prependRelabel(s.relabel)
	next.Version, next.LoadedAt = 1, time.Now()
	if prev != nil {
		next.Version = prev.Version + 1
	}
	s.cur.Store(next)
	s.hash = sum
	s.refusals.Loaded()
	s.m.reloadsSuccess.Inc()
	s.m.lastSuccess.Set(1)
	s.m.lastSuccessAt.Set(float64(next.LoadedAt.Unix()))
	s.m.version.Set(float64(next.Version))
	s.m.serving(next)
	s.logger.Info("limits loaded", "version", next.Version, "config_hash", fmt.Sprintf("%016x", sum), "tenants", len(next.tenants))
	if next.MaxConcurrency > 0 {
		s.logger.Warn("write.global.max_concurrency has no effect in Weir: --receive.write-slots bounds the writes decoded and applied at once (503 with Retry-After when none is free in time)", "max_concurrency", next.MaxConcurrency)
	}
	if next.MetaMonitoring {
		s.logger.Warn("write.global.meta_monitoring_* have no effect in Weir: ingesters count head series themselves (head_series_limit is enforced as each ingester's share)")
	}
	return nil
}

// refuse records a refused load; the same failure is logged and counted once. s.mu is held.
func (s *Source) refuse(what string, err error) error {
	s.m.lastSuccess.Set(0)
	if !s.refusals.Refused(what, err) {
		return err
	}
	s.m.reloadsFailure.Inc()
	if cur := s.cur.Load(); cur != nil {
		s.logger.Error("limits file refused; the last good limits keep serving", "file", s.cfg.File, "err", err, "serving_version", cur.Version)
	} else {
		s.logger.Error("limits file refused", "file", s.cfg.File, "err", err)
	}
	return err
}

// Run reloads the file on change notifications and every ReloadInterval until ctx is done; with
// inline limits or none it just waits for ctx. It may be called once.
func (s *Source) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("limits: Source.Run called twice")
	}
	if s.cfg.File == "" {
		<-ctx.Done()
		return nil
	}
	watch.File(ctx, s.cfg.File, s.cfg.ReloadInterval, s.logger, func() { _ = s.Reload() })
	return nil
}
