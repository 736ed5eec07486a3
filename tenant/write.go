package tenant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// Kind is the kind of data point a count refers to.
type Kind uint8

// The kinds of data points in a remote-write request.
const (
	KindFloat Kind = iota
	KindHistogram
	KindExemplar
	NumKinds
)

func (k Kind) String() string {
	switch k {
	case KindFloat:
		return "sample"
	case KindHistogram:
		return "histogram"
	case KindExemplar:
		return "exemplar"
	}
	return "unknown"
}

// Reasons a data point is rejected by storage. They are permanent: sending the same point again gives
// the same answer, so the sender must not retry (400, partial write).
const (
	ReasonOutOfOrder        = "out_of_order"
	ReasonDuplicate         = "duplicate_sample_for_timestamp"
	ReasonTooOld            = "too_old"
	ReasonInvalidHistogram  = "invalid_histogram"
	ReasonExemplarsDisabled = "exemplars_disabled"
	ReasonInvalidExemplar   = "invalid_exemplar"
)

// Rejection records data points of one series that were not written, and why.
type Rejection struct {
	Series int    // index of the series in the written slice
	Kind   Kind   // what was rejected
	Reason string // one of the Reason constants (or a caller's own, for validation)
	Count  int    // how many points of this series and kind
	Err    error  // the first error, for the answer to the sender
}

// WriteStats tells what a write did: points appended by kind, and the rejected ones. Rejections are
// permanent per-point errors; the rest of the write was committed.
type WriteStats struct {
	Appended [NumKinds]int
	Rejected []Rejection
}

// writeScratch holds what one write reuses; pooled because it is needed on every request.
type writeScratch struct {
	builder   labels.ScratchBuilder
	exemplars []exemplar.Exemplar
}

var scratchPool = sync.Pool{New: func() any { return &writeScratch{builder: labels.NewScratchBuilder(16)} }}

// Write appends series to tenant id's TSDB in one transaction and commits it: when Write returns a nil
// error, every appended point is in the WAL. Points the TSDB refuses for good (out of order, too old,
// duplicate with another value, invalid histogram) are skipped and reported in the stats; exemplars are
// best effort and never fail a write.
//
// Labels must be validated and sorted by the caller (the receive path does it once, before routing).
// A non-nil error means nothing was written: ErrUnavailable or ErrClosed (transient), a cancelled
// context, or a storage failure.
func (m *Manager) Write(ctx context.Context, id string, series []prompb.TimeSeries) (WriteStats, error) {
	var stats WriteStats
	d, err := m.get(ctx, id)
	if err != nil {
		return stats, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return stats, ErrClosed
	}

	app, ok := d.tsdb.AppenderV2(ctx).(storage.ExemplarAppenderV2)
	if !ok {
		return stats, errors.New("TSDB appender does not accept exemplars")
	}
	sc := scratchPool.Get().(*writeScratch)
	defer scratchPool.Put(sc)

	w := seriesWriter{app: app, sc: sc, stats: &stats, inOrder: m.cfg.OutOfOrderWindow == 0, exemplars: m.cfg.MaxExemplars > 0}
	for i := range series {
		if i%256 == 0 && ctx.Err() != nil {
			_ = app.Rollback()
			return WriteStats{}, fmt.Errorf("write cancelled: %w", ctx.Err())
		}
		if err := w.write(i, &series[i]); err != nil {
			_ = app.Rollback()
			return WriteStats{}, fmt.Errorf("append to tenant %s: %w", id, err)
		}
	}
	if err := app.Commit(); err != nil {
		return WriteStats{}, fmt.Errorf("commit to tenant %s: %w", id, err)
	}
	return stats, nil
}

// seriesWriter appends the series of one write.
type seriesWriter struct {
	app       storage.ExemplarAppenderV2
	sc        *writeScratch
	stats     *WriteStats
	inOrder   bool // no out-of-order window: a series' timestamps must increase within a request too
	exemplars bool // exemplar storage enabled
}

func (w *seriesWriter) write(i int, ts *prompb.TimeSeries) error {
	b := &w.sc.builder
	b.Reset()
	for _, l := range ts.Labels {
		b.Add(l.Name, l.Value)
	}
	ls := b.Labels()

	var ref storage.SeriesRef
	last := int64(-1 << 63)
	var lastV float64
	for j, s := range ts.Samples {
		// The head checks order against committed samples only; within one transaction it would drop an
		// out-of-order or conflicting sample silently at commit. Catch those here so the sender is told.
		if w.inOrder && j > 0 && s.Timestamp <= last {
			if s.Timestamp == last && sameFloat(s.Value, lastV) {
				w.stats.Appended[KindFloat]++ // an exact duplicate is accepted, as the TSDB does
				continue
			}
			w.reject(i, KindFloat, orderError(s.Timestamp, last))
			continue
		}
		r, err := w.app.Append(ref, ls, 0, s.Timestamp, s.Value, nil, nil, storage.AOptions{})
		if err = w.handle(i, KindFloat, err); err != nil {
			return err
		}
		if r != 0 {
			ref = r
			last, lastV = s.Timestamp, s.Value
		}
	}

	last = int64(-1 << 63)
	for j := range ts.Histograms {
		hp := &ts.Histograms[j]
		if w.inOrder && j > 0 && hp.Timestamp <= last {
			w.reject(i, KindHistogram, orderError(hp.Timestamp, last))
			continue
		}
		var r storage.SeriesRef
		var err error
		if hp.IsFloatHistogram() {
			r, err = w.app.Append(ref, ls, 0, hp.Timestamp, 0, nil, hp.ToFloatHistogram(), storage.AOptions{})
		} else {
			r, err = w.app.Append(ref, ls, 0, hp.Timestamp, 0, hp.ToIntHistogram(), nil, storage.AOptions{})
		}
		if err = w.handle(i, KindHistogram, err); err != nil {
			return err
		}
		if r != 0 {
			ref = r
			last = hp.Timestamp
		}
	}

	if len(ts.Exemplars) > 0 {
		w.appendExemplars(i, ref, ls, ts.Exemplars)
	}
	return nil
}

// handle counts the outcome of one Append. It returns an error only for failures that are not the
// point's fault, which abort the whole write.
func (w *seriesWriter) handle(i int, k Kind, err error) error {
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
func (w *seriesWriter) reject(i int, k Kind, err error) {
	reason := reasonOf(err)
	if n := len(w.stats.Rejected); n > 0 {
		last := &w.stats.Rejected[n-1]
		if last.Series == i && last.Kind == k && last.Reason == reason {
			last.Count++
			return
		}
	}
	w.stats.Rejected = append(w.stats.Rejected, Rejection{Series: i, Kind: k, Reason: reason, Count: 1, Err: err})
}

func (w *seriesWriter) appendExemplars(i int, ref storage.SeriesRef, ls labels.Labels, in []prompb.Exemplar) {
	if !w.exemplars {
		w.stats.Rejected = append(w.stats.Rejected, Rejection{Series: i, Kind: KindExemplar, Reason: ReasonExemplarsDisabled, Count: len(in), Err: storage.ErrExemplarsDisabled})
		return
	}
	if ref == 0 {
		w.stats.Rejected = append(w.stats.Rejected, Rejection{Series: i, Kind: KindExemplar, Reason: ReasonInvalidExemplar, Count: len(in), Err: errors.New("exemplars of a series none of whose samples was written")})
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
	w.stats.Appended[KindExemplar] += len(exs) - failed
	if failed > 0 {
		w.stats.Rejected = append(w.stats.Rejected, Rejection{Series: i, Kind: KindExemplar, Reason: ReasonInvalidExemplar, Count: failed, Err: first})
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
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return ReasonOutOfOrder
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return ReasonDuplicate
	case errors.Is(err, storage.ErrOutOfBounds), errors.Is(err, storage.ErrTooOldSample):
		return ReasonTooOld
	case errors.As(err, &herr):
		return ReasonInvalidHistogram
	}
	return ""
}

func orderError(t, last int64) error {
	if t == last {
		return fmt.Errorf("%w: timestamp %d given twice in one series with different values", storage.ErrDuplicateSampleForTimestamp, t)
	}
	return fmt.Errorf("%w: timestamp %d after %d in the same series", storage.ErrOutOfOrderSample, t, last)
}

// sameFloat compares as the TSDB does for duplicates: bit for bit, so that equal NaNs match.
func sameFloat(a, b float64) bool {
	return a == b || (a != a && b != b)
}
