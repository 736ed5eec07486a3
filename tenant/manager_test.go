package tenant

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/weir-metrics/weir/write"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	valid := testConfig("/data")
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		err    string // substring; "" when valid
	}{
		{"valid", func(*Config) {}, ""},
		{"valid with everything", func(c *Config) {
			c.OutOfOrderWindow = 30 * time.Minute
			c.MaxExemplars = 100_000
			c.WALCompression = true
			c.ExternalLabels = labels.FromStrings("replica", "ingester-0")
		}, ""},
		{"retention of exactly one block", func(c *Config) { c.Retention = BlockDuration }, ""},
		{"fixed stripe size", func(c *Config) { c.StripeSize = 16384 }, ""},
		{"stripe size not a power of two", func(c *Config) { c.StripeSize = 1000 }, "--tsdb.stripe-size: 1000 is not a power of two"},
		{"negative stripe size", func(c *Config) { c.StripeSize = -1 }, "--tsdb.stripe-size: -1 is not a power of two"},
		{"empty dir", func(c *Config) { c.Dir = "" }, "--tsdb.path is empty"},
		{"retention shorter than a block", func(c *Config) { c.Retention = BlockDuration - time.Second }, "--tsdb.retention: 1h59m59s is shorter than one block (2h)"},
		{"zero retention", func(c *Config) { c.Retention = 0 }, "--tsdb.retention: 0s is shorter than one block"},
		{"negative out-of-order window", func(c *Config) { c.OutOfOrderWindow = -time.Minute }, "--tsdb.out-of-order.time-window: -1m0s is negative"},
		{"negative max exemplars", func(c *Config) { c.MaxExemplars = -1 }, "--tsdb.max-exemplars: -1 is negative"},
		{"zero open concurrency", func(c *Config) { c.OpenConcurrency = 0 }, "--tsdb.open-concurrency: 0 must be at least 1"},
		{"negative head compaction concurrency", func(c *Config) { c.HeadCompactionConcurrency = -1 }, "--tsdb.head-compaction-concurrency: -1 is negative"},
		{"empty label name", func(c *Config) { c.LabelName = "" }, `--receive.tenant-label-name: "" is not a valid label name`},
		{"invalid label name", func(c *Config) { c.LabelName = "tenant-id" }, `--receive.tenant-label-name: "tenant-id" is not a valid label name`},
		{"label name starting with a digit", func(c *Config) { c.LabelName = "1tenant" }, "is not a valid label name"},
		{"tenant label among external labels", func(c *Config) {
			c.ExternalLabels = labels.FromStrings("replica", "r0", "tenant_id", "x")
		}, `external labels already contain the tenant label "tenant_id"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestNewManager(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	cfg := testConfig(dir)
	cfg.OpenConcurrency = 0
	_, err := NewManager(cfg, nil, discardLogger(), nil)
	require.ErrorContains(t, err, "--tsdb.open-concurrency")
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, fs.ErrNotExist, "an invalid configuration must not touch the disk")

	m, _ := newManagerAt(t, testConfig(dir))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.True(t, fi.IsDir())
	require.Empty(t, m.Tenants(), "nothing opens before the first write")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)
}

// TestWriteInvalidTenant checks that the Manager refuses a tenant ID that is not a safe directory name
// even if a caller forgot to validate it.
func TestWriteInvalidTenant(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	m, _ := newManagerAt(t, testConfig(dir))
	for _, id := range []string{"../escape", "..", "a/b", ""} {
		_, err := m.Write(context.Background(), id, []prompb.TimeSeries{{Labels: lbls("__name__", "x"), Samples: floats(float64(t0), 1)}}, nil, nil)
		require.ErrorIs(t, err, ErrInvalidID, "%q", id)
	}
	_, err := os.Stat(filepath.Join(root, "escape"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.Empty(t, m.Tenants())
}

func TestWriteCancelled(t *testing.T) {
	m, _ := newTestManager(t, nil)
	mustWrite(t, m, "t", prompb.TimeSeries{Labels: lbls("__name__", "a"), Samples: floats(float64(t0), 1)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st, err := m.Write(ctx, "t", []prompb.TimeSeries{{Labels: lbls("__name__", "a"), Samples: floats(float64(t0+1), 2)}}, nil, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, write.Stats{}, st)
	requireSeries(t, m, "t", map[string][]point{key("__name__", "a"): {fp(t0, 1)}})
}

// TestConcurrentFirstWrites races first writes for one new tenant, and for several at once: each tenant
// is opened exactly once and every write lands.
func TestConcurrentFirstWrites(t *testing.T) {
	m, reg := newTestManager(t, func(c *Config) { c.OpenConcurrency = 1 })
	tenants := []string{"hot", "a", "b", "c"}
	const perTenant = 8
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, (len(tenants)+3)*perTenant) // the hot tenant has 4×perTenant writers
	for ti, id := range tenants {
		n := perTenant
		if ti == 0 {
			n = 4 * perTenant // many writers for one tenant
		}
		for g := range n {
			wg.Go(func() {
				<-start
				_, err := m.Write(context.Background(), id, []prompb.TimeSeries{{
					Labels:  lbls("__name__", "w", "writer", strconv.Itoa(g)),
					Samples: floats(float64(t0+int64(g)), float64(g)),
				}}, nil,

					nil)

				errs <- err
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	require.Equal(t, []string{"a", "b", "c", "hot"}, m.Tenants())
	m.mu.Lock()
	require.Len(t, m.tenants, 4)
	m.mu.Unlock()
	v, _ := metricValue(t, reg, "weir_tenants_open")
	require.Equal(t, 4.0, v)
	v, _ = metricValue(t, reg, "weir_tenant_open_duration_seconds")
	require.Equal(t, 4.0, v, "one open per tenant")
	v, _ = metricValue(t, reg, "weir_tenant_open_failures_total")
	require.Equal(t, 0.0, v)
	for ti, id := range tenants {
		n := perTenant
		if ti == 0 {
			n = 4 * perTenant
		}
		want := map[string][]point{}
		for g := range n {
			want[key("__name__", "w", "writer", strconv.Itoa(g))] = []point{fp(t0+int64(g), float64(g))}
		}
		requireSeries(t, m, id, want)
		// Each tenant's TSDB registered its metrics once, under its tenant label.
		_, ok := metricValue(t, reg, "prometheus_tsdb_head_series", "tenant", id)
		require.True(t, ok, "tenant %s", id)
	}
}

// TestOpenFailureIsolation makes one tenant's TSDB fail to open: its writes fail with ErrUnavailable,
// the other tenants carry on, and once the cause is gone the next write opens it.
func TestOpenFailureIsolation(t *testing.T) {
	m, reg := newTestManager(t, nil)
	dir := m.cfg.Dir
	one := func(v float64) []prompb.TimeSeries {
		return []prompb.TimeSeries{{Labels: lbls("__name__", "x"), Samples: floats(float64(t0)+v, v)}}
	}
	failures := func() float64 {
		v, ok := metricValue(t, reg, "weir_tenant_open_failures_total")
		require.True(t, ok)
		return v
	}

	// The tenant's directory is a regular file: tsdb.Open fails before registering anything.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "file"), []byte("not a TSDB"), 0o600))
	// The tenant's WAL is a regular file: tsdb.Open fails after registering some metrics.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "wal-file"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wal-file", "wal"), nil, 0o600))

	ctx := context.Background()
	_, err := m.Write(ctx, "ok", one(1), nil, nil)
	require.NoError(t, err)
	for i, id := range []string{"file", "wal-file"} {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for w := range errs {
			wg.Go(func() { _, errs[w] = m.Write(ctx, id, one(2), nil, nil) })
		}
		wg.Wait()
		for _, err := range errs {
			require.ErrorIs(t, err, ErrUnavailable)
		}
		require.GreaterOrEqual(t, failures(), float64(i+1))
		for _, name := range metricNames(t, reg, "prometheus_tsdb_") {
			require.NotContains(t, name, "tenant="+id+"}", "a failed open must unregister its metrics")
		}
	}
	// The healthy tenant is untouched.
	_, err = m.Write(ctx, "ok", one(3), nil, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"ok"}, m.Tenants())
	requireSeries(t, m, "ok", map[string][]point{key("__name__", "x"): {fp(t0+1, 1), fp(t0+3, 3)}})

	// Every failing write retried the open (the failure is not cached).
	before := failures()
	_, err = m.Write(ctx, "file", one(4), nil, nil)
	require.ErrorIs(t, err, ErrUnavailable)
	require.Equal(t, before+1, failures())

	// Remove the causes: the next writes open the tenants, registering their metrics again.
	require.NoError(t, os.Remove(filepath.Join(dir, "file")))
	require.NoError(t, os.Remove(filepath.Join(dir, "wal-file", "wal")))
	for _, id := range []string{"file", "wal-file"} {
		_, err = m.Write(ctx, id, one(5), nil, nil)
		require.NoError(t, err)
		requireSeries(t, m, id, map[string][]point{key("__name__", "x"): {fp(t0+5, 5)}})
		_, ok := metricValue(t, reg, "prometheus_tsdb_head_series", "tenant", id)
		require.True(t, ok)
	}
	require.Equal(t, []string{"file", "ok", "wal-file"}, m.Tenants())
	require.Equal(t, before+1, failures())
	v, _ := metricValue(t, reg, "weir_tenants_open")
	require.Equal(t, 3.0, v)
}

// seedTenants writes floats, a native histogram and exemplars to the given tenants and returns what
// each tenant must hold.
func seedTenants(t *testing.T, m *Manager, ids ...string) (map[string]map[string][]point, map[string][]exemplar.Exemplar) {
	t.Helper()
	data := map[string]map[string][]point{}
	exs := map[string][]exemplar.Exemplar{}
	hs := tsdbutil.GenerateTestHistograms(3)
	for ti, id := range ids {
		want := map[string][]point{}
		for w := range 3 { // several acknowledged writes
			ts := t0 + int64(w)*15_000
			series := []prompb.TimeSeries{
				{Labels: lbls("__name__", "up", "job", "api"), Samples: floats(float64(ts), float64(ti*10+w))},
				{Labels: lbls("__name__", "rpc_seconds", "job", "api"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(ts, hs[w])}},
				{
					Labels:    lbls("__name__", "req_total", "job", "api", "w", strconv.Itoa(w)),
					Samples:   floats(float64(ts), 1, float64(ts+1000), 2),
					Exemplars: []prompb.Exemplar{{Labels: lbls("trace_id", id+strconv.Itoa(w)), Value: 1, Timestamp: ts}},
				},
			}
			st := mustWrite(t, m, id, series...)
			ne := 0
			if m.cfg.MaxExemplars > 0 {
				ne = 1
			}
			require.Equal(t, appended(3, 1, ne), st.Appended)
			want[key("__name__", "up", "job", "api")] = append(want[key("__name__", "up", "job", "api")], fp(ts, float64(ti*10+w)))
			want[key("__name__", "rpc_seconds", "job", "api")] = append(want[key("__name__", "rpc_seconds", "job", "api")], point{T: ts, H: hs[w]})
			want[key("__name__", "req_total", "job", "api", "w", strconv.Itoa(w))] = []point{fp(ts, 1), fp(ts+1000, 2)}
			exs[id] = append(exs[id], exemplar.Exemplar{Labels: labels.FromStrings("trace_id", id+strconv.Itoa(w)), Value: 1, Ts: ts, HasTs: true})
		}
		data[id] = want
	}
	return data, exs
}

func requireExemplars(t *testing.T, m *Manager, id string, want []exemplar.Exemplar) {
	t.Helper()
	d, err := m.get(context.Background(), id)
	require.NoError(t, err)
	eq, err := d.tsdb.ExemplarQuerier(context.Background())
	require.NoError(t, err)
	res, err := eq.Select(t0-hourMs, t0+hourMs, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "req_total")})
	require.NoError(t, err)
	// HasTs is not in the WAL's exemplar records: compare without it (timestamps are compared).
	var got []exemplar.Exemplar
	for _, r := range res {
		for _, e := range r.Exemplars {
			e.HasTs = false
			got = append(got, e)
		}
	}
	wantNoHasTs := make([]exemplar.Exemplar, len(want))
	for i, e := range want {
		e.HasTs = false
		wantNoHasTs[i] = e
	}
	require.ElementsMatch(t, wantNoHasTs, got)
}

func TestOpenExisting(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxExemplars = 100
	m, _ := newManagerAt(t, cfg)
	data, exs := seedTenants(t, m, "team-a", "team-b", "default-tenant")
	require.NoError(t, m.Close())

	// Things in the data directory that are not tenant TSDBs.
	ulidDir := filepath.Join(cfg.Dir, "bucket", "01JD6Z1Q0T3K4V5W6X7Y8Z9ABC")
	require.NoError(t, os.MkdirAll(ulidDir, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(ulidDir, "meta.json"), []byte(`{"ulid":"01JD6Z1Q0T3K4V5W6X7Y8Z9ABC","version":1}`), 0o600))
	topULID := filepath.Join(cfg.Dir, "01JD6Z1Q0T3K4V5W6X7Y8Z9ABD")
	require.NoError(t, os.MkdirAll(topULID, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(topULID, "meta.json"), []byte(`{}`), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(cfg.Dir, "bad name", "wal"), 0o750)) // invalid tenant ID
	require.NoError(t, os.WriteFile(filepath.Join(cfg.Dir, "plain-file"), []byte("x"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(cfg.Dir, "wal-is-file"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.Dir, "wal-is-file", "wal"), nil, 0o600))

	m2, reg := newManagerAt(t, cfg)
	require.NoError(t, m2.OpenExisting(context.Background()))
	require.Equal(t, []string{"default-tenant", "team-a", "team-b"}, m2.Tenants())
	for id, want := range data {
		requireSeries(t, m2, id, want)
		requireExemplars(t, m2, id, exs[id])
	}
	for name, want := range map[string]float64{
		"weir_startup_tenants":            3,
		"weir_startup_tenants_opened":     3,
		"weir_tenants_open":               3,
		"weir_tenant_open_failures_total": 0,
	} {
		v, ok := metricValue(t, reg, name)
		require.True(t, ok, name)
		require.Equal(t, want, v, name)
	}
	v, _ := metricValue(t, reg, "weir_startup_replay_duration_seconds")
	require.Greater(t, v, 0.0)

	// The foreign directories were left alone.
	for _, p := range []string{filepath.Join(cfg.Dir, "bucket"), topULID, filepath.Join(cfg.Dir, "bad name")} {
		_, err := os.Stat(filepath.Join(p, "lock"))
		require.ErrorIs(t, err, fs.ErrNotExist, p)
	}
	b, err := os.ReadFile(filepath.Join(ulidDir, "meta.json"))
	require.NoError(t, err)
	require.Contains(t, string(b), "01JD6Z1Q0T3K4V5W6X7Y8Z9ABC")

	// Writes go on where they stopped.
	mustWrite(t, m2, "team-a", prompb.TimeSeries{Labels: lbls("__name__", "up", "job", "api"), Samples: floats(float64(t0+hourMs), 7)})
}

// TestOpenExistingFailure has one tenant's TSDB locked by another Manager: OpenExisting opens the others
// and does not fail; the locked tenant opens on a write once the lock is gone.
func TestOpenExistingFailure(t *testing.T) {
	cfg := testConfig(t.TempDir())
	m, _ := newManagerAt(t, cfg)
	data, _ := seedTenants(t, m, "a", "locked")
	require.NoError(t, m.Close())

	holder, _ := newManagerAt(t, cfg)
	_, err := holder.get(context.Background(), "locked")
	require.NoError(t, err)

	m2, reg := newManagerAt(t, cfg)
	require.NoError(t, m2.OpenExisting(context.Background()))
	require.Equal(t, []string{"a"}, m2.Tenants())
	requireSeries(t, m2, "a", data["a"])
	for name, want := range map[string]float64{
		"weir_startup_tenants":            2,
		"weir_startup_tenants_opened":     1,
		"weir_tenant_open_failures_total": 1,
	} {
		v, _ := metricValue(t, reg, name)
		require.Equal(t, want, v, name)
	}
	_, err = m2.Write(context.Background(), "locked", nil, nil, nil)
	require.ErrorIs(t, err, ErrUnavailable)

	require.NoError(t, holder.Close())
	_, err = m2.Write(context.Background(), "locked", nil, nil, nil)
	require.NoError(t, err)
	requireSeries(t, m2, "locked", data["locked"])
}

func TestOpenExistingCancelled(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.OpenConcurrency = 1
	m, _ := newManagerAt(t, cfg)
	seedTenants(t, m, "a", "b", "c")
	require.NoError(t, m.Close())

	m2, _ := newManagerAt(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := m2.OpenExisting(ctx)
	require.ErrorIs(t, err, context.Canceled)
	// Whatever had started opening is closed by Close (the cleanup), leaking nothing.
}

// TestCrashRecovery copies a live data directory after acknowledged writes, as a crash would leave it
// (the WAL is handed to the OS on every commit), and checks that a new Manager there has every
// acknowledged point back.
func TestCrashRecovery(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxExemplars = 100
	cfg.WALCompression = true
	m, _ := newManagerAt(t, cfg)
	data, exs := seedTenants(t, m, "team-a", "team-b")
	// A partially rejected write: only what was acknowledged must come back.
	st := mustWrite(t, m, "team-a", prompb.TimeSeries{Labels: lbls("__name__", "up", "job", "api"), Samples: floats(float64(t0-hourMs*3), 1, float64(t0+60_000), 42)})
	require.Equal(t, appended(1, 0, 0), st.Appended)
	data["team-a"][key("__name__", "up", "job", "api")] = append(data["team-a"][key("__name__", "up", "job", "api")], fp(t0+60_000, 42))

	crashed := filepath.Join(t.TempDir(), "crashed")
	copyTree(t, cfg.Dir, crashed)

	cfg2 := cfg
	cfg2.Dir = crashed
	m2, _ := newManagerAt(t, cfg2)
	require.NoError(t, m2.OpenExisting(context.Background()))
	require.Equal(t, []string{"team-a", "team-b"}, m2.Tenants())
	for id, want := range data {
		requireSeries(t, m2, id, want)
		requireExemplars(t, m2, id, exs[id])
	}
	require.NoError(t, m2.Close())
	require.NoError(t, m.Close())
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}))
}

// TestCloseWaitsForWrites holds a tenant the way an in-flight write does and checks that Close refuses
// new writes at once but waits for the one in flight, whose data is then durable.
func TestCloseWaitsForWrites(t *testing.T) {
	cfg := testConfig(t.TempDir())
	m, reg := newManagerAt(t, cfg)
	mustWrite(t, m, "t", prompb.TimeSeries{Labels: lbls("__name__", "a"), Samples: floats(float64(t0), 1)})
	d, err := m.get(context.Background(), "t")
	require.NoError(t, err)

	d.mu.RLock() // what Write holds while it appends and commits
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	require.Eventually(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.closing
	}, 10*time.Second, time.Millisecond)

	// New writes are refused, to existing and new tenants alike.
	for _, id := range []string{"t", "new"} {
		_, err := m.Write(context.Background(), id, []prompb.TimeSeries{{Labels: lbls("__name__", "a"), Samples: floats(float64(t0+1), 2)}}, nil, nil)
		require.ErrorIs(t, err, ErrClosed, id)
	}
	// The write in flight completes against a TSDB that is still open.
	app := d.tsdb.AppenderV2(context.Background())
	_, err = app.Append(0, labels.FromStrings("__name__", "a"), 0, t0+2, 3, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a write was in flight", err)
	default:
	}
	d.mu.RUnlock()
	require.NoError(t, <-closed)

	requireNoTenantSeries(t, reg)
	v, _ := metricValue(t, reg, "weir_tenants_open")
	require.Equal(t, 0.0, v)
	require.NoError(t, m.Close(), "closing twice is harmless")
	v, _ = metricValue(t, reg, "weir_tenants_open")
	require.Equal(t, 0.0, v, "closing twice must not count tenants twice")
	_, err = m.Write(context.Background(), "t", nil, nil, nil)
	require.ErrorIs(t, err, ErrClosed)

	m2, _ := newManagerAt(t, cfg)
	require.NoError(t, m2.OpenExisting(context.Background()))
	requireSeries(t, m2, "t", map[string][]point{key("__name__", "a"): {fp(t0, 1), fp(t0+2, 3)}})
}

// TestCloseDuringWrites closes the Manager under a load of writes: each write either succeeds, and its
// data survives, or fails with ErrClosed.
func TestCloseDuringWrites(t *testing.T) {
	cfg := testConfig(t.TempDir())
	m, reg := newManagerAt(t, cfg)
	tenants := []string{"a", "b", "c"}
	const writers = 6

	var acked [writers][]int64 // timestamps acknowledged per writer
	var failed [writers]error  // why each writer stopped
	var total atomic.Int64
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			id := tenants[g%len(tenants)]
			for i := int64(0); ; i++ {
				ts := t0 + i
				_, err := m.Write(context.Background(), id, []prompb.TimeSeries{{
					Labels:  lbls("__name__", "w", "writer", strconv.Itoa(g)),
					Samples: floats(float64(ts), float64(i)),
				}}, nil,

					nil)

				if err != nil {
					failed[g] = err
					return
				}
				acked[g] = append(acked[g], ts)
				total.Add(1)
			}
		})
	}
	require.Eventually(t, func() bool { return total.Load() >= 300 }, 30*time.Second, time.Millisecond)
	require.NoError(t, m.Close())
	wg.Wait()
	for g, err := range failed {
		require.ErrorIs(t, err, ErrClosed, "writer %d", g)
	}
	requireNoTenantSeries(t, reg)

	m2, _ := newManagerAt(t, cfg)
	require.NoError(t, m2.OpenExisting(context.Background()))
	require.Equal(t, tenants, m2.Tenants())
	for g := range writers {
		want := make([]point, len(acked[g]))
		for i, ts := range acked[g] {
			want[i] = fp(ts, float64(i))
		}
		got := query(t, m2, tenants[g%len(tenants)], labels.MustNewMatcher(labels.MatchEqual, "writer", strconv.Itoa(g)))
		requirePoints(t, want, got[key("__name__", "w", "writer", strconv.Itoa(g))], "writer ", g)
	}
}

func TestTenantsListsOnlyOpen(t *testing.T) {
	m, _ := newTestManager(t, nil)
	require.NoError(t, os.WriteFile(filepath.Join(m.cfg.Dir, "broken"), nil, 0o600))
	_, err := m.Write(context.Background(), "broken", nil, nil, nil)
	require.ErrorIs(t, err, ErrUnavailable)
	for _, id := range []string{"zeta", "alpha", "mid"} {
		_, err := m.Write(context.Background(), id, nil, nil, nil)
		require.NoError(t, err)
	}
	require.Equal(t, []string{"alpha", "mid", "zeta"}, m.Tenants())
}
