package tenant

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// The series-reference cache maps the labels of an incoming series, as the request gives them, to the
// series' reference in the tenant's head and the head's own copy of its labels. A hit skips building a
// labels.Labels from the request and the head's hash lookup (GetRef): the write appends with the cached
// ref and labels.
//
// Correctness:
//   - Collisions. The key is a 64-bit hash of the request's labels: the router's placement hash when the
//     write carries it (Manager.Write), else the cache's own (hashLabels). In a ring every write
//     carries it, on a single node none does; a node getting both would only cache a series twice. Every
//     hit is confirmed by comparing the cached labels with the request's, label by label (no allocation).
//     A different series under the same hash (or a wrong hash from the caller) is a miss, so a collision
//     can never append to the wrong series.
//   - Staleness. A cached ref may name a series the head has since dropped (head GC after compaction).
//     The head never reuses a ref within one TSDB instance, and its Append falls back to the labels it is
//     given when the ref is unknown (tsdb/head_append_v2.go: getByID, then getOrCreate(ls)); the cached
//     labels are the series' labels, so a stale ref recreates the right series, and the ref Append
//     returns replaces the cached one. Refs are not stable across TSDB instances (a reopened WAL may hand
//     a dropped series' ref to a new one), so a cache belongs to one *tsdb.DB and dies with it: a pruned
//     and reopened tenant starts with an empty cache.
//   - Aliasing. Nothing from the request is kept: a cached entry holds the labels the head returned
//     (GetRef), which the head owns and never changes.
//
// Memory: two generations per shard. Lookups look in the current one, then in the previous one (and
// move a hit there to the current). The current generation becomes the previous one, and the previous
// one is dropped, every refCacheGeneration or when a shard's current generation is full; an entry
// unused for two generations is gone, so series churn does not grow the cache, and it never holds more
// than 2×refCacheMaxEntries entries. Cached labels share their memory with the head's series, so an
// entry costs its map slot (~40 bytes) while its series lives.

const (
	refCacheShards = 32 // power of two
	// refCacheMaxEntries bounds the entries of one generation of one tenant's cache.
	refCacheMaxEntries = 4 << 20
	// refCacheGeneration is how long an unused entry survives at least (at most twice that).
	refCacheGeneration = 15 * time.Minute
)

// refEntry is a cached series: its ref in the head and the head's labels of it.
type refEntry struct {
	ref  storage.SeriesRef
	lset labels.Labels
}

type refShard struct {
	mu        sync.Mutex
	cur, prev map[uint64]refEntry
	_         [40]byte // keep shards on separate cache lines
}

// refCache is one TSDB's series-reference cache; safe for concurrent use.
type refCache struct {
	shards     [refCacheShards]refShard
	maxPerGen  int   // per shard
	generation int64 // ns
	rotated    atomic.Int64
	// hash hashes a request's labels; a field so that tests can force collisions.
	hash func(buf *[]byte, ls []prompb.Label) uint64
}

func newRefCache(maxEntries int, generation time.Duration, now time.Time) *refCache {
	c := &refCache{maxPerGen: max(1, maxEntries/refCacheShards), generation: int64(generation), hash: hashLabels}
	for i := range c.shards {
		c.shards[i].cur = map[uint64]refEntry{}
	}
	c.rotated.Store(now.UnixNano())
	return c
}

// hashLabels hashes names and values, each followed by a separator byte that cannot occur in a label
// name and is invalid UTF-8 in a value, so that ("ab","c") and ("a","bc") differ. The labels are
// copied into *buf first (reused): one pass of xxhash over it is faster than one per string.
func hashLabels(buf *[]byte, ls []prompb.Label) uint64 {
	b := (*buf)[:0]
	for i := range ls {
		b = append(b, ls[i].Name...)
		b = append(b, 0xff)
		b = append(b, ls[i].Value...)
		b = append(b, 0xff)
	}
	*buf = b
	return xxhash.Sum64(b)
}

// get returns the cached series whose labels are exactly ls, if any.
func (c *refCache) get(h uint64, ls []prompb.Label) (refEntry, bool) {
	s := &c.shards[h&(refCacheShards-1)]
	s.mu.Lock()
	e, ok := s.cur[h]
	if !ok {
		if e, ok = s.prev[h]; ok && sameLabels(e.lset, ls) {
			delete(s.prev, h)
			s.put(h, e, c.maxPerGen)
			s.mu.Unlock()
			return e, true
		}
	}
	s.mu.Unlock()
	if !ok || !sameLabels(e.lset, ls) {
		return refEntry{}, false
	}
	return e, true
}

// set caches series e under hash h, the hash of its labels. A different series cached under h (a
// collision) keeps its place; e stays uncached and is looked up in the head each time.
func (c *refCache) set(h uint64, e refEntry) {
	s := &c.shards[h&(refCacheShards-1)]
	s.mu.Lock()
	if old, ok := s.cur[h]; !ok || labels.Equal(old.lset, e.lset) {
		s.put(h, e, c.maxPerGen)
	}
	s.mu.Unlock()
}

// put stores e in the current generation, first rotating a full one.
func (s *refShard) put(h uint64, e refEntry, maxEntries int) {
	if _, ok := s.cur[h]; !ok && len(s.cur) >= maxEntries {
		s.prev, s.cur = s.cur, make(map[uint64]refEntry, len(s.cur))
	}
	s.cur[h] = e
}

// maybeRotate starts a new generation in every shard when the current one is older than the
// generation length. Cheap when it is not: called once per write.
func (c *refCache) maybeRotate(now time.Time) {
	last := c.rotated.Load()
	if now.UnixNano()-last < c.generation || !c.rotated.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.prev, s.cur = s.cur, make(map[uint64]refEntry, len(s.cur))
		s.mu.Unlock()
	}
}

// len returns the number of entries, both generations; for tests.
func (c *refCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}

// sameLabels tells whether ls holds exactly the labels of p, in the same order, without allocating.
func sameLabels(ls labels.Labels, p []prompb.Label) bool {
	i, same := 0, true
	ls.Range(func(l labels.Label) {
		if !same {
			return
		}
		if i >= len(p) || p[i].Name != l.Name || p[i].Value != l.Value {
			same = false
			return
		}
		i++
	})
	return same && i == len(p)
}

// newRefCacheFor makes the cache of a tenant TSDB when it opens; replaced in tests.
var newRefCacheFor = func() *refCache {
	return newRefCache(refCacheMaxEntries, refCacheGeneration, time.Now())
}
