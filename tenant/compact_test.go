package tenant

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// compactableTenant writes a head spanning 5h to tenant id, due for a head compaction, and returns
// what it wrote.
func compactableTenant(t *testing.T, m *Manager, id string) map[string][]point {
	t.Helper()
	want := writeSpan(t, m, id, 3, t0, 5*time.Hour)
	d, err := m.get(context.Background(), id)
	require.NoError(t, err)
	require.True(t, d.headCompactable(), "a 5h head is due for compaction")
	return want
}

func TestTSDBsLeaveHeadCompactionToTheManager(t *testing.T) {
	m, reg := newTestManager(t, nil)
	want := compactableTenant(t, m, "t")
	d, err := m.get(context.Background(), "t")
	require.NoError(t, err)

	// The commit that made the head compactable asked the TSDB to compact; it declined.
	require.Eventually(t, func() bool {
		v, _ := metricValue(t, reg, "prometheus_tsdb_compactions_skipped_total")
		return v >= 1
	}, 10*time.Second, time.Millisecond)
	require.Empty(t, d.tsdb.Blocks(), "the TSDB compacted its head itself")

	m.compactHeads(context.Background())
	require.NotEmpty(t, d.tsdb.Blocks(), "a round compacts a due head")
	require.False(t, d.headCompactable(), "a round cuts every full range")
	for _, b := range d.tsdb.Blocks() {
		meta := b.Meta()
		require.Equal(t, BlockDuration.Milliseconds(), meta.MaxTime-meta.MinTime+mod(meta.MinTime, BlockDuration.Milliseconds()),
			"block %s does not end on a 2h boundary", meta.ULID)
	}
	requireData(t, want, query(t, m, "t"), "after the head compaction")
	v, _ := metricValue(t, reg, "weir_tsdb_head_compactions_pending")
	require.Zero(t, v)
}

func TestHeadCompactionsBounded(t *testing.T) {
	const tenants, concurrency = 6, 2
	m, reg := newTestManager(t, func(c *Config) { c.HeadCompactionConcurrency = concurrency })
	want := map[string]map[string][]point{}
	for i := range tenants {
		id := fmt.Sprintf("t%d", i)
		want[id] = compactableTenant(t, m, id)
	}
	// Each compaction waits in the hook until released, so that every one the round lets start at once
	// is in the hook at the same time.
	var inFlight, most atomic.Int32
	release, failed := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(failed) }) // before the Manager's Close, which waits for the hooks
	m.hooks.headCompaction = func(*db) {
		n := inFlight.Add(1)
		for {
			old := most.Load()
			if n <= old || most.CompareAndSwap(old, n) {
				break
			}
		}
		select {
		case <-release:
		case <-failed:
		}
		inFlight.Add(-1)
	}
	var wg sync.WaitGroup
	wg.Go(func() { m.compactHeads(context.Background()) })
	for left := tenants; left > 0; left-- {
		require.Eventually(t, func() bool { return inFlight.Load() == int32(min(left, concurrency)) }, 10*time.Second, time.Millisecond)
		if left == tenants {
			pending, _ := metricValue(t, reg, "weir_tsdb_head_compactions_pending")
			require.Equal(t, float64(tenants), pending, "tenants due, none compacted yet")
		}
		release <- struct{}{} // taken by exactly one waiting compaction
	}
	wg.Wait()
	pending, _ := metricValue(t, reg, "weir_tsdb_head_compactions_pending")
	require.Zero(t, pending)
	require.Equal(t, int32(concurrency), most.Load(), "compactions running at once")
	for id, w := range want {
		d, err := m.get(context.Background(), id)
		require.NoError(t, err)
		require.NotEmpty(t, d.tsdb.Blocks(), "tenant %s not compacted", id)
		requireData(t, w, query(t, m, id), id)
	}
}

// TestRunCompactsHeads: the write that makes a head due starts a round at once, as a TSDB compacts on
// such a commit, not a whole interval later.
func TestRunCompactsHeads(t *testing.T) {
	m, _ := newTestManager(t, nil)
	m.compactInterval = time.Hour // only the write's wake-up can start the round in time
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	want := writeSpan(t, m, "t", 3, t0, 5*time.Hour) // due: a round may be compacting it already
	d, err := m.get(ctx, "t")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		d.mu.RLock() // a round may be compacting it
		defer d.mu.RUnlock()
		return !d.headCompactable()
	}, 10*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.NotEmpty(t, d.tsdb.Blocks())
	requireData(t, want, query(t, m, "t"), "after Run compacted")
}
