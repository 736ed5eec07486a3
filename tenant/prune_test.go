package tenant

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/weir-metrics/weir/shipper"
	"github.com/weir-metrics/weir/write"
)

// ---------------------------------------------------------------------------------------------------
// Helpers.

// fakeClock is the Manager's clock in these tests: it moves only when told, so that idleness is exact.
type fakeClock struct{ offset atomic.Int64 }

var clockBase = time.UnixMilli(t0)

func (c *fakeClock) Now() time.Time      { return clockBase.Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) Add(d time.Duration) { c.offset.Add(int64(d)) }

// idleTimeout is the IdleTimeout of the pruning tests.
const idleTimeout = time.Hour

// newPruneManager returns a Manager with IdleTimeout = idleTimeout on the fake clock it returns, shipping
// to bkt unless nil.
func newPruneManager(t *testing.T, dir string, bkt objstore.Bucket) (*Manager, *pruneEnv) {
	t.Helper()
	cfg := testConfig(dir)
	cfg.IdleTimeout = idleTimeout
	if bkt != nil {
		cfg.ShipInterval = time.Minute
	}
	m, reg := newManagerWith(t, cfg, bkt)
	clk := &fakeClock{}
	m.now, m.epoch = clk.Now, clk.Now()
	return m, &pruneEnv{clk, reg}
}

// pruneEnv is what newPruneManager returns besides the Manager: its clock and its registry.
type pruneEnv struct {
	*fakeClock
	reg *prometheus.Registry
}

// faultyBucket fails the upload of every meta.json while failMeta is set: each block upload then fails
// after its other files went up, the worst moment (the bucket holds a partial block).
type faultyBucket struct {
	objstore.Bucket
	failMeta atomic.Bool
}

var errBucketDown = errors.New("bucket down (test)")

func (b *faultyBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if b.failMeta.Load() && path.Base(name) == shipper.MetaFilename {
		return errBucketDown
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// writeSpan writes, in one request, n series of tenant id with one sample a minute over [from, from+span)
// and returns what it wrote, as query keys it.
func writeSpan(t *testing.T, m *Manager, id string, n int, from int64, span time.Duration) map[string][]point {
	t.Helper()
	want := map[string][]point{}
	var req []prompb.TimeSeries
	for s := range n {
		kv := []string{"__name__", "pruned", "series", strconv.Itoa(s)}
		ts := prompb.TimeSeries{Labels: lbls(kv...)}
		for tm := from; tm < from+span.Milliseconds(); tm += 60_000 {
			v := float64(s*1_000_000) + float64(tm-from)/1000
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: tm, Value: v})
			want[key(kv...)] = append(want[key(kv...)], fp(tm, v))
		}
		req = append(req, ts)
	}
	st := mustWrite(t, m, id, req...)
	require.Empty(t, st.Rejected)
	return want
}

// merge adds the points of b to a, keeping each series sorted by time.
func merge(a, b map[string][]point) map[string][]point {
	out := map[string][]point{}
	for _, src := range []map[string][]point{a, b} {
		for k, ps := range src {
			out[k] = append(out[k], ps...)
		}
	}
	for k := range out {
		slices.SortFunc(out[k], func(x, y point) int { return int(x.T - y.T) })
	}
	return out
}

// localBlocks lists the complete blocks (meta.json present) in a tenant directory.
func localBlocks(t *testing.T, dir string) []string {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(dir, "*", "meta.json"))
	require.NoError(t, err)
	var ids []string
	for _, m := range metas {
		if _, err := ulid.Parse(filepath.Base(filepath.Dir(m))); err == nil {
			ids = append(ids, filepath.Base(filepath.Dir(m)))
		}
	}
	slices.Sort(ids)
	return ids
}

// bucketBlocks lists the blocks of the bucket whose meta.json is there, and counts every meta.json.
func bucketBlocks(t *testing.T, bkt *objstore.InMemBucket) []string {
	t.Helper()
	var ids []string
	for name := range bkt.Objects() {
		if path.Base(name) == shipper.MetaFilename {
			ids = append(ids, path.Dir(name))
		}
	}
	slices.Sort(ids)
	return ids
}

// bucketData downloads every complete block of the bucket, reads it with the TSDB library and returns
// all the points, by series.
func bucketData(t *testing.T, bkt *objstore.InMemBucket) map[string][]point {
	t.Helper()
	objs := bkt.Objects()
	root := t.TempDir()
	out := map[string][]point{}
	for _, id := range bucketBlocks(t, bkt) {
		for name, b := range objs {
			if !strings.HasPrefix(name, id+"/") {
				continue
			}
			p := filepath.Join(root, filepath.FromSlash(name))
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
			require.NoError(t, os.WriteFile(p, b, 0o600))
		}
		for k, ps := range readBlockDir(t, filepath.Join(root, id)) {
			out[k] = append(out[k], ps...)
		}
	}
	for k := range out {
		slices.SortFunc(out[k], func(x, y point) int { return int(x.T - y.T) })
	}
	return out
}

func readBlockDir(t *testing.T, dir string) map[string][]point {
	t.Helper()
	b, err := tsdb.OpenBlock(nil, dir, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	out := map[string][]point{}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			out[ss.At().Labels().String()] = append(out[ss.At().Labels().String()], fp(ts, v))
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return out
}

// requireData checks that got holds exactly want.
func requireData(t *testing.T, want, got map[string][]point, what string) {
	t.Helper()
	require.Len(t, got, len(want), "series in %s", what)
	for k, w := range want {
		requirePoints(t, w, got[k], what, " series ", k)
	}
}

// shipped returns the blocks that the tenant's thanos.shipper.json records as uploaded.
func shipped(t *testing.T, dir string) []string {
	t.Helper()
	st, err := shipper.ReadState(dir)
	require.NoError(t, err)
	var ids []string
	for _, id := range st.Uploaded {
		ids = append(ids, id.String())
	}
	slices.Sort(ids)
	return ids
}

// tenantLabelled returns the per-tenant metrics (TSDB and shipper) labelled with tenant id.
func tenantLabelled(t *testing.T, reg *prometheus.Registry, id string) []string {
	t.Helper()
	var out []string
	for _, prefix := range []string{"prometheus_tsdb_", "weir_shipper_"} {
		for _, name := range metricNames(t, reg, prefix) {
			if strings.HasSuffix(name, "{tenant="+id+"}") {
				out = append(out, name)
			}
		}
	}
	return out
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, _ := metricValue(t, reg, name)
	return v
}

// ---------------------------------------------------------------------------------------------------
// The state machine.

// TestTenantStateMachine checks every pair of states against the documented transitions: the allowed
// ones move, every other one is refused and leaves the state alone. closed and failed are final.
func TestTenantStateMachine(t *testing.T) {
	all := []state{stateOpening, stateOpen, statePruning, stateClosed, stateFailed}
	allowed := map[[2]state]bool{
		{stateOpening, stateOpen}:   true, // tsdb.Open succeeded
		{stateOpening, stateFailed}: true, // tsdb.Open failed
		{stateOpen, statePruning}:   true, // idle: the pruner flushes it
		{stateOpen, stateClosed}:    true, // Manager.Close
		{statePruning, stateOpen}:   true, // a write came in, or the upload failed
		{statePruning, stateClosed}: true, // pruned, or Manager.Close during the upload
	}
	for _, from := range all {
		for _, to := range all {
			d := &db{id: "t", state: from}
			err := d.setState(to)
			if allowed[[2]state{from, to}] {
				require.NoError(t, err, "%s → %s", from, to)
				require.Equal(t, to, d.state)
				continue
			}
			require.ErrorIs(t, err, errInvalidTransition, "%s → %s must be refused", from, to)
			require.ErrorContains(t, err, from.String()+" to "+to.String())
			require.Equal(t, from, d.state, "a refused transition leaves the state alone")
			require.Panics(t, func() { (&db{state: from}).mustSetState(to) })
		}
	}
	// Only open and pruning serve writes.
	for _, s := range all {
		require.Equal(t, s == stateOpen || s == statePruning, s.live(), s.String())
	}
	require.Error(t, (&db{state: state(42)}).setState(stateOpen), "an unknown state goes nowhere")
	require.Equal(t, "state(42)", state(42).String())
}

// TestTenantLifecycleStates follows one tenant through its states as the Manager drives them.
func TestTenantLifecycleStates(t *testing.T) {
	m, clk := newPruneManager(t, t.TempDir(), nil)
	stateOf := func(d *db) state {
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.state
	}
	writeSpan(t, m, "t", 1, t0, time.Minute)
	d, err := m.get(context.Background(), "t")
	require.NoError(t, err)
	require.Equal(t, stateOpen, stateOf(d))

	clk.Add(idleTimeout)
	pruned, err := m.Prune(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, pruned)
	require.Equal(t, stateClosed, stateOf(d))

	writeSpan(t, m, "t", 1, t0+hourMs, time.Minute)
	d2, err := m.get(context.Background(), "t")
	require.NoError(t, err)
	require.NotSame(t, d, d2, "a pruned tenant reopens as a new db")
	require.Equal(t, stateOpen, stateOf(d2))

	require.NoError(t, m.Close())
	require.Equal(t, stateClosed, stateOf(d2))

	// A failed open ends in failed, and is forgotten.
	m2, _ := newTestManager(t, nil)
	require.NoError(t, os.WriteFile(filepath.Join(m2.cfg.Dir, "broken"), nil, 0o600))
	m2.mu.Lock()
	bad := &db{id: "broken", ready: make(chan struct{})}
	m2.tenants["broken"] = bad
	m2.mu.Unlock()
	m2.open(bad)
	require.Equal(t, stateFailed, stateOf(bad))
	require.Empty(t, m2.Tenants())
}

// ---------------------------------------------------------------------------------------------------
// Pruning.

// TestPruneIdleTenant: a tenant idle for the timeout is flushed, shipped and closed, its metrics gone;
// a tenant written within the timeout is left alone; the next write reopens the pruned tenant with all
// its old data.
func TestPruneIdleTenant(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	m, clk := newPruneManager(t, t.TempDir(), bkt)
	ctx := context.Background()

	// Five hours of old samples: the TSDB cuts some blocks itself, the prune cuts the rest of the head.
	idleData := writeSpan(t, m, "idle", 3, t0, 5*time.Hour)
	clk.Add(idleTimeout / 2)
	busyData := writeSpan(t, m, "busy", 2, t0, time.Hour)

	// Not idle long enough: nothing happens.
	clk.Add(idleTimeout/2 - time.Nanosecond)
	pruned, err := m.Prune(ctx)
	require.NoError(t, err)
	require.Empty(t, pruned)
	require.Equal(t, []string{"busy", "idle"}, m.Tenants())
	require.Empty(t, bucketBlocks(t, bkt), "nothing was due for shipping by the prune")

	// "idle" now is idle for exactly the timeout; "busy" for half of it.
	clk.Add(time.Nanosecond)
	require.NotEmpty(t, tenantLabelled(t, clk.reg, "idle"))
	pruned, err = m.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"idle"}, pruned)
	require.Equal(t, []string{"busy"}, m.Tenants(), "the idle tenant is closed, the busy one is not")
	require.Empty(t, tenantLabelled(t, clk.reg, "idle"), "a pruned tenant's metrics are unregistered")
	require.NotEmpty(t, tenantLabelled(t, clk.reg, "busy"))
	require.Equal(t, 1.0, gauge(t, clk.reg, "weir_tenants_open"))
	require.Equal(t, 1.0, gauge(t, clk.reg, "weir_tenants_pruned_total"))

	// Everything it held is in the bucket, and still on disk: pruning deletes nothing.
	dir := filepath.Join(m.cfg.Dir, "idle")
	local := localBlocks(t, dir)
	require.GreaterOrEqual(t, len(local), 3, "five hours make at least three 2h blocks")
	require.Equal(t, local, bucketBlocks(t, bkt))
	require.Equal(t, local, shipped(t, dir))
	requireData(t, idleData, bucketData(t, bkt), "bucket")

	// Pruning again finds nothing to do.
	pruned, err = m.Prune(ctx)
	require.NoError(t, err)
	require.Empty(t, pruned)

	// A new write reopens the tenant; old and new data are readable.
	newData := writeSpan(t, m, "idle", 3, t0+6*hourMs, 10*time.Minute)
	require.Equal(t, []string{"busy", "idle"}, m.Tenants())
	require.NotEmpty(t, tenantLabelled(t, clk.reg, "idle"))
	requireSeries(t, m, "idle", merge(idleData, newData))
	requireSeries(t, m, "busy", busyData)
	require.Equal(t, local, localBlocks(t, dir)[:len(local)], "the reopened tenant kept its blocks")
}

// TestPruneWithoutBucket: without object storage a pruned tenant is flushed into local blocks and
// closed; its WAL no longer holds the data, its blocks do.
func TestPruneWithoutBucket(t *testing.T) {
	m, clk := newPruneManager(t, t.TempDir(), nil)
	want := writeSpan(t, m, "t", 2, t0, 3*time.Hour)
	clk.Add(idleTimeout)
	pruned, err := m.Prune(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, pruned)
	require.Empty(t, m.Tenants())
	require.Empty(t, tenantLabelled(t, clk.reg, "t"))

	dir := filepath.Join(m.cfg.Dir, "t")
	blocks := localBlocks(t, dir)
	require.NotEmpty(t, blocks)
	got := map[string][]point{}
	for _, id := range blocks {
		for k, ps := range readBlockDir(t, filepath.Join(dir, id)) {
			got[k] = append(got[k], ps...)
		}
	}
	requireData(t, want, merge(got, nil), "local blocks")
	_, err = os.Stat(filepath.Join(dir, shipper.StateFilename))
	require.ErrorIs(t, err, os.ErrNotExist, "no shipper without a bucket")

	requireSeries(t, m, "t", want) // reopens
}

// TestPruneDisabled: IdleTimeout 0 never prunes.
func TestPruneDisabled(t *testing.T) {
	m, _ := newTestManager(t, nil)
	clk := &fakeClock{}
	m.now, m.epoch = clk.Now, clk.Now()
	writeSpan(t, m, "t", 1, t0, time.Minute)
	clk.Add(1000 * time.Hour)
	pruned, err := m.Prune(context.Background())
	require.NoError(t, err)
	require.Empty(t, pruned)
	require.Equal(t, []string{"t"}, m.Tenants())
}

// TestPruneFailedUpload: when the upload fails the tenant is not closed and nothing is deleted; the
// blocks ship once the bucket is back, and the tenant is pruned then. A tenant closed with blocks still
// unshipped (here by a shutdown without flush) has them shipped after its next open.
func TestPruneFailedUpload(t *testing.T) {
	mem := objstore.NewInMemBucket()
	bkt := &faultyBucket{Bucket: mem}
	bkt.failMeta.Store(true)
	dataDir := t.TempDir()
	m, clk := newPruneManager(t, dataDir, bkt)
	ctx := context.Background()
	dir := filepath.Join(dataDir, "t")

	want := writeSpan(t, m, "t", 2, t0, 5*time.Hour)
	clk.Add(idleTimeout)
	for range 3 {
		pruned, err := m.Prune(ctx)
		require.ErrorIs(t, err, errBucketDown)
		require.Empty(t, pruned)
		require.Equal(t, []string{"t"}, m.Tenants(), "a tenant whose blocks did not ship stays open")
		require.NotEmpty(t, tenantLabelled(t, clk.reg, "t"))
	}
	require.Equal(t, 3.0, gauge(t, clk.reg, "weir_tenant_prune_failures_total"))
	require.Zero(t, gauge(t, clk.reg, "weir_tenants_pruned_total"))
	blocks := localBlocks(t, dir)
	require.GreaterOrEqual(t, len(blocks), 3)
	require.Empty(t, bucketBlocks(t, mem), "no meta.json went up")
	require.Empty(t, shipped(t, dir), "nothing is recorded as shipped")
	require.NotEmpty(t, mem.Objects(), "the bucket holds partial blocks (files without meta.json)")

	// The node stops without flushing (a crash, say): the blocks stay on disk, unshipped.
	require.NoError(t, m.Close())
	require.Equal(t, blocks, localBlocks(t, dir), "nothing deleted")

	// The next start: the bucket is back; the tenant's next open ships what the last one could not.
	bkt.failMeta.Store(false)
	m2, clk2 := newPruneManager(t, dataDir, bkt)
	newData := writeSpan(t, m2, "t", 2, t0+6*hourMs, 10*time.Minute)
	require.NoError(t, m2.shipAll(ctx))
	require.Equal(t, blocks, bucketBlocks(t, mem))
	require.Equal(t, blocks, shipped(t, dir))
	requireData(t, want, bucketData(t, mem), "bucket")

	// And pruning now succeeds: the rest of the head goes up too.
	clk2.Add(idleTimeout)
	pruned, err := m2.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, pruned)
	requireData(t, merge(want, newData), bucketData(t, mem), "bucket")
	require.Equal(t, localBlocks(t, dir), bucketBlocks(t, mem))
	require.Equal(t, localBlocks(t, dir), shipped(t, dir))
	requireSeries(t, m2, "t", merge(want, newData))
}

// TestPruneRetriesAfterFailedUpload: the same, within one run: the failed prune leaves the tenant open,
// and the next round ships and closes it.
func TestPruneRetriesAfterFailedUpload(t *testing.T) {
	mem := objstore.NewInMemBucket()
	bkt := &faultyBucket{Bucket: mem}
	bkt.failMeta.Store(true)
	m, clk := newPruneManager(t, t.TempDir(), bkt)
	want := writeSpan(t, m, "t", 2, t0, 3*time.Hour)
	clk.Add(idleTimeout)
	_, err := m.Prune(context.Background())
	require.ErrorIs(t, err, errBucketDown)
	require.Equal(t, []string{"t"}, m.Tenants())

	bkt.failMeta.Store(false)
	pruned, err := m.Prune(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, pruned, "a failed prune does not reset idleness")
	requireData(t, want, bucketData(t, mem), "bucket")
}

// ---------------------------------------------------------------------------------------------------
// Writes racing with pruning: each interleaving forced with the hooks.

// TestWriteInFlightWhenPruneStarts: a write holding the tenant when the prune begins finishes first,
// and its sample is in the flushed, shipped blocks.
func TestWriteInFlightWhenPruneStarts(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	m, clk := newPruneManager(t, t.TempDir(), bkt)
	want := writeSpan(t, m, "t", 1, t0, time.Hour)
	clk.Add(idleTimeout)

	d, err := m.get(context.Background(), "t")
	require.NoError(t, err)
	var locked atomic.Bool
	m.hooks.pruneLocked = func(*db) { locked.Store(true) }
	d.mu.RLock() // what a write holds from its state check to its commit
	done := make(chan error, 1)
	go func() { _, err := m.Prune(context.Background()); done <- err }()
	// The write appends and commits while the pruner waits for the lock.
	app := d.tsdb.AppenderV2(context.Background())
	_, err = app.Append(0, labels.FromStrings("__name__", "pruned", "series", "0"), 0, t0+hourMs, 42, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	require.False(t, locked.Load(), "the pruner took the tenant from under a write")
	d.mu.RUnlock()
	require.NoError(t, <-done)
	require.True(t, locked.Load())

	require.Empty(t, m.Tenants())
	k := key("__name__", "pruned", "series", "0")
	want[k] = append(want[k], fp(t0+hourMs, 42))
	requireData(t, want, bucketData(t, bkt), "bucket")
}

// TestWriteDuringPruneUpload: a write that comes in while the pruner uploads lands, and keeps the
// tenant open; the next prune ships it.
func TestWriteDuringPruneUpload(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	m, clk := newPruneManager(t, t.TempDir(), bkt)
	want := writeSpan(t, m, "t", 1, t0, 3*time.Hour)
	clk.Add(idleTimeout)

	var during map[string][]point
	m.hooks.pruneShipping = func(*db) {
		m.hooks.pruneShipping = nil
		during = writeSpan(t, m, "t", 1, t0+4*hourMs, 10*time.Minute)
	}
	pruned, err := m.Prune(context.Background())
	require.NoError(t, err)
	require.Empty(t, pruned, "a write during the upload cancels the prune")
	require.Equal(t, []string{"t"}, m.Tenants())
	requireData(t, want, bucketData(t, bkt), "bucket (the flushed head)")
	requireSeries(t, m, "t", merge(want, during))

	clk.Add(idleTimeout)
	pruned, err = m.Prune(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, pruned)
	requireData(t, merge(want, during), bucketData(t, bkt), "bucket")
}

// TestWriteReopensPrunedTenant: a write that found the tenant just before the pruner closed it does not
// fail: it finds the state closed and reopens the tenant.
func TestWriteReopensPrunedTenant(t *testing.T) {
	for _, withBucket := range []bool{false, true} {
		t.Run("bucket="+strconv.FormatBool(withBucket), func(t *testing.T) {
			var bkt *objstore.InMemBucket
			var b objstore.Bucket
			if withBucket {
				bkt = objstore.NewInMemBucket()
				b = bkt
			}
			m, clk := newPruneManager(t, t.TempDir(), b)
			want := writeSpan(t, m, "t", 1, t0, time.Hour)
			clk.Add(idleTimeout)

			var stale *db
			m.hooks.beforeWriteLock = func(d *db) {
				if stale != nil {
					return
				}
				stale = d
				// The write holds d but has not locked it: the tenant is pruned now.
				pruned, err := m.Prune(context.Background())
				require.NoError(t, err)
				require.Equal(t, []string{"t"}, pruned)
			}
			more := writeSpan(t, m, "t", 1, t0+2*hourMs, time.Minute)
			require.NotNil(t, stale)
			d, err := m.get(context.Background(), "t")
			require.NoError(t, err)
			require.NotSame(t, stale, d, "the write reopened the tenant")
			require.Equal(t, 1.0, gauge(t, clk.reg, "weir_tenants_pruned_total"))
			requireSeries(t, m, "t", merge(want, more))
			if withBucket {
				requireData(t, want, bucketData(t, bkt), "bucket")
			}
		})
	}
}

// TestCloseDuringPruneUpload: Manager.Close while the pruner uploads closes the tenant; the pruner
// then leaves it alone and the data is safe in the WAL and blocks.
func TestCloseDuringPruneUpload(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	dataDir := t.TempDir()
	m, clk := newPruneManager(t, dataDir, bkt)
	want := writeSpan(t, m, "t", 1, t0, 3*time.Hour)
	clk.Add(idleTimeout)
	m.hooks.pruneShipping = func(*db) { require.NoError(t, m.Close()) }
	pruned, err := m.Prune(context.Background())
	require.NoError(t, err)
	require.Empty(t, pruned)
	require.Zero(t, gauge(t, clk.reg, "weir_tenants_open"))
	require.Empty(t, tenantLabelled(t, clk.reg, "t"))

	m2, _ := newPruneManager(t, dataDir, bkt)
	require.NoError(t, m2.OpenExisting(context.Background()))
	requireSeries(t, m2, "t", want)
}

// TestPruneStress races many writers to one tenant with a pruner that prunes it as often as it can (the
// hook makes the tenant idle whenever the pruner holds it). Every acknowledged sample must be stored
// afterwards — in the reopened TSDB and, with a bucket, in the bucket — nothing else may be, and no
// write may fail. Writes may be rejected as too old (a prune flushed a newer sample of another writer
// first), which is an answer, not an acknowledgement.
func TestPruneStress(t *testing.T) {
	for _, withBucket := range []bool{false, true} {
		t.Run("bucket="+strconv.FormatBool(withBucket), func(t *testing.T) {
			var bkt *objstore.InMemBucket
			var b objstore.Bucket
			if withBucket {
				bkt = objstore.NewInMemBucket()
				b = bkt
			}
			m, clk := newPruneManager(t, t.TempDir(), b)
			var reached atomic.Bool // the pruner got hold of the tenant in this round
			m.hooks.pruneLocked = func(*db) {
				reached.Store(true)
				clk.Add(idleTimeout)
			}

			// rounds counts the prune rounds that reached the tenant (while it reopens there is nothing
			// to prune). Every fourth one waits for the writes in flight and runs with the writers held
			// at the gate, so that the tenant is also closed — and reopened by the queued writers — when
			// with a bucket a write would otherwise nearly always come in during the upload.
			const writers, rounds = 8, 40
			var gate sync.RWMutex
			var stop atomic.Bool
			var next atomic.Int64     // timestamps, increasing across writers
			var finished atomic.Int64 // writes answered
			var failed atomic.Bool    // a writer stopped on an error
			acked := make([][]point, writers)
			rejected := make([]int, writers)
			errs := make([]error, writers)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					ls := lbls("__name__", "stress", "writer", strconv.Itoa(w))
					for !stop.Load() {
						gate.RLock()
						ts := t0 + next.Add(1)
						st, err := m.Write(context.Background(), "hot", []prompb.TimeSeries{{Labels: ls, Samples: []prompb.Sample{{Timestamp: ts, Value: float64(ts)}}}}, nil, nil)
						gate.RUnlock()
						finished.Add(1)
						if err != nil {
							errs[w] = err
							failed.Store(true)
							return
						}
						switch {
						case st.Appended[write.KindFloat] == 1 && len(st.Rejected) == 0:
							acked[w] = append(acked[w], fp(ts, float64(ts)))
						case st.Appended[write.KindFloat] == 0 && len(st.Rejected) == 1 && st.Rejected[0].Reason == write.ReasonTooOld:
							rejected[w]++
						default:
							errs[w] = fmt.Errorf("unexpected write outcome %+v", st)
							failed.Store(true)
							return
						}
					}
				})
			}
			done, closes, racedCloses := 0, 0, 0
			for done < rounds && !failed.Load() {
				// Let some writes through between rounds, or the tenant spends its life reopening.
				for floor := finished.Load() + 2*writers; finished.Load() < floor && !failed.Load(); {
					runtime.Gosched()
				}
				gated := done%4 == 3
				if gated {
					gate.Lock()
				}
				reached.Store(false)
				pruned, err := m.Prune(context.Background())
				if gated {
					gate.Unlock()
				}
				require.NoError(t, err)
				if reached.Load() {
					done++
				}
				closes += len(pruned)
				if !gated {
					racedCloses += len(pruned)
				}
				runtime.Gosched()
			}
			stop.Store(true)
			wg.Wait()
			for w, err := range errs {
				require.NoError(t, err, "writer %d", w) // ErrClosed included
			}
			// A last prune with the writers gone: everything is flushed (and shipped) and closed.
			open := len(m.Tenants()) == 1 // the last round may have closed it already
			pruned, err := m.Prune(context.Background())
			require.NoError(t, err)
			require.Equal(t, open, len(pruned) == 1)
			require.Empty(t, m.Tenants())
			closes += len(pruned)

			want := map[string][]point{}
			total, totalRejected := 0, 0
			for w := range writers {
				if len(acked[w]) > 0 {
					want[key("__name__", "stress", "writer", strconv.Itoa(w))] = acked[w]
				}
				total += len(acked[w])
				totalRejected += rejected[w]
			}
			t.Logf("%d prune rounds, %d closes (%d with the writers free); %d samples acknowledged, %d rejected as too old",
				rounds, closes, racedCloses, total, totalRejected)
			require.GreaterOrEqual(t, closes, rounds/4, "the tenant must have been closed under the writers")
			require.Greater(t, total, 0)
			if withBucket {
				requireData(t, want, bucketData(t, bkt), "bucket")
				dir := filepath.Join(m.cfg.Dir, "hot")
				require.Equal(t, localBlocks(t, dir), bucketBlocks(t, bkt), "every block shipped, once")
				require.Equal(t, localBlocks(t, dir), shipped(t, dir))
			}
			requireSeries(t, m, "hot", want) // reopens the tenant: blocks and WAL
		})
	}
}

// TestRunPrunes: Manager.Run prunes idle tenants on its own, with or without shipping.
func TestRunPrunes(t *testing.T) {
	for _, withBucket := range []bool{false, true} {
		t.Run("bucket="+strconv.FormatBool(withBucket), func(t *testing.T) {
			var bkt *objstore.InMemBucket
			var b objstore.Bucket
			if withBucket {
				bkt = objstore.NewInMemBucket()
				b = bkt
			}
			m, clk := newPruneManager(t, t.TempDir(), b)
			m.pruneInterval = time.Millisecond
			want := writeSpan(t, m, "t", 1, t0, 3*time.Hour)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx) }()
			defer func() { cancel(); require.NoError(t, <-done) }()

			clk.Add(idleTimeout)
			require.Eventually(t, func() bool { return len(m.Tenants()) == 0 }, 10*time.Second, time.Millisecond)
			if withBucket {
				requireData(t, want, bucketData(t, bkt), "bucket")
			}
		})
	}
}
