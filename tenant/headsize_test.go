package tenant

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
)

func TestHeadSizeFor(t *testing.T) {
	walOf := func(bytes int) string {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "wal", "checkpoint.00000001"), 0o750))
		// Sparse files: their size is what counts.
		for name, size := range map[string]int{"00000002": bytes / 2, filepath.Join("checkpoint.00000001", "00000000"): bytes - bytes/2} {
			f, err := os.Create(filepath.Join(dir, "wal", name))
			require.NoError(t, err)
			require.NoError(t, f.Truncate(int64(size)))
			require.NoError(t, f.Close())
		}
		return dir
	}
	for _, tc := range []struct {
		name        string
		cfg         int
		dir         string
		procs       int
		rank        int
		wantStripes int
		wantBuffer  int
	}{
		{"fixed", 16384, t.TempDir(), 2, 1000, 16384, chunks.DefaultWriteBufferSize},
		{"fixed small", 256, walOf(1 << 30), 2, 1, 256, chunks.DefaultWriteBufferSize},
		{"first tenant of the node: today's head", StripeSizeAuto, t.TempDir(), 2, 1, MaxStripeSize, chunks.DefaultWriteBufferSize},
		{"third tenant", StripeSizeAuto, t.TempDir(), 2, 3, 4096, 1 << 20},
		{"200th new tenant, 2 cores", StripeSizeAuto, filepath.Join(t.TempDir(), "absent"), 2, 200, 128, chunks.MinWriteBufferSize},
		{"200th new tenant, 64 cores", StripeSizeAuto, t.TempDir(), 64, 200, 4096, 1 << 20},
		{"small WAL", StripeSizeAuto, walOf(1 << 20), 2, 200, 128, chunks.MinWriteBufferSize},
		{"100 MiB WAL", StripeSizeAuto, walOf(100 << 20), 2, 200, 8192, 2 << 20},
		{"1 GiB WAL is capped", StripeSizeAuto, walOf(1 << 30), 2, 200, MaxStripeSize, chunks.DefaultWriteBufferSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := headSizeFor(tc.cfg, tc.dir, tc.procs, tc.rank)
			require.Equal(t, tc.wantStripes, got.StripeSize)
			require.Equal(t, tc.wantBuffer, got.ChunkWriteBuffer)
			require.True(t, isPow2(got.StripeSize))
		})
	}
}

// TestStripeSizeGrowsWithTheTenant: a tenant created when many are open gets a small head; once its
// WAL holds many series, its next open sizes the head for them.
func TestStripeSizeGrowsWithTheTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 150 TSDBs")
	}
	cfg := testConfig(t.TempDir())
	m, _ := newManagerAt(t, cfg)
	ctx := context.Background()
	openTenants(t, m, 150)
	for i := range 10 {
		_, err := m.Write(ctx, "grows", benchSeries(5000, strconv.Itoa(i)), nil, nil)
		require.NoError(t, err)
	}
	d, err := m.get(ctx, "grows")
	require.NoError(t, err)
	small := d.size.StripeSize
	require.Equal(t, headSizeFor(StripeSizeAuto, "", runtime.GOMAXPROCS(0), 151).StripeSize, small)
	require.NoError(t, m.Close())

	m, _ = newManagerAt(t, cfg)
	require.NoError(t, m.OpenExisting(ctx))
	d, err = m.get(ctx, "grows")
	require.NoError(t, err)
	require.Equal(t, uint64(50000), d.tsdb.Head().NumSeries())
	require.Greater(t, d.size.StripeSize, small, "WAL of %d bytes", d.size.WALBytesAtOpening)
}

// TestSmallTenantsCostKilobytes measures what the Go heap holds per open tenant of 100 series on a
// node that has many: the head sized by auto must stay within a few hundred KiB, where the TSDB's
// default stripes cost MiBs.
func TestSmallTenantsCostKilobytes(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2×20 TSDBs")
	}
	perTenant := func(stripes, warm int) uint64 {
		m, _ := newTestManager(t, func(c *Config) { c.StripeSize = stripes })
		// The first tenants warm what all tenants share (pools, the registry's maps), and take the
		// larger shares of the node's stripe budget.
		openTenants(t, m, warm)
		before := heapInUse()
		const tenants = 20
		for i := range tenants {
			_, err := m.Write(context.Background(), "t"+strconv.Itoa(i), benchSeries(100, "s"), nil, nil)
			require.NoError(t, err)
		}
		after := heapInUse()
		t.Logf("stripe size %d: heap %d before, %d after %d tenants", stripes, before, after, tenants)
		require.NoError(t, m.Close())
		return (after - min(before, after)) / tenants
	}
	auto := perTenant(StripeSizeAuto, 150)
	full := perTenant(MaxStripeSize, 1)
	t.Logf("heap per tenant of 100 series: auto %d KiB, stripe size %d: %d KiB", auto>>10, MaxStripeSize, full>>10)
	// 420 KiB measured at 2026-12-02 (half of it the TSDB's fixed per-head cost: postings map, summaries, WAL page).
	require.Less(t, auto, uint64(600<<10))
	require.Greater(t, full, 4*auto)
}

// openTenants opens n tenants of one series, warm-0 … warm-<n-1>.
func openTenants(t *testing.T, m *Manager, n int) {
	t.Helper()
	for i := range n {
		_, err := m.Write(context.Background(), "warm-"+strconv.Itoa(i), benchSeries(1, "w"), nil, nil)
		require.NoError(t, err)
	}
}

// heapInUse is the live heap after a full collection (two: the first moves sync.Pools to their victim
// caches, the second frees those).
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestPruneReturnsTheMemory: pruning idle tenants gives back what they held. The heap with 20
// tenants open minus the heap after all of them were pruned must be (nearly) all of what opening them
// took: a reference kept to a closed TSDB (a metric, a cache, the Manager's map) would keep its head.
func TestPruneReturnsTheMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 20 TSDBs")
	}
	m, clk := newPruneManager(t, t.TempDir(), nil)
	ctx := context.Background()
	_, err := m.Write(ctx, "warm", benchSeries(100, "s"), nil, nil) // what all tenants share, warmed
	require.NoError(t, err)
	before := heapInUse()
	const tenants = 20
	for i := range tenants {
		_, err := m.Write(ctx, "t"+strconv.Itoa(i), benchSeries(100, "s"), nil, nil)
		require.NoError(t, err)
	}
	open := heapInUse()
	clk.Add(idleTimeout)
	pruned, err := m.Prune(ctx)
	require.NoError(t, err)
	require.Len(t, pruned, tenants+1)
	after := heapInUse()
	t.Logf("heap: %d KiB before, %d KiB with %d tenants open, %d KiB after pruning them", before>>10, open>>10, tenants, after>>10)
	took := open - min(before, open)
	require.Greater(t, took, uint64(tenants*100<<10), "opening %d tenants took almost no memory: the measurement is broken", tenants)
	// The warm tenant was pruned too: after may go below before.
	require.Less(t, after, before+took/10, "pruning kept more than a tenth of what the tenants took")
}
