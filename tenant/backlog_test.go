package tenant

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
)

// TestBacklogDrained: five tenants on disk, room for two. OpenExisting opens two and leaves three in
// the backlog, without an error; the drain waits while there is no room, and once pruning made room
// it opens, flushes, ships and closes each of them, except the one a write opened meanwhile, which
// stays open. Every sample written before the restart ends up in the bucket.
func TestBacklogDrained(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ids := []string{"t0", "t1", "t2", "t3", "t4"}
	series := func(id string, ts int64) prompb.TimeSeries {
		return prompb.TimeSeries{Labels: lbls("__name__", "backlog", "of", id), Samples: floats(float64(ts), 1)}
	}
	want := map[string][]point{}
	{
		cfg := testConfig(dir)
		m1, _ := newManagerAt(t, cfg)
		for i, id := range ids {
			mustWrite(t, m1, id, series(id, t0+int64(i)))
			want[key("__name__", "backlog", "of", id)] = []point{fp(t0+int64(i), 1)}
		}
		require.NoError(t, m1.Close(), "the WALs keep every sample; nothing is flushed")
	}

	bkt := objstore.NewInMemBucket()
	m, clk := newPruneManager(t, dir, bkt)
	// Open files: 866 in use besides the tenants, 10 per open tenant, a limit of 1000: with the reserve
	// (100 + 2 per tenant) there is room for two tenants, and for three more once those are closed.
	files := m.opens.resources[0]
	m.opens.mu.Lock()
	m.opens.now = clk.Now
	m.opens.resources = m.opens.resources[:1]
	files.perOpen = 10
	files.limit = func() (int, error) { return 1000, nil }
	files.count = func() (int, error) { return 866 + 10*int(testutil.ToFloat64(m.metrics.open)), nil }
	m.opens.mu.Unlock()

	require.NoError(t, m.OpenExisting(ctx), "no room is no start-up error")
	require.Equal(t, []string{"t0", "t1"}, m.Tenants())
	require.Equal(t, 3.0, gauge(t, clk.reg, "weir_startup_tenants_waiting"))

	clk.Add(time.Second) // the guard counts again
	require.True(t, m.drainBacklog(ctx), "no room: the backlog waits")
	require.Equal(t, 3.0, gauge(t, clk.reg, "weir_startup_tenants_waiting"))
	require.Empty(t, bucketBlocks(t, bkt))

	clk.Add(idleTimeout)
	pruned, err := m.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"t0", "t1"}, pruned)
	clk.Add(time.Second)
	mustWrite(t, m, "t3", series("t3", t0+10)) // a write opens a backlog tenant itself
	want[key("__name__", "backlog", "of", "t3")] = append(want[key("__name__", "backlog", "of", "t3")], fp(t0+10, 1))

	require.False(t, m.drainBacklog(ctx), "room for all: the backlog is empty")
	require.Zero(t, gauge(t, clk.reg, "weir_startup_tenants_waiting"))
	require.Equal(t, []string{"t3"}, m.Tenants(), "the drained tenants are closed again; the written one is not")
	require.Equal(t, 4.0, gauge(t, clk.reg, "weir_tenants_pruned_total"))

	require.NoError(t, m.Flush(ctx)) // what a stop does: t3's head goes to the bucket too
	got := bucketData(t, bkt)
	for _, id := range ids {
		k := key("__name__", "backlog", "of", id)
		requirePoints(t, want[k], got[k], fmt.Sprintf("tenant %s in the bucket", id))
	}
}
