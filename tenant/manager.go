package tenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/weir-metrics/weir/shipper"
)

// ErrClosed is returned for writes that arrive after the Manager started closing.
var ErrClosed = errors.New("tenant storage is closing")

// ErrUnavailable wraps every failure to open a tenant's TSDB: the tenant is unavailable, the others are not.
var ErrUnavailable = errors.New("tenant storage unavailable")

// ErrNoRoom wraps ErrUnavailable for a tenant not opened because the process is near one of its
// limits (openguard.go). Unlike a tenant that is opening, it stays so until idle tenants are pruned
// or the limit is raised: asking again at once cannot succeed.
var ErrNoRoom = fmt.Errorf("%w: no room for another tenant", ErrUnavailable)

// Config is the storage configuration of an ingester.
type Config struct {
	// Dir holds one TSDB directory per tenant, named by the tenant ID.
	Dir string
	// Retention is how long local blocks are kept.
	Retention time.Duration
	// OutOfOrderWindow accepts samples this much older than a series' newest one (0: none).
	OutOfOrderWindow time.Duration
	// OutOfOrderCapMax is the most samples of an out-of-order chunk (0: the TSDB's default, 32).
	OutOfOrderCapMax int64
	// MaxExemplars sizes each tenant's exemplar buffer; 0 disables exemplar storage.
	MaxExemplars int64
	// MaxBytes bounds the size of each tenant's blocks on disk: the oldest are deleted beyond it, as
	// beyond Retention, and as there never before they reached the bucket (0: no bound).
	MaxBytes int64
	// NoLockfile opens the TSDBs without a lock file in their directory.
	NoLockfile bool
	// MemorySnapshotOnShutdown writes a snapshot of each head (series and chunks) when a TSDB closes,
	// so that the next open replays the snapshot and only the WAL after it.
	MemorySnapshotOnShutdown bool
	// WALCompression compresses WAL records with snappy.
	WALCompression bool
	// LabelName is the external label that names the tenant on its blocks.
	LabelName string
	// ExternalLabels are added to every tenant's external labels (replica labels and the like).
	ExternalLabels labels.Labels
	// OpenConcurrency bounds how many tenants are opened (WAL replay) at once at start-up, and flushed,
	// shipped and closed at once on shutdown.
	OpenConcurrency int
	// HeadCompactionConcurrency bounds how many tenants cut a head into a block at once (compact.go);
	// 0 means 1.
	HeadCompactionConcurrency int
	// StripeSize is the series stripes of every tenant's head (a power of two), or StripeSizeAuto: each
	// head sized from its tenant's WAL when it opens (headsize.go).
	StripeSize int
	// UploadConcurrency is how many files of a block are uploaded at once (0 or 1: one at a time).
	UploadConcurrency int
	// ShipInterval is how often completed blocks are looked for and shipped (with a bucket).
	ShipInterval time.Duration
	// ReservedNames are directory names under Dir that are not tenants (the embedded default's
	// filesystem bucket): no tenant may take them.
	ReservedNames []string
	// IdleTimeout prunes a tenant that received no write for this long: its head is cut into blocks,
	// the blocks are shipped and its TSDB is closed; the next write reopens it. 0: never (see prune.go).
	IdleTimeout time.Duration
	// MinFreeSpace is the free-space reserve of Dir's volume in bytes: below it, writes are refused
	// (ErrUnavailable) until there is room again (space.go). MinFreeSpaceAuto: AutoMinFreeSpace of the
	// volume; 0: never refuse.
	MinFreeSpace int64
}

// Validate reports the first configuration error, naming its flag.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("--tsdb.path is empty")
	case c.Retention < BlockDuration:
		return fmt.Errorf("--tsdb.retention: %s is shorter than one block (%s)", model.Duration(c.Retention), model.Duration(BlockDuration))
	case c.OutOfOrderWindow < 0:
		return fmt.Errorf("--tsdb.out-of-order.time-window: %s is negative", c.OutOfOrderWindow)
	case c.OutOfOrderCapMax < 0:
		return fmt.Errorf("--tsdb.out-of-order.cap-max: %d is negative (0: the default, 32)", c.OutOfOrderCapMax)
	case c.OutOfOrderCapMax > 255:
		return fmt.Errorf("--tsdb.out-of-order.cap-max: %d is above 255, the most an out-of-order chunk holds", c.OutOfOrderCapMax)
	case c.MaxBytes < 0:
		return fmt.Errorf("--tsdb.max-retention-bytes: %d is negative (0: no bound)", c.MaxBytes)
	case c.MaxExemplars < 0:
		return fmt.Errorf("--tsdb.max-exemplars: %d is negative (0 disables exemplar storage)", c.MaxExemplars)
	case c.StripeSize < 0 || (c.StripeSize != StripeSizeAuto && !isPow2(c.StripeSize)):
		return fmt.Errorf("--tsdb.stripe-size: %d is not a power of two (or auto)", c.StripeSize)
	case c.OpenConcurrency < 1:
		return fmt.Errorf("--tsdb.open-concurrency: %d must be at least 1", c.OpenConcurrency)
	case c.HeadCompactionConcurrency < 0:
		return fmt.Errorf("--tsdb.head-compaction-concurrency: %d is negative", c.HeadCompactionConcurrency)
	case c.UploadConcurrency < 0:
		return fmt.Errorf("--shipper.upload-concurrency: %d is negative", c.UploadConcurrency)
	case c.ShipInterval < 0:
		return fmt.Errorf("--shipper.interval: %s is negative", c.ShipInterval)
	case c.IdleTimeout < 0:
		return fmt.Errorf("--tsdb.tenant-idle-timeout: %s is negative (0 disables pruning)", c.IdleTimeout)
	case c.MinFreeSpace < 0 && c.MinFreeSpace != MinFreeSpaceAuto:
		return fmt.Errorf("--tsdb.min-free-space: %d is negative", c.MinFreeSpace)
	}
	if !model.LegacyValidation.IsValidLabelName(c.LabelName) {
		return fmt.Errorf("--receive.tenant-label-name: %q is not a valid label name", c.LabelName)
	}
	if c.ExternalLabels.Has(c.LabelName) {
		return fmt.Errorf("--label: external labels already contain the tenant label %q (--receive.tenant-label-name)", c.LabelName)
	}
	return nil
}

// Manager owns one TSDB per tenant under Config.Dir. A tenant's TSDB is opened on its first write (or
// at start-up when its directory exists), exactly once however many writes race for it, and closed
// again when the tenant has been idle for Config.IdleTimeout (prune.go), to be reopened by its next
// write. The life of a tenant's TSDB is the state machine documented in prune.go.
//
// Lock order: db.mu before Manager.mu (the pruner removes a closed tenant from the map while it holds
// the tenant exclusively); nothing takes a db.mu while holding Manager.mu, and Manager.mu is never held
// while a TSDB opens, flushes or closes.
type Manager struct {
	cfg     Config
	bkt     objstore.Bucket // receives every tenant's completed blocks; nil: blocks stay local only
	logger  *slog.Logger
	metrics *managerMetrics
	// tenantMetrics exposes what each open tenant's TSDB, shipper and limits register (metrics.go).
	tenantMetrics *tenantMetrics
	// now is the clock of idleness (replaced in tests); epoch is its origin, so that db.lastWrite is a
	// monotonic offset rather than a wall-clock time.
	now   func() time.Time
	epoch time.Time
	// pruneInterval is how often Run looks for idle tenants (pruneCheckInterval; shorter in tests).
	pruneInterval time.Duration
	// compactInterval is how often Run looks for heads to compact (headCompactionInterval; shorter in tests).
	compactInterval time.Duration
	// compactWake asks the compaction loop for a round now (wakeCompactions); it holds one request.
	compactWake chan struct{}
	hooks       testHooks // nil functions outside tests
	// space refuses writes while the volume is below its reserve; its statfs is also how the room
	// check before a tenant opens reads the volume (replaced in tests).
	space *spaceGuard
	// opens refuses to open a new tenant near the process' limits (openguard.go).
	opens *openGuard

	// seriesLimits gives each tenant's series limits (WithSeriesLimits; nil: none).
	seriesLimits SeriesLimits

	mu      sync.Mutex
	tenants map[string]*db
	closing bool
	// backlog lists, sorted, the tenants found on disk at start-up that are not open for lack of
	// room, until Run drained them (backlog.go).
	backlog []string
	// expiries holds, for each tenant pruned and not reopened since, when all its data is past
	// retention and its directory is removed (expire.go).
	expiries map[string]time.Time
}

// db is one tenant's TSDB and its lifecycle. ready is closed once the open attempt ended; then exactly
// one of tsdb and err is set. Writers hold mu for reading while they append and commit, so that pruning
// and closing wait for them and never pull a TSDB from under an appender; state (guarded by mu) tells a
// writer whether the TSDB it got still takes writes.
type db struct {
	id    string
	ready chan struct{}
	tsdb  *tsdb.DB
	err   error
	reg   *tenantRegistry  // where this TSDB instance's metrics are registered
	ship  *shipper.Shipper // nil when shipping is off
	refs  *refCache        // series refs of this TSDB instance, set with tsdb
	size  headSize         // what its head was sized for when it opened (headsize.go)
	rank  int              // tenants known to the Manager (this one included) when it was created
	// series enforces the tenant's series limits on this TSDB instance and counts its series per
	// metric name (serieslimit.go).
	series *seriesTracker
	// meta is the metadata the tenant's writes carried (metadata.go), kept across reopens.
	meta metadataStore

	// walFailed is set once a write found that this TSDB's WAL failed a write: from then on it takes
	// no write, and the next one reopens it (walguard.go).
	walFailed atomic.Bool

	// lastWrite is when a write last reached this tenant, as Manager.clock: what idleness is measured from.
	lastWrite atomic.Int64

	mu    sync.RWMutex
	state state // guarded by mu; see the state machine in prune.go
}

type managerMetrics struct {
	open          prometheus.Gauge
	openDuration  prometheus.Histogram
	openFailures  prometheus.Counter
	startupTotal  prometheus.Gauge
	startupOpened prometheus.Gauge
	startupTime   prometheus.Gauge
	pruned        prometheus.Counter
	pruneFailures prometheus.Counter
	backlog       prometheus.Gauge
	expired       prometheus.Counter

	headCompactionsPending prometheus.Gauge
}

func newManagerMetrics(reg prometheus.Registerer) *managerMetrics {
	f := promauto.With(reg)
	return &managerMetrics{
		open: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_tenants_open",
			Help: "Number of tenant TSDBs currently open.",
		}),
		openDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "weir_tenant_open_duration_seconds",
			Help:    "Time to open a tenant TSDB, WAL replay included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
		openFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_tenant_open_failures_total",
			Help: "Attempts to open a tenant TSDB that failed; writes for that tenant answer 503 meanwhile.",
		}),
		startupTotal: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_startup_tenants",
			Help: "Tenant TSDBs found on disk at start-up, whose WALs are replayed before the node is ready.",
		}),
		startupOpened: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_startup_tenants_opened",
			Help: "Tenant TSDBs opened so far at start-up (replay progress).",
		}),
		startupTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_startup_replay_duration_seconds",
			Help: "Time taken to open all tenant TSDBs found at start-up.",
		}),
		pruned: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_tenants_pruned_total",
			Help: "Idle tenant TSDBs flushed, shipped and closed; the next write of such a tenant reopens it.",
		}),
		pruneFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_tenant_prune_failures_total",
			Help: "Attempts to prune an idle tenant that failed (flush or upload); the tenant stays open and is retried.",
		}),
		backlog: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_startup_tenants_waiting",
			Help: "Tenant TSDBs found on disk at start-up and not open yet for lack of room (weir_tenant_opens_refused_total): each is opened, flushed, shipped and closed as room appears, or opened by its next write.",
		}),
		expired: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_tenants_expired_total",
			Help: "Pruned tenants whose newest sample became older than --tsdb.retention, every block shipped: their directory was removed from local disk.",
		}),
		headCompactionsPending: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_tsdb_head_compactions_pending",
			Help: "Tenants whose head is due to be cut into a block and waits for a compaction slot (--tsdb.head-compaction-concurrency); staying above 0 for long means compactions fall behind.",
		}),
	}
}

// NewManager returns a Manager for cfg that ships completed blocks to bkt (nil: blocks stay local);
// it opens nothing until OpenExisting or the first write.
func NewManager(cfg Config, bkt objstore.Bucket, logger *slog.Logger, reg prometheus.Registerer, opts ...ManagerOption) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if bkt != nil && cfg.ShipInterval <= 0 {
		return nil, fmt.Errorf("--shipper.interval: %s must be positive to ship blocks", cfg.ShipInterval)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create storage directory: %w", err)
	}
	space, err := newSpaceGuard(cfg.Dir, cfg.MinFreeSpace, statfs, logger, reg)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:             cfg,
		bkt:             bkt,
		logger:          logger,
		metrics:         newManagerMetrics(reg),
		tenantMetrics:   newTenantMetrics(),
		now:             time.Now,
		epoch:           time.Now(),
		pruneInterval:   pruneCheckInterval(cfg.IdleTimeout),
		compactInterval: headCompactionInterval,
		compactWake:     make(chan struct{}, 1),
		space:           space,
		opens:           newOpenGuard(reg),
		tenants:         map[string]*db{},
		expiries:        map[string]time.Time{},
	}
	if reg != nil {
		reg.MustRegister(m.tenantMetrics)
	}
	for _, o := range opts {
		o(m)
	}
	return m, nil
}

// OpenExisting opens, in parallel up to Config.OpenConcurrency, every tenant TSDB found in Config.Dir,
// replaying their WALs, so that data acknowledged before a crash is queryable and the node is ready
// only once all of it is back — all that the process' limits have room for: the others wait in the
// backlog that Run drains (backlog.go). A directory counts as a tenant TSDB when its name is a valid
// tenant ID and it has a WAL; anything else (an object-storage directory, say) is left alone.
func (m *Manager) OpenExisting(ctx context.Context) error {
	start := time.Now()
	if err := m.removeLeftovers(); err != nil {
		return err
	}
	found, err := m.existingTenants()
	if err != nil {
		return err
	}
	// Pruned tenants stay closed until their next write: nothing to replay.
	var ids []string
	for _, id := range found {
		if st, ok := readPruned(filepath.Join(m.cfg.Dir, id)); ok {
			m.expireAfter(id, st)
			continue
		}
		ids = append(ids, id)
	}
	if n := len(found) - len(ids); n > 0 {
		m.logger.Info("tenants pruned before the stop stay closed until their next write", "tenants", n)
	}
	m.metrics.startupTotal.Set(float64(len(ids)))
	m.logger.Info("opening tenant TSDBs found on disk", "tenants", len(ids), "concurrency", m.cfg.OpenConcurrency)

	var (
		mu     sync.Mutex
		noRoom []string
	)
	errs := forEach(ctx, ids, m.cfg.OpenConcurrency, func(id string) error {
		_, err := m.get(ctx, id)
		switch {
		case errors.Is(err, ErrNoRoom):
			mu.Lock()
			noRoom = append(noRoom, id)
			mu.Unlock()
			return nil
		case err != nil:
			return err
		}
		m.metrics.startupOpened.Inc()
		return nil
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	m.setBacklog(noRoom)
	m.metrics.startupTime.Set(time.Since(start).Seconds())
	m.logger.Info("tenant TSDBs opened", "tenants", len(ids), "failed", len(errs), "no_room", len(noRoom), "duration", time.Since(start))
	// A tenant that fails to open must not keep the others from serving: it answers 503 on its own
	// writes and is retried on each of them.
	for _, err := range errs {
		m.logger.Error("tenant TSDB failed to open at start-up", "err", err)
	}
	if len(noRoom) > 0 {
		m.logger.Warn("no room to open every tenant found on disk: the others are opened, flushed, shipped and closed one at a time as room appears, or opened by their next write",
			"waiting", len(noRoom), "first", noRoom[0])
	}
	return nil
}

func (m *Manager) existingTenants() ([]string, error) {
	entries, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("read storage directory: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if !e.IsDir() || m.validateID(e.Name()) != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(m.cfg.Dir, e.Name(), "wal")); err != nil || !fi.IsDir() {
			continue
		}
		ids = append(ids, e.Name())
	}
	return ids, nil
}

// get returns the open TSDB of tenant id, opening it if needed. Concurrent callers for a tenant being
// opened wait for the one open; a failed open is forgotten so that the next write retries it.
func (m *Manager) get(ctx context.Context, id string) (*db, error) {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	d, ok := m.tenants[id]
	if !ok {
		// The ID names a directory: whatever the entry point checked, never open one outside Dir.
		if err := m.validateID(id); err != nil {
			m.mu.Unlock()
			return nil, err
		}
		// The guard may list the process' descriptors (milliseconds with thousands open): not while
		// holding the lock every write takes.
		opened := len(m.tenants)
		m.mu.Unlock()
		if err := m.opens.admit(opened); err != nil {
			return nil, err
		}
		m.mu.Lock()
		if m.closing {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		if d, ok = m.tenants[id]; !ok { // or another write opened it meanwhile
			d = &db{id: id, ready: make(chan struct{})}
			m.tenants[id] = d
			delete(m.expiries, id) // it has new data, or a replay to do
			d.rank = len(m.tenants)
			go m.open(d)
		}
	}
	m.mu.Unlock()

	select {
	case <-d.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for tenant %s to open: %w", id, ctx.Err())
	}
	if d.err != nil {
		return nil, d.err
	}
	return d, nil
}

// open runs in its own goroutine so that a caller whose request is cancelled does not abandon an open
// half way; the result is published by closing d.ready, after d left stateOpening.
func (m *Manager) open(d *db) {
	defer close(d.ready)
	start := time.Now()
	d.reg = m.tenantMetrics.add(d.id)
	dir := filepath.Join(m.cfg.Dir, d.id)
	// Options are built afresh for each tenant: tsdb.Open fills in defaults in place.
	opts := tsdbOptions(m.cfg)
	d.size = autoHeadSize(m.cfg.StripeSize, dir, d.rank)
	opts.StripeSize, opts.HeadChunksWriteBufferSize = d.size.StripeSize, d.size.ChunkWriteBuffer
	series := newSeriesTracker(d.id, m.seriesLimits, d.reg)
	opts.SeriesLifecycleCallback = series
	// The TSDB asks which blocks to delete while it opens, and from its own goroutines after: it sees
	// itself through this pointer once Open returned, and deletes nothing before.
	var self atomic.Pointer[tsdb.DB]
	if m.bkt != nil {
		d.ship = shipper.New(shipper.Config{Dir: dir, Labels: func() labels.Labels { return m.ExternalLabels(d.id) }, UploadConcurrency: m.cfg.UploadConcurrency},
			m.bkt, m.logger.With("tenant", d.id), d.reg)
		// Retention never deletes a block that has not reached the bucket.
		opts.BlocksToDelete = func(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
			t := self.Load()
			if t == nil {
				return nil
			}
			deletable := tsdb.DefaultBlocksToDelete(t)(blocks)
			uploaded := d.ship.Uploaded()
			for id := range deletable {
				if _, ok := uploaded[id]; !ok {
					delete(deletable, id)
				}
			}
			return deletable
		}
	}
	var t *tsdb.DB
	err := unmarkPruned(dir)
	if err == nil {
		err = prepareWAL(dir, m.space.statfs, m.logger.With("tenant", d.id))
	}
	if err == nil {
		t, err = tsdb.Open(dir, m.logger.With("tenant", d.id), d.reg, opts, nil)
	}
	self.Store(t)
	m.metrics.openDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		m.tenantMetrics.remove(d.reg)
		d.err = fmt.Errorf("%w: open TSDB of tenant %s: %w", ErrUnavailable, d.id, err)
		d.mu.Lock()
		d.mustSetState(stateFailed)
		d.mu.Unlock()
		m.metrics.openFailures.Inc()
		m.logger.Error("cannot open tenant TSDB", "tenant", d.id, "dir", dir, "err", err)
		m.forget(d)
		return
	}
	// Head compactions are the Manager's, bounded across tenants (compact.go). Nothing triggers one
	// before the first commit or the TSDB's first reload tick, so none starts before this.
	t.DisableCompactions()
	d.tsdb = t
	d.refs = newRefCacheFor() // refs are only valid for this TSDB instance
	// The WAL is replayed: from now on new series are checked against the limits.
	series.enforce(t.Head().NumSeries)
	d.series = series
	// An open counts as activity: a tenant found on disk at start-up is pruned only after a full
	// IdleTimeout without writes.
	d.lastWrite.Store(m.clock())
	d.mu.Lock()
	d.mustSetState(stateOpen)
	d.mu.Unlock()
	m.metrics.open.Inc()
	m.logger.Info("tenant TSDB open", "tenant", d.id, "dir", dir, "duration", time.Since(start),
		"stripe_size", d.size.StripeSize, "wal_bytes", d.size.WALBytesAtOpening)
}

// forget takes d out of the map (if it is still there), so that the next write for its tenant opens a
// new db. Callers that hold d.mu may call it (lock order: db.mu before Manager.mu).
func (m *Manager) forget(d *db) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tenants[d.id] == d {
		delete(m.tenants, d.id)
	}
}

// Tenants returns the IDs of the tenants whose TSDB is open, sorted.
func (m *Manager) Tenants() []string {
	dbs := m.openDBs()
	ids := make([]string, len(dbs))
	for i, d := range dbs {
		ids[i] = d.id
	}
	return ids
}

// validateID is ValidateID plus the names reserved in this data directory.
func (m *Manager) validateID(id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if slices.Contains(m.cfg.ReservedNames, id) {
		return fmt.Errorf("%w: %q is reserved for the object-storage directory", ErrInvalidID, id)
	}
	return nil
}

// ExternalLabels are the labels that identify tenant id's data outside this node: the tenant label
// plus the configured external labels. They go on the tenant's blocks, not into each series.
func (m *Manager) ExternalLabels(id string) labels.Labels {
	b := labels.NewBuilder(m.cfg.ExternalLabels)
	b.Set(m.cfg.LabelName, id)
	return b.Labels()
}

// Close stops new writes, waits for in-flight ones, and closes every tenant TSDB (also one that is being
// pruned: the pruner then finds it closed and leaves it). It does not cut the head into a block: the WAL
// keeps every acknowledged sample, and the next start replays it.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closing = true
	all := make([]*db, 0, len(m.tenants))
	for _, d := range m.tenants {
		all = append(all, d)
	}
	m.mu.Unlock()

	// Closing writes each WAL's last page and fsyncs it: thousands of tenants close in parallel.
	errs := forEach(context.Background(), all, m.cfg.OpenConcurrency, func(d *db) error {
		<-d.ready
		if d.err != nil {
			return nil
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.state == stateClosed { // an earlier Close, or a prune, did it
			return nil
		}
		if err := m.closeLocked(d); err != nil {
			return fmt.Errorf("close TSDB of tenant %s: %w", d.id, err)
		}
		return nil
	})
	return errors.Join(errs...)
}
