package tenant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/otel/attribute"

	"github.com/weir-metrics/weir/write"
)

// writeScratch holds what one write reuses; pooled because it is needed on every request.
type writeScratch struct {
	builder   labels.ScratchBuilder
	hashBuf   []byte // request labels, hashed for the series-reference cache
	exemplars []exemplar.Exemplar
	// newest is the newest point accepted so far in this write, per series: a series may come in several
	// entries of one request (Prometheus sends a backlog one sample per entry).
	newest map[storage.SeriesRef]pointRef
	// older lists the points accepted in this write behind their series' newest one (out-of-order window
	// only), to find a timestamp given twice.
	older []pointRef
}

// pointRef is a point accepted in this write: its series, timestamp, and where it is in the request.
type pointRef struct {
	ref    storage.SeriesRef
	t      int64
	series int32 // index in the written slice
	index  int32 // index in the series' Samples, or in its Histograms when hist
	hist   bool
}

var scratchPool = sync.Pool{New: func() any {
	return &writeScratch{builder: labels.NewScratchBuilder(16), newest: map[storage.SeriesRef]pointRef{}}
}}

// Write appends series to tenant id's TSDB in one transaction and commits it: when Write returns a nil
// error, every appended point is in the WAL. Points the TSDB refuses for good (out of order, too old,
// duplicate with another value, invalid histogram) are skipped and reported in the stats; exemplars are
// best effort and never fail a write.
//
// hashes is nil, or a hash of every series' labels computed by the caller (a router's
// hashring.SeriesHash), which the series-reference cache (refcache.go) uses as its key instead of
// hashing the labels again; a count other than one per series is refused. A wrong hash can cost cache
// misses, never a write to another series: every cache hit is confirmed by comparing labels.
//
// Labels must be validated and sorted by the caller (the receive path does it once, before routing).
// A non-nil error means nothing was acknowledged: ErrUnavailable or ErrClosed (transient), a cancelled
// context, or a storage failure.
func (m *Manager) Write(ctx context.Context, id string, series []prompb.TimeSeries, extras []write.SeriesExtra, hashes []uint64) (write.Stats, error) {
	var stats write.Stats
	if hashes != nil && len(hashes) != len(series) {
		return stats, fmt.Errorf("write to tenant %s: %d hashes for %d series", id, len(hashes), len(series))
	}
	if extras != nil && len(extras) != len(series) {
		return stats, fmt.Errorf("write to tenant %s: %d series extras for %d series", id, len(extras), len(series))
	}
	if err := m.space.admit(); err != nil {
		return stats, err
	}
	// Held for reading until the commit: a prune or Close waits for this write (prune.go).
	d, err := m.acquire(ctx, id)
	if err != nil {
		return stats, err
	}
	defer d.mu.RUnlock()

	app, ok := d.tsdb.AppenderV2(ctx).(storage.ExemplarAppenderV2)
	if !ok {
		return stats, errors.New("TSDB appender does not accept exemplars")
	}
	sc := scratchPool.Get().(*writeScratch)
	defer func() {
		clear(sc.newest)
		sc.older = sc.older[:0]
		scratchPool.Put(sc)
	}()
	getRef, _ := app.(storage.GetRef)
	var cache *refCache
	if getRef != nil { // the cache is filled from GetRef's answers
		cache = d.refs
		cache.maybeRotate(time.Now())
	}

	// Spans cost a context value each when tracing is off; attributes only when a span records.
	_, span := tracer.Start(ctx, "tenant append")
	if span.IsRecording() {
		span.SetAttributes(attribute.String("tenant", id), attribute.Int("series", len(series)))
	}
	w := seriesWriter{app: app, getRef: getRef, cache: cache, series: series, extras: extras, hashes: hashes, sc: sc, stats: &stats, inOrder: m.cfg.OutOfOrderWindow == 0, exemplars: m.cfg.MaxExemplars > 0}
	for i := range series {
		if i%256 == 0 && ctx.Err() != nil {
			_ = app.Rollback()
			endSpan(span, ctx.Err())
			return write.Stats{}, fmt.Errorf("write cancelled: %w", ctx.Err())
		}
		if err := w.write(i, &series[i]); err != nil {
			_ = app.Rollback()
			endSpan(span, err)
			return write.Stats{}, fmt.Errorf("append to tenant %s: %w", id, err)
		}
	}
	span.End()
	_, span = tracer.Start(ctx, "tenant commit")
	err = app.Commit()
	endSpan(span, err)
	// Acknowledged only if no WAL write of this TSDB ever failed: a record after a torn one is lost at
	// the next open (walguard.go). A commit error with a failed WAL is that failure, and transient.
	if d.reg.walFailures() > 0 {
		d.walFailed.Store(true)
		m.space.refusedWAL.Inc()
		if err != nil {
			m.logger.Error("WAL write failed: the tenant takes no write until it is reopened, which repairs its WAL", "tenant", id, "err", err)
		}
		return write.Stats{}, errWALFailed(id)
	}
	if err != nil {
		return write.Stats{}, fmt.Errorf("commit to tenant %s: %w", id, err)
	}
	if extras != nil {
		d.meta.record(series, extras)
	}
	if d.headCompactable() {
		m.wakeCompactions()
	}
	return stats, nil
}

// seriesWriter appends the series of one write.
type seriesWriter struct {
	app     storage.ExemplarAppenderV2
	getRef  storage.GetRef // nil if the appender cannot look series up
	cache   *refCache      // the TSDB's series-reference cache (refcache.go); nil when getRef is nil
	series  []prompb.TimeSeries
	extras  []write.SeriesExtra // per series, or nil (Write)
	hashes  []uint64            // the caller's cache keys of series (Write), or nil
	sc      *writeScratch
	stats   *write.Stats
	inOrder bool // no out-of-order window: a series' timestamps must increase within a request too
	// prev and prevSeen are what the last check found for its series, for accept to reuse.
	prev      pointRef
	prevSeen  bool
	exemplars bool // exemplar storage enabled
}

func (w *seriesWriter) write(i int, ts *prompb.TimeSeries) error {
	// The head checks order against committed points only; within one transaction it would drop an
	// out-of-order or conflicting point silently at commit. Catch those here so the sender is told; this
	// needs the series' ref before its first append, as it may have come in an earlier entry.
	ref, ls, h, hit := w.lookup(i, ts.Labels)
	cachedRef := ref
	// Metadata goes with every point: the head writes a metadata record only when it changed.
	var ex *write.SeriesExtra
	var opts storage.AOptions
	if w.extras != nil {
		ex = &w.extras[i]
		opts.Metadata = ex.Metadata
	}
	for j := range ts.Samples {
		s := &ts.Samples[j]
		p := pointRef{t: s.Timestamp, series: int32(i), index: int32(j)}
		if ok, err := w.check(ref, p); !ok {
			w.skip(i, write.KindFloat, err)
			continue
		}
		r, err := w.app.Append(ref, ls, ex.Start(j), s.Timestamp, s.Value, nil, nil, opts)
		if err = w.handle(i, write.KindFloat, err); err != nil {
			return err
		}
		if r != 0 {
			ref = r
			w.accept(ref, p)
		}
	}

	for j := range ts.Histograms {
		hp := &ts.Histograms[j]
		p := pointRef{t: hp.Timestamp, series: int32(i), index: int32(j), hist: true}
		if ok, err := w.check(ref, p); !ok {
			w.skip(i, write.KindHistogram, err)
			continue
		}
		var r storage.SeriesRef
		var err error
		if hp.IsFloatHistogram() {
			r, err = w.app.Append(ref, ls, ex.Start(len(ts.Samples)+j), hp.Timestamp, 0, nil, hp.ToFloatHistogram(), opts)
		} else {
			r, err = w.app.Append(ref, ls, ex.Start(len(ts.Samples)+j), hp.Timestamp, 0, hp.ToIntHistogram(), nil, opts)
		}
		if err = w.handle(i, write.KindHistogram, err); err != nil {
			return err
		}
		if r != 0 {
			ref = r
			w.accept(ref, p)
		}
	}

	if hit && ref != cachedRef && ref != 0 {
		// A cached ref the head had dropped (head GC): Append recreated the series from the cached labels
		// under a new ref, which replaces the stale one.
		w.cache.set(h, refEntry{ref: ref, lset: ls})
	}
	if len(ts.Exemplars) > 0 {
		w.appendExemplars(i, ref, ls, ts.Exemplars)
	}
	return nil
}

// lookup finds series i, of labels in, in the series-reference cache, else builds its labels and asks
// the head. ref is 0 for a series the head does not have yet; hit tells that ref and ls came from the
// cache, under hash h (the caller's, or the cache's own).
func (w *seriesWriter) lookup(i int, in []prompb.Label) (ref storage.SeriesRef, ls labels.Labels, h uint64, hit bool) {
	if w.cache != nil {
		if w.hashes != nil {
			h = w.hashes[i]
		} else {
			h = w.cache.hash(&w.sc.hashBuf, in)
		}
		if e, ok := w.cache.get(h, in); ok {
			return e.ref, e.lset, h, true
		}
	}
	b := &w.sc.builder
	b.Reset()
	for _, l := range in {
		b.Add(l.Name, l.Value)
	}
	ls = b.Labels()
	if w.getRef == nil {
		return 0, ls, h, false
	}
	ref, headLabels := w.getRef.GetRef(ls, ls.Hash())
	if ref != 0 && w.cache != nil {
		// The head's own labels: they share its memory and alias nothing of the request. A series new to
		// the head is cached on its next write, once GetRef finds it.
		w.cache.set(h, refEntry{ref: ref, lset: headLabels})
	}
	return ref, ls, h, false
}

// check tells whether point p of series ref can go to the TSDB given the points of that series already
// accepted in this write. When it cannot, err says why, or is nil for an exact duplicate, which is
// accepted without being appended again, as the TSDB does.
func (w *seriesWriter) check(ref storage.SeriesRef, p pointRef) (ok bool, err error) {
	w.prev, w.prevSeen = pointRef{}, false
	if ref == 0 { // not seen in this write: GetRef would have found it
		return true, nil
	}
	newest, seen := w.sc.newest[ref]
	w.prev, w.prevSeen = newest, seen
	if !seen || p.t > newest.t {
		return true, nil
	}
	if p.t == newest.t {
		return false, w.conflict(newest, p)
	}
	if w.inOrder {
		return false, orderError(p.t, newest.t)
	}
	// Out-of-order window: older points are fine unless this write already gave one at that time.
	for _, o := range w.sc.older {
		if o.ref == ref && o.t == p.t {
			return false, w.conflict(o, p)
		}
	}
	return true, nil
}

// accept records point p of series ref as appended in this write, right after check passed it.
func (w *seriesWriter) accept(ref storage.SeriesRef, p pointRef) {
	p.ref = ref
	newest, seen := w.prev, w.prevSeen
	switch {
	case !seen || p.t > newest.t:
		w.sc.newest[ref] = p
		if seen && !w.inOrder {
			w.sc.older = append(w.sc.older, newest)
		}
	case !w.inOrder:
		w.sc.older = append(w.sc.older, p)
	}
}

// conflict returns nil when b is the same point as a (bit for bit, as the TSDB compares), else why b
// cannot be written after a.
func (w *seriesWriter) conflict(a, b pointRef) error {
	if a.hist == b.hist {
		if !a.hist {
			va := w.series[a.series].Samples[a.index].Value
			vb := w.series[b.series].Samples[b.index].Value
			if sameFloat(va, vb) {
				return nil
			}
		} else if sameHistogram(&w.series[a.series].Histograms[a.index], &w.series[b.series].Histograms[b.index]) {
			return nil
		}
	}
	return orderError(b.t, a.t)
}

// skip counts a point that check refused: rejected for err, or accepted as an exact duplicate.
func (w *seriesWriter) skip(i int, k write.Kind, err error) {
	if err == nil {
		w.stats.Appended[k]++
		return
	}
	w.reject(i, k, err)
}

// handle counts the outcome of one Append. It returns an error only for failures that are not the
// point's fault, which abort the whole write.
func (w *seriesWriter) handle(i int, k write.Kind, err error) error {
	if err == nil || errors.Is(err, (*storage.AppendPartialError)(nil)) {
		w.stats.Appended[k]++
		return nil
	}
	if reasonOf(err) == "" {
		return err
	}
	w.reject(i, k, err)
	return nil
}

// reject records one rejected point, merging with the series' previous rejection of the same kind and
// reason so that a series with many bad points costs one entry.
func (w *seriesWriter) reject(i int, k write.Kind, err error) {
	reason := reasonOf(err)
	if n := len(w.stats.Rejected); n > 0 {
		last := &w.stats.Rejected[n-1]
		if last.Series == i && last.Kind == k && last.Reason == reason {
			last.Count++
			return
		}
	}
	w.stats.Rejected = append(w.stats.Rejected, write.Rejection{Series: i, Kind: k, Reason: reason, Count: 1, Err: err})
}

func (w *seriesWriter) appendExemplars(i int, ref storage.SeriesRef, ls labels.Labels, in []prompb.Exemplar) {
	if !w.exemplars {
		w.stats.Rejected = append(w.stats.Rejected, write.Rejection{Series: i, Kind: write.KindExemplar, Reason: write.ReasonExemplarsDisabled, Count: len(in), Err: storage.ErrExemplarsDisabled})
		return
	}
	if ref == 0 {
		w.stats.Rejected = append(w.stats.Rejected, write.Rejection{Series: i, Kind: write.KindExemplar, Reason: write.ReasonInvalidExemplar, Count: len(in), Err: errors.New("exemplars of a series none of whose samples was written")})
		return
	}
	exs := w.sc.exemplars[:0]
	for _, e := range in {
		// A separate builder: the series' labels were built by w.sc.builder and must stay intact.
		exs = append(exs, exemplar.Exemplar{Labels: exemplarLabels(e.Labels), Value: e.Value, Ts: e.Timestamp, HasTs: e.Timestamp != 0})
	}
	slices.SortFunc(exs, exemplar.Compare)
	w.sc.exemplars = exs[:0]

	failed := 0
	var first error
	if _, err := w.app.AppendExemplars(ref, ls, exs); err != nil {
		var pErr *storage.AppendPartialError
		if errors.As(err, &pErr) {
			failed = len(pErr.ExemplarErrors)
			if failed > 0 {
				first = pErr.ExemplarErrors[0].Err
			}
		} else {
			failed, first = len(exs), err
		}
	}
	w.stats.Appended[write.KindExemplar] += len(exs) - failed
	if failed > 0 {
		w.stats.Rejected = append(w.stats.Rejected, write.Rejection{Series: i, Kind: write.KindExemplar, Reason: write.ReasonInvalidExemplar, Count: failed, Err: first})
	}
}

func exemplarLabels(in []prompb.Label) labels.Labels {
	if len(in) == 0 {
		return labels.EmptyLabels()
	}
	b := labels.NewScratchBuilder(len(in))
	for _, l := range in {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

// reasonOf maps a TSDB append error to its permanent rejection reason, or "" when the error is not the
// point's fault.
func reasonOf(err error) string {
	var herr histogram.Error
	var lerr *seriesLimitError
	switch {
	case errors.As(err, &lerr):
		return lerr.reason
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return write.ReasonOutOfOrder
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return write.ReasonDuplicate
	case errors.Is(err, storage.ErrOutOfBounds), errors.Is(err, storage.ErrTooOldSample):
		return write.ReasonTooOld
	case errors.As(err, &herr):
		return write.ReasonInvalidHistogram
	}
	return ""
}

func orderError(t, last int64) error {
	if t == last {
		return fmt.Errorf("%w: timestamp %d given twice in one series with different values", storage.ErrDuplicateSampleForTimestamp, t)
	}
	return fmt.Errorf("%w: timestamp %d after %d in the same series", storage.ErrOutOfOrderSample, t, last)
}

// sameFloat compares as the TSDB does for duplicates: bit for bit, so that equal NaNs match and a
// staleness marker differs from any other NaN.
func sameFloat(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b)
}

// sameHistogram compares two histograms as the TSDB does for duplicates.
func sameHistogram(a, b *prompb.Histogram) bool {
	switch fa, fb := a.IsFloatHistogram(), b.IsFloatHistogram(); {
	case fa != fb:
		return false
	case fa:
		return a.ToFloatHistogram().Equals(b.ToFloatHistogram())
	default:
		return a.ToIntHistogram().Equals(b.ToIntHistogram())
	}
}
