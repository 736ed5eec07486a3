package tenant

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
)

// TestForEachBound: every item runs, never more than n at once, and n do run at once (the first n
// wait for each other, so a forEach that ran them one by one would hang and fail the test's deadline).
func TestForEachBound(t *testing.T) {
	const items, n = 10, 3
	var inflight, most, ran atomic.Int32
	full := make(chan struct{})
	var once sync.Once
	errBoom := errors.New("boom")
	errs := forEach(t.Context(), make([]int, items), n, func(int) error {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := most.Load()
			if cur <= m || most.CompareAndSwap(m, cur) {
				break
			}
		}
		if cur == n {
			once.Do(func() { close(full) })
		}
		<-full
		if ran.Add(1)%2 == 0 {
			return errBoom
		}
		return nil
	})
	require.Equal(t, int32(items), ran.Load())
	require.Equal(t, int32(n), most.Load())
	require.Len(t, errs, items/2)
	require.ErrorIs(t, errs[0], errBoom)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ran.Store(0)
	require.Empty(t, forEach(ctx, make([]int, items), n, func(int) error { ran.Add(1); return nil }))
	require.LessOrEqual(t, ran.Load(), int32(n), "a cancelled context starts no more calls than the free slots")
}

// TestFlushShipsEveryTenant: Flush cuts every tenant's head, in parallel, and the bucket ends up with
// all of it; the WALs are then empty of samples, so a restart replays nothing twice.
func TestFlushShipsEveryTenant(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	cfg := testConfig(t.TempDir())
	cfg.ShipInterval, cfg.OpenConcurrency = time.Minute, 4
	m, _ := newManagerWith(t, cfg, bkt)
	want := map[string][]point{}
	const tenants = 12
	for i := range tenants {
		want = merge(want, writeSpan(t, m, "t"+strconv.Itoa(i), 3, t0, 30*time.Minute))
	}
	require.NoError(t, m.Flush(t.Context()))
	require.Len(t, bucketBlocks(t, bkt), tenants)
	require.Equal(t, want, bucketData(t, bkt))
	for _, d := range m.openDBs() {
		require.Zero(t, d.tsdb.Head().NumSeries(), "tenant %s", d.id)
	}
	require.NoError(t, m.Close())
	require.Empty(t, m.Tenants())
}
