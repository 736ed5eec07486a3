package tenant

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
)

// TestExpirePrunedTenant: a pruned tenant's directory is removed once its newest sample is older
// than the retention (6h here), not before; its blocks are in the bucket. A tenant written to again
// after its prune is not removed, and a write for a removed tenant starts it afresh.
func TestExpirePrunedTenant(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	dir := t.TempDir()
	m, clk := newPruneManager(t, dir, bkt)
	ctx := context.Background()
	oldData := writeSpan(t, m, "old", 2, t0, time.Hour) // newest sample at t0+59m
	mustWrite(t, m, "recent", backlogSeries("recent", t0+5*hourMs))

	clk.Add(idleTimeout)
	pruned, err := m.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"old", "recent"}, pruned)
	require.Empty(t, m.expireTenants(), "nothing is past retention yet")

	clk.Add(6*time.Hour - time.Minute) // t0+6h59m: old's newest sample is 6h old
	require.Empty(t, m.expireTenants())
	clk.Add(time.Minute)
	require.Equal(t, []string{"old"}, m.expireTenants())
	require.NoDirExists(t, filepath.Join(dir, "old"))
	require.NoDirExists(t, filepath.Join(dir, "old"+deletingSuffix))
	require.DirExists(t, filepath.Join(dir, "recent"))
	require.Equal(t, 1.0, gauge(t, clk.reg, "weir_tenants_expired_total"))
	inBucket := bucketData(t, bkt)
	for k, want := range oldData {
		requirePoints(t, want, inBucket[k], k+" in the bucket")
	}

	// Reopened by a write: no longer the pruned tenant it was.
	mustWrite(t, m, "recent", backlogSeries("recent", t0+5*hourMs+60_000))
	clk.Add(24 * time.Hour)
	require.Empty(t, m.expireTenants())
	require.DirExists(t, filepath.Join(dir, "recent"))

	// A removed tenant starts again empty.
	again := writeSpan(t, m, "old", 1, t0+31*hourMs, time.Minute)
	requireSeries(t, m, "old", again)
}

// TestExpireLeftoversRemovedAtStart: a removal cut short by a crash leaves a renamed directory,
// which no tenant can be named; the next start removes it and opens the tenants beside it.
func TestExpireLeftoversRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	{
		m, _ := newManagerAt(t, testConfig(dir))
		mustWrite(t, m, "kept", backlogSeries("kept", t0))
		require.NoError(t, m.Close())
	}
	left := filepath.Join(dir, "gone"+deletingSuffix)
	require.NoError(t, os.MkdirAll(filepath.Join(left, "wal"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(left, "wal", "00000000"), []byte("x"), 0o600))

	m, _ := newManagerAt(t, testConfig(dir))
	require.NoError(t, m.OpenExisting(context.Background()))
	require.NoDirExists(t, left)
	require.Equal(t, []string{"kept"}, m.Tenants())
}

// TestPruneShipsOutOfOrderSamples: with an out-of-order window, the prune's flush cuts the
// out-of-order head too, so the samples that came late are in the bucket before the tenant is closed
// (and may expire with it), not only in its WBL until a later open.
func TestPruneShipsOutOfOrderSamples(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	cfg := testConfig(t.TempDir())
	cfg.IdleTimeout, cfg.ShipInterval, cfg.OutOfOrderWindow = idleTimeout, time.Minute, time.Hour
	m, _ := newManagerWith(t, cfg, bkt)
	clk := &fakeClock{}
	m.now, m.epoch = clk.Now, clk.Now()

	ls := lbls("__name__", "late")
	mustWrite(t, m, "ooo", prompb.TimeSeries{Labels: ls, Samples: floats(float64(t0+30*60_000), 30)})
	st := mustWrite(t, m, "ooo", prompb.TimeSeries{Labels: ls, Samples: floats(float64(t0+10*60_000), 10)})
	require.Empty(t, st.Rejected, "within the out-of-order window")

	clk.Add(idleTimeout)
	pruned, err := m.Prune(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"ooo"}, pruned)
	requirePoints(t, []point{fp(t0+10*60_000, 10), fp(t0+30*60_000, 30)}, bucketData(t, bkt)[key("__name__", "late")])
}

// TestPrunedTenantStaysClosedAtStart: a tenant a prune closed is not opened by the next start (it
// has nothing to replay) and still expires; its next write opens it, first removing the mark, so
// that the start after that replays what the write left in the WAL.
func TestPrunedTenantStaysClosedAtStart(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	dir := t.TempDir()
	ctx := context.Background()
	m1, clk := newPruneManager(t, dir, bkt)
	idleData := writeSpan(t, m1, "idle", 1, t0, 10*time.Minute)
	writeSpan(t, m1, "gone", 1, t0, 10*time.Minute)
	clk.Add(idleTimeout)
	mustWrite(t, m1, "busy", backlogSeries("busy", t0))
	pruned, err := m1.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"gone", "idle"}, pruned)
	require.FileExists(t, filepath.Join(dir, "idle", prunedFile))
	require.NoFileExists(t, filepath.Join(dir, "busy", prunedFile))
	require.NoError(t, m1.Close())

	m2, clk2 := newPruneManager(t, dir, bkt)
	require.NoError(t, m2.OpenExisting(ctx))
	require.Equal(t, []string{"busy"}, m2.Tenants(), "the pruned tenants stay closed")
	require.Equal(t, 1.0, gauge(t, clk2.reg, "weir_startup_tenants"))

	newData := writeSpan(t, m2, "idle", 1, t0+20*60_000, 10*time.Minute)
	require.NoFileExists(t, filepath.Join(dir, "idle", prunedFile), "an open removes the mark")
	requireSeries(t, m2, "idle", merge(idleData, newData))

	clk2.Add(6*time.Hour + time.Hour) // past retention of "gone"'s data, as of the clock
	require.Equal(t, []string{"gone"}, m2.expireTenants(), "a tenant pruned before the restart expires too")
	require.NoError(t, m2.Close())

	m3, _ := newPruneManager(t, dir, bkt)
	require.NoError(t, m3.OpenExisting(ctx))
	require.Equal(t, []string{"busy", "idle"}, m3.Tenants(), "written since its prune: opened and replayed")
	requireSeries(t, m3, "idle", merge(idleData, newData))
}
