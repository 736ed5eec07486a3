package tenant

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	wtestutil "github.com/weir-metrics/weir/internal/testutil"
)

// backlogSeries is tenant id's one series, with one sample at ts.
func backlogSeries(id string, ts int64) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: lbls("__name__", "backlog", "of", id), Samples: floats(float64(ts), 1)}
}

// writeAndClose writes one sample to each tenant with a Manager on dir and closes it: the samples are
// in the WALs only. It returns them, by series.
func writeAndClose(t *testing.T, dir string, ids []string) map[string][]point {
	t.Helper()
	m, _ := newManagerAt(t, testConfig(dir))
	want := map[string][]point{}
	for i, id := range ids {
		mustWrite(t, m, id, backlogSeries(id, t0+int64(i)))
		want[key("__name__", "backlog", "of", id)] = []point{fp(t0+int64(i), 1)}
	}
	require.NoError(t, m.Close(), "the WALs keep every sample; nothing is flushed")
	return want
}

// limitOpenFiles makes m's open guard see limit open files, of which 866 are in use besides the
// tenants and 10 more per open tenant, on clk's time. With a limit of 1000 (and the reserve: 100 + 2
// per tenant) that is room for two tenants.
func limitOpenFiles(m *Manager, clk *pruneEnv, limit *atomic.Int64) {
	m.opens.mu.Lock()
	defer m.opens.mu.Unlock()
	files := m.opens.resources[0]
	m.opens.now = clk.Now
	m.opens.resources = m.opens.resources[:1]
	files.perOpen = 10
	files.limit = func() (int, error) { return int(limit.Load()), nil }
	files.count = func() (int, error) { return 866 + 10*int(testutil.ToFloat64(m.metrics.open)), nil }
}

// backlogManager writes one sample to each tenant and closes, then returns a Manager on the same data
// (not opened yet) with an in-memory bucket, the samples written, and the open-file limit it sees
// (1000 at first: room for two tenants, limitOpenFiles).
func backlogManager(t *testing.T, ids []string) (*Manager, *pruneEnv, *objstore.InMemBucket, map[string][]point, *atomic.Int64) {
	t.Helper()
	dir := t.TempDir()
	want := writeAndClose(t, dir, ids)
	bkt := objstore.NewInMemBucket()
	m, clk := newPruneManager(t, dir, bkt)
	limit := &atomic.Int64{}
	limit.Store(1000)
	limitOpenFiles(m, clk, limit)
	return m, clk, bkt, want, limit
}

// TestBacklogDrained: five tenants on disk, room for two. OpenExisting opens two and leaves three in
// the backlog, without an error; the drain waits while there is no room, and once pruning made room
// it opens, flushes, ships and closes each of them, except the one a write opened meanwhile, which
// stays open. Every sample written before the restart ends up in the bucket.
func TestBacklogDrained(t *testing.T) {
	ctx := context.Background()
	ids := []string{"t0", "t1", "t2", "t3", "t4"}
	m, clk, bkt, want, _ := backlogManager(t, ids)

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
	mustWrite(t, m, "t3", backlogSeries("t3", t0+10)) // a write opens a backlog tenant itself
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

// TestRunDrainsBacklog: Run is started before OpenExisting (as the node starts them) and drains the
// backlog that OpenExisting leaves, once the limit is raised.
func TestRunDrainsBacklog(t *testing.T) {
	m, clk, bkt, want, limit := backlogManager(t, []string{"t0", "t1", "t2", "t3"})
	looked := make(chan struct{}, 1)
	m.hooks.drained = func() {
		select {
		case looked <- struct{}{}:
		default:
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	<-looked // Run looked at the backlog before there was one
	require.NoError(t, m.OpenExisting(ctx))
	require.Equal(t, 2.0, gauge(t, clk.reg, "weir_startup_tenants_waiting"))

	limit.Store(2000)
	clk.Add(time.Second) // the guard counts again
	wtestutil.Eventually(t, 10*time.Second, 10*time.Millisecond, "the backlog drained", func() error {
		if v := gauge(t, clk.reg, "weir_startup_tenants_waiting"); v > 0 {
			return fmt.Errorf("%v waiting", v)
		}
		return nil
	})
	got := bucketData(t, bkt)
	for _, id := range []string{"t2", "t3"} {
		k := key("__name__", "backlog", "of", id)
		requirePoints(t, want[k], got[k], fmt.Sprintf("tenant %s in the bucket", id))
	}
}
