package loadgen

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Latencies are kept in a log-linear histogram of microseconds (as HDR histograms do): exact below
// 128 µs, then 64 buckets per power of two, so any quantile is within 1/64 (1.6%) of the truth.
const (
	subBits  = 7
	subCount = 1 << subBits
	half     = subCount / 2
	nBuckets = (64-subBits)*half + subCount
)

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits
	return e*half + int(v>>e)
}

// bucketRange is the range of values [lo, hi] counted in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	e := uint(i/half - 1)
	m := uint64(i%half + half)
	return m << e, (m+1)<<e - 1
}

// histogram counts latencies; safe for concurrent use.
type histogram struct {
	counts [nBuckets]atomic.Uint64
	max    atomic.Uint64
}

func (h *histogram) observe(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	h.counts[bucketOf(us)].Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// histSnapshot is a copy of a histogram's counts.
type histSnapshot [nBuckets]uint64

func (h *histogram) snapshot(s *histSnapshot) {
	for i := range h.counts {
		s[i] = h.counts[i].Load()
	}
}

// quantile returns the q-quantile (0 < q ≤ 1) of the counts in s minus those in prev (nil: none), as
// the middle of its bucket; 0 without observations.
func (s *histSnapshot) quantile(prev *histSnapshot, q float64) time.Duration {
	var total uint64
	for i := range s {
		total += s.count(prev, i)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.999999)
	rank = min(max(rank, 1), total)
	var seen uint64
	for i := range s {
		seen += s.count(prev, i)
		if seen >= rank {
			lo, hi := bucketRange(i)
			return time.Duration(lo+(hi-lo)/2) * time.Microsecond
		}
	}
	return 0
}

func (s *histSnapshot) count(prev *histSnapshot, i int) uint64 {
	if prev == nil {
		return s[i]
	}
	return s[i] - prev[i]
}

// stats are the run's counters, updated by the workers and read by the progress line and the report.
type stats struct {
	requests      atomic.Int64 // sent, whatever the outcome
	requestsOK    atomic.Int64
	requestsErr   atomic.Int64 // answered with an error, or not at all
	samplesSent   atomic.Int64
	samplesAcked  atomic.Int64
	bytesSent     atomic.Int64 // compressed request bodies
	transportErrs atomic.Int64
	byStatus      [600]atomic.Int64 // failed requests by HTTP status code
	latency       histogram

	mu        sync.Mutex
	firstErrs map[string]string // by status code, or "transport": the first error message seen
}

func (s *stats) noteError(key, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstErrs == nil {
		s.firstErrs = map[string]string{}
	}
	if _, ok := s.firstErrs[key]; !ok {
		s.firstErrs[key] = msg
	}
}
