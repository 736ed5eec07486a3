package tenant

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/write"
)

// withRefCache makes every TSDB opened during the test get a cache from mk.
func withRefCache(t *testing.T, mk func() *refCache) {
	old := newRefCacheFor
	newRefCacheFor = mk
	t.Cleanup(func() { newRefCacheFor = old })
}

// constHash makes every label set collide.
func constHash(*[]byte, []prompb.Label) uint64 { return 42 }

// nameHash hashes only the metric name: series of one metric collide.
func nameHash(buf *[]byte, ls []prompb.Label) uint64 {
	return hashLabels(buf, ls[:1])
}

func tenantCache(t *testing.T, m *Manager, id string) *refCache {
	t.Helper()
	d, err := m.get(context.Background(), id)
	require.NoError(t, err)
	return d.refs
}

func TestSameLabels(t *testing.T) {
	ls := labels.FromStrings("__name__", "up", "job", "a")
	require.True(t, sameLabels(ls, lbls("__name__", "up", "job", "a")))
	require.False(t, sameLabels(ls, lbls("__name__", "up", "job", "b")))
	require.False(t, sameLabels(ls, lbls("__name__", "up", "joc", "a")))
	require.False(t, sameLabels(ls, lbls("__name__", "up")), "a prefix")
	require.False(t, sameLabels(ls, lbls("__name__", "up", "job", "a", "x", "y")), "longer")
	require.False(t, sameLabels(labels.EmptyLabels(), lbls("__name__", "up")))
	require.True(t, sameLabels(labels.EmptyLabels(), nil))
	in := lbls("__name__", "up", "job", "a")
	require.Zero(t, testing.AllocsPerRun(100, func() { sameLabels(ls, in) }))

	// The separator keeps moved boundaries apart.
	var buf []byte
	require.NotEqual(t, hashLabels(&buf, []prompb.Label{{Name: "ab", Value: "c"}}), hashLabels(&buf, []prompb.Label{{Name: "a", Value: "bc"}}))
	require.Zero(t, testing.AllocsPerRun(100, func() { hashLabels(&buf, in) }))
}

func TestRefCacheHitMissCollision(t *testing.T) {
	c := newRefCache(1000, time.Hour, time.Now())
	c.hash = constHash
	var buf []byte
	a, b := lbls("__name__", "a"), lbls("__name__", "b")
	h := c.hash(&buf, a)

	_, ok := c.get(h, a)
	require.False(t, ok, "empty cache")
	c.set(h, refEntry{ref: 1, lset: labels.FromStrings("__name__", "a")})
	e, ok := c.get(h, a)
	require.True(t, ok)
	require.Equal(t, storage.SeriesRef(1), e.ref)
	require.Equal(t, "a", e.lset.Get("__name__"))

	// b has a's hash: never a's ref, and it does not evict a.
	_, ok = c.get(h, b)
	require.False(t, ok, "a collision is a miss")
	c.set(h, refEntry{ref: 2, lset: labels.FromStrings("__name__", "b")})
	_, ok = c.get(h, b)
	require.False(t, ok)
	e, ok = c.get(h, a)
	require.True(t, ok)
	require.Equal(t, storage.SeriesRef(1), e.ref)

	// The same series under a new ref (recreated after head GC) replaces the old one.
	c.set(h, refEntry{ref: 7, lset: labels.FromStrings("__name__", "a")})
	e, _ = c.get(h, a)
	require.Equal(t, storage.SeriesRef(7), e.ref)
}

func TestRefCacheBounded(t *testing.T) {
	now := time.Now()
	c := newRefCache(64, time.Minute, now) // 2 entries per shard and generation
	var buf []byte
	for i := range 10_000 {
		in := lbls("__name__", "m", "i", strconv.Itoa(i))
		c.set(c.hash(&buf, in), refEntry{ref: storage.SeriesRef(i + 1), lset: labels.FromStrings("__name__", "m", "i", strconv.Itoa(i))})
		require.LessOrEqual(t, c.len(), 2*64)
	}

	// Generations: an entry used in the last one survives a rotation, an unused one is gone after two.
	c = newRefCache(1000, time.Minute, now)
	used, unused := lbls("__name__", "used"), lbls("__name__", "unused")
	c.set(c.hash(&buf, used), refEntry{ref: 1, lset: labels.FromStrings("__name__", "used")})
	c.set(c.hash(&buf, unused), refEntry{ref: 2, lset: labels.FromStrings("__name__", "unused")})
	c.maybeRotate(now.Add(30 * time.Second))
	require.Equal(t, 2, c.len(), "not due yet")
	for i := 1; i <= 3; i++ {
		c.maybeRotate(now.Add(time.Duration(i) * time.Minute))
		_, ok := c.get(c.hash(&buf, used), used)
		require.True(t, ok, "rotation %d", i)
	}
	_, ok := c.get(c.hash(&buf, unused), unused)
	require.False(t, ok)
	require.Equal(t, 1, c.len())
}

// TestWriteRefCacheCollisions writes through caches whose hashes collide: every series keeps its own
// points, and the ordering check within a request still works.
func TestWriteRefCacheCollisions(t *testing.T) {
	for name, hash := range map[string]func(*[]byte, []prompb.Label) uint64{"const": constHash, "name": nameHash, "xxhash": hashLabels} {
		t.Run(name, func(t *testing.T) {
			withRefCache(t, func() *refCache {
				c := newRefCache(1000, time.Hour, time.Now())
				c.hash = hash
				return c
			})
			m, _ := newTestManager(t, nil)
			ctx := context.Background()
			want := map[string][]point{}
			const n = 20
			for r := range 4 {
				var series []prompb.TimeSeries
				for i := range n {
					ts := t0 + int64(r*10)
					series = append(series, prompb.TimeSeries{
						Labels:  lbls("__name__", "m"+strconv.Itoa(i%3), "i", strconv.Itoa(i)),
						Samples: floats(float64(ts), float64(i*100+r)),
					})
					k := key("__name__", "m"+strconv.Itoa(i%3), "i", strconv.Itoa(i))
					want[k] = append(want[k], fp(ts, float64(i*100+r)))
				}
				// Series 0 again, later in the request: behind its first entry, so refused.
				series = append(series, prompb.TimeSeries{Labels: lbls("__name__", "m0", "i", "0"), Samples: floats(float64(t0+int64(r*10)-1), -1)})
				st, err := m.Write(ctx, "t", series, nil, nil)
				require.NoError(t, err)
				require.Equal(t, n, st.Appended[write.KindFloat], "request %d", r)
				require.Len(t, st.Rejected, 1)
				require.Equal(t, write.ReasonOutOfOrder, st.Rejected[0].Reason)
			}
			requireSeries(t, m, "t", want)
			switch name {
			case "const":
				require.Equal(t, 1, tenantCache(t, m, "t").len())
			case "xxhash":
				require.Equal(t, n, tenantCache(t, m, "t").len())
			}
		})
	}
}

// TestWriteRefCacheStaleAfterHeadCompaction: the head drops its series when its data is cut into a
// block; the cache's refs are then stale, and writes recreate the right series.
func TestWriteRefCacheStaleAfterHeadCompaction(t *testing.T) {
	m, _ := newTestManager(t, nil)
	ctx := context.Background()
	a, b := lbls("__name__", "a"), lbls("__name__", "b")
	for i := range 2 { // the second write caches both series
		_, err := m.Write(ctx, "t", []prompb.TimeSeries{{Labels: a, Samples: floats(float64(t0+int64(i)), 1)}, {Labels: b, Samples: floats(float64(t0+int64(i)), 2)}}, nil, nil)
		require.NoError(t, err)
	}
	c := tenantCache(t, m, "t")
	require.Equal(t, 2, c.len())
	var buf []byte
	old, ok := c.get(c.hash(&buf, a), a)
	require.True(t, ok)

	d, err := m.get(ctx, "t")
	require.NoError(t, err)
	require.NoError(t, d.flush())
	require.Zero(t, d.tsdb.Head().NumSeries(), "the head dropped the series: the cached refs are stale")

	// New series first, so that they take the next refs; then a and b with stale refs, a twice (the
	// second point behind the first: refused by the in-request check, which must follow the new ref).
	t1 := t0 + hourMs
	st, err := m.Write(ctx, "t", []prompb.TimeSeries{
		{Labels: lbls("__name__", "c"), Samples: floats(float64(t1), 3)},
		{Labels: b, Samples: floats(float64(t1), 20)},
		{Labels: a, Samples: floats(float64(t1), 10)},
		{Labels: a, Samples: floats(float64(t1-1), 11)},
		{Labels: a, Samples: floats(float64(t1+1), 12)},
	}, nil,

		nil)

	require.NoError(t, err)
	require.Equal(t, 4, st.Appended[write.KindFloat])
	require.Len(t, st.Rejected, 1)
	require.Equal(t, 3, st.Rejected[0].Series)
	e, ok := c.get(c.hash(&buf, a), a)
	require.True(t, ok)
	require.NotEqual(t, old.ref, e.ref, "the stale ref was replaced")

	_, err = m.Write(ctx, "t", []prompb.TimeSeries{{Labels: a, Samples: floats(float64(t1+2), 13)}, {Labels: b, Samples: floats(float64(t1+2), 21)}}, nil, nil)
	require.NoError(t, err)
	requireSeries(t, m, "t", map[string][]point{
		key("__name__", "a"): {fp(t0, 1), fp(t0+1, 1), fp(t1, 10), fp(t1+1, 12), fp(t1+2, 13)},
		key("__name__", "b"): {fp(t0, 2), fp(t0+1, 2), fp(t1, 20), fp(t1+2, 21)},
		key("__name__", "c"): {fp(t1, 3)},
	})
}

// TestWriteRefCacheAfterPruneReopen: a pruned and reopened tenant is a new TSDB, with a new cache.
func TestWriteRefCacheAfterPruneReopen(t *testing.T) {
	m, clk := newPruneManager(t, t.TempDir(), nil)
	ctx := context.Background()
	want := map[string][]point{}
	writeAt := func(ts int64, names ...string) {
		t.Helper()
		var series []prompb.TimeSeries
		for _, n := range names {
			series = append(series, prompb.TimeSeries{Labels: lbls("__name__", n), Samples: floats(float64(ts), float64(ts))})
			want[key("__name__", n)] = append(want[key("__name__", n)], fp(ts, float64(ts)))
		}
		st, err := m.Write(ctx, "t", series, nil, nil)
		require.NoError(t, err)
		require.Equal(t, len(names), st.Appended[write.KindFloat])
	}
	writeAt(t0, "a", "b", "c")
	writeAt(t0+1, "a", "b", "c")
	before := tenantCache(t, m, "t")
	require.Equal(t, 3, before.len())

	clk.Add(idleTimeout)
	pruned, err := m.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, pruned)

	// New series first: in the new TSDB they may take the refs a, b and c had.
	writeAt(t0+hourMs, "x", "y", "z", "c", "b", "a")
	after := tenantCache(t, m, "t")
	require.NotSame(t, before, after)
	writeAt(t0+hourMs+1, "a", "b", "c", "x", "y", "z")
	writeAt(t0+hourMs+2, "c", "a", "z", "b")
	requireSeries(t, m, "t", want)
}

// TestWriteRefCacheConcurrent: writers share a tenant and a small, colliding, rotating cache.
func TestWriteRefCacheConcurrent(t *testing.T) {
	withRefCache(t, func() *refCache {
		c := newRefCache(64, time.Millisecond, time.Now())
		c.hash = func(buf *[]byte, ls []prompb.Label) uint64 { return hashLabels(buf, ls) % 97 }
		return c
	})
	m, _ := newTestManager(t, nil)
	ctx := context.Background()
	const writers, perWriter, rounds = 4, 50, 20
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for r := range rounds {
				series := make([]prompb.TimeSeries, perWriter)
				for i := range series {
					series[i] = prompb.TimeSeries{
						Labels:  lbls("__name__", "m", "i", strconv.Itoa(i), "writer", strconv.Itoa(g)),
						Samples: floats(float64(t0+int64(r)), float64(g*1_000_000+i*1000+r)),
					}
				}
				st, err := m.Write(ctx, "t", series, nil, nil)
				if err != nil || st.Appended[write.KindFloat] != perWriter || len(st.Rejected) != 0 {
					t.Errorf("writer %d round %d: %v %+v", g, r, err, st)
					return
				}
			}
		})
	}
	wg.Wait()
	want := map[string][]point{}
	for g := range writers {
		for i := range perWriter {
			var pts []point
			for r := range rounds {
				pts = append(pts, fp(t0+int64(r), float64(g*1_000_000+i*1000+r)))
			}
			want[key("__name__", "m", "i", strconv.Itoa(i), "writer", strconv.Itoa(g))] = pts
		}
	}
	requireSeries(t, m, "t", want)
	require.LessOrEqual(t, tenantCache(t, m, "t").len(), 2*64)
}

// TestWriteRefCacheDoesNotAliasRequest: the request's label strings are overwritten after the write
// (the receive path reuses its buffers); the cache must not have kept them.
func TestWriteRefCacheDoesNotAliasRequest(t *testing.T) {
	m, _ := newTestManager(t, nil)
	ctx := context.Background()
	buf := []byte("aaaa")
	mk := func(ts int64) []prompb.TimeSeries {
		name := unsafeString(buf)
		return []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: name}}, Samples: floats(float64(ts), 1)}}
	}
	for i := range 3 {
		_, err := m.Write(ctx, "t", mk(t0+int64(i)), nil, nil)
		require.NoError(t, err)
	}
	copy(buf, "bbbb") // the same buffer now says another series
	for i := range 2 {
		_, err := m.Write(ctx, "t", mk(t0+int64(i)), nil, nil)
		require.NoError(t, err)
	}
	requireSeries(t, m, "t", map[string][]point{
		key("__name__", "aaaa"): {fp(t0, 1), fp(t0+1, 1), fp(t0+2, 1)},
		key("__name__", "bbbb"): {fp(t0, 1), fp(t0+1, 1)},
	})
	c := tenantCache(t, m, "t")
	require.Equal(t, 2, c.len())
	var hb []byte
	a := lbls("__name__", "aaaa")
	_, ok := c.get(c.hash(&hb, a), a)
	require.True(t, ok, "the cached labels of aaaa are still aaaa")
}

func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }

// TestWriteWrongHashes: the cache keys a caller gives (Write) are trusted for nothing but
// the lookup: hashes that collide, or that name another series' entry (shifted by one more every
// request), cost misses, and every point still goes to its own series.
func TestWriteWrongHashes(t *testing.T) {
	for _, mode := range []string{"right", "const", "shifted"} {
		t.Run(mode, func(t *testing.T) {
			m, _ := newTestManager(t, nil)
			ctx := context.Background()
			want := map[string][]point{}
			const n = 20
			var buf []byte
			for r := range 4 {
				var series []prompb.TimeSeries
				var hashes []uint64
				for i := range n {
					ts := t0 + int64(r*10)
					ls := lbls("__name__", "m", "i", strconv.Itoa(i))
					series = append(series, prompb.TimeSeries{Labels: ls, Samples: floats(float64(ts), float64(i*100+r))})
					want[key("__name__", "m", "i", strconv.Itoa(i))] = append(want[key("__name__", "m", "i", strconv.Itoa(i))], fp(ts, float64(i*100+r)))
					switch mode {
					case "right":
						hashes = append(hashes, hashLabels(&buf, ls))
					case "const":
						hashes = append(hashes, 7)
					case "shifted":
						hashes = append(hashes, uint64((i+r)%n))
					}
				}
				st, err := m.Write(ctx, "t", series, nil, hashes)
				require.NoError(t, err)
				require.Equal(t, n, st.Appended[write.KindFloat], "request %d", r)
				require.Empty(t, st.Rejected)
			}
			requireSeries(t, m, "t", want)
		})
	}
	m, _ := newTestManager(t, nil)
	_, err := m.Write(context.Background(), "t", []prompb.TimeSeries{{Labels: lbls("__name__", "m"), Samples: floats(float64(t0), 1)}}, nil, []uint64{1, 2})
	require.ErrorContains(t, err, "2 hashes for 1 series")
}
