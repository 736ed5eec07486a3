package receive

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/prompb"

	"github.com/weir-metrics/weir/write"
)

// DefaultFutureWindow is the default of Limits.FutureWindow (--tsdb.too-far-in-future.time-window).
const DefaultFutureWindow = 10 * time.Minute

// Limits bound what one series and one request may hold. Zero disables a limit.
type Limits struct {
	MaxSeriesPerRequest int
	MaxLabelsPerSeries  int
	MaxLabelNameLength  int
	MaxLabelValueLength int
	// MaxNativeHistogramBuckets refuses native histograms with more populated buckets (a tenant's
	// native_histogram_buckets_limit; the node has no flag for it).
	MaxNativeHistogramBuckets int
	// Relabel rules are applied to every valid series (relabel.go); series they drop are left out
	// of the write without being an error, as in Prometheus.
	Relabel []*relabel.Config
	// FutureWindow rejects points stamped further than this ahead of the receiver's clock: one such
	// point moves the head's time forward and makes every normal sample of the tenant "too old".
	FutureWindow time.Duration
}

// Reasons for rejecting series or points before they reach storage.
const (
	ReasonNoLabels          = "no_labels"
	ReasonEmptyLabelName    = "empty_label_name"
	ReasonInvalidLabelName  = "invalid_label_name"
	ReasonInvalidLabelValue = "invalid_label_value"
	ReasonDuplicateLabel    = "duplicate_label_name"
	ReasonTooManyLabels     = "too_many_labels"
	ReasonLabelNameTooLong  = "label_name_too_long"
	ReasonLabelValueTooLong = "label_value_too_long"
	ReasonTooFarInFuture    = "too_far_in_future"
	ReasonHistogramBuckets  = "native_histogram_buckets_limit"
)

// validation is the result of validating one request.
type validation struct {
	// rejected lists what was removed, with Series indexes into the request as the sender sent it.
	rejected []write.Rejection
	// removed holds the indexes (into the original request) of the series dropped whole, ascending.
	removed []int
	// relabelDropped counts the series the relabel rules dropped (also in removed).
	relabelDropped int
}

// originalIndex maps an index into the validated series back to the request as sent.
func (v *validation) originalIndex(i int) int {
	for _, r := range v.removed {
		if r > i {
			break
		}
		i++
	}
	return i
}

// validate checks and normalises the series of req in place and returns the series to write.
//
// Per series, leniently: labels with empty values are dropped (Prometheus treats an empty value as an
// absent label), and unsorted labels are sorted — cheap, and what senders that build label sets from
// maps need. Strictly: a series with no labels, an empty or invalid UTF-8 name or value, a duplicate
// name or over a length limit is removed whole; points stamped too far in the future are removed. What
// is removed is reported in the validation, so the answer is a 400 partial write while the valid rest is
// written. A request over the series limit is refused whole.
func (l Limits) validate(req *prompb.WriteRequest, now time.Time) ([]prompb.TimeSeries, *validation, error) {
	return l.validateFrames(req, nil, nil, false, now)
}

// validateRequest validates r as validate does and keeps r's frames (frames.go) and extras in step:
// the frames and extras of removed series are removed, the frames of changed series emptied, and the
// start timestamps of removed points removed with them.
func (l Limits) validateRequest(r *Request, now time.Time) ([]prompb.TimeSeries, *validation, error) {
	return l.validateFrames(&r.Write, &r.dec.frames, &r.Extras, r.Message == MessageV2 && r.dec.v2.ascii, now)
}

// validateFrames is validateRequest's work; ascii tells that every label string is known to be ASCII
// (a 2.0 request whose symbols all are), which spares checking each series' labels.
func (l Limits) validateFrames(req *prompb.WriteRequest, frames *[]span, extras *[]write.SeriesExtra, ascii bool, now time.Time) ([]prompb.TimeSeries, *validation, error) {
	series := req.Timeseries
	if l.MaxSeriesPerRequest > 0 && len(series) > l.MaxSeriesPerRequest {
		return nil, nil, errorf(ClassInvalid, "request has %d series, over the limit of %d per request (lower the sender's max_samples_per_send)", len(series), l.MaxSeriesPerRequest)
	}
	var fr []span
	if frames != nil && len(*frames) == len(series) {
		fr = *frames
	}
	var ex []write.SeriesExtra
	if extras != nil && len(*extras) == len(series) {
		ex = *extras
	}
	var v validation
	maxT := int64(1<<63 - 1)
	if l.FutureWindow > 0 {
		maxT = now.Add(l.FutureWindow).UnixMilli()
	}
	var rl *relabeler
	if len(l.Relabel) > 0 {
		rl = relabelerPool.Get().(*relabeler)
		defer relabelerPool.Put(rl)
	}
	kept := series[:0]
	for i := range series {
		ts := &series[i]
		changed, reason, err := l.normaliseLabels(ts, ascii)
		if err != nil {
			v.rejectSeries(i, ts, reason, err)
			continue
		}
		if rl != nil {
			keep, relabelled := rl.apply(ts, l.Relabel)
			if !keep {
				v.removed = append(v.removed, i)
				v.relabelDropped++
				continue
			}
			changed = changed || relabelled
		}
		var e *write.SeriesExtra
		if ex != nil {
			e = &ex[i]
		}
		if maxT != int64(1<<63-1) && v.dropFuture(i, ts, e, maxT) {
			changed = true
		}
		if l.MaxNativeHistogramBuckets > 0 && len(ts.Histograms) > 0 && v.dropBigHistograms(i, ts, e, l.MaxNativeHistogramBuckets) {
			changed = true
		}
		if ex != nil {
			ex[len(kept)] = ex[i]
		}
		if fr != nil { // in place, like kept
			fr[len(kept)] = fr[i]
			if changed {
				fr[len(kept)] = span{}
			}
		}
		kept = append(kept, *ts) // in place: len(kept) <= i
	}
	// Clear the tail so the pooled request does not pin what was removed.
	clear(series[len(kept):])
	req.Timeseries = kept
	if ex != nil {
		clear(ex[len(kept):])
		*extras = ex[:len(kept)]
	}
	switch {
	case fr != nil:
		*frames = fr[:len(kept)]
	case frames != nil: // frames that do not match the series: none is forwarded as it came
		*frames = (*frames)[:0]
	}
	return kept, &v, nil
}

// normaliseLabels drops empty values and sorts the labels of ts, and checks them; changed reports
// that it dropped or reordered labels.
func (l Limits) normaliseLabels(ts *prompb.TimeSeries, knownASCII bool) (changed bool, reason string, err error) {
	ls := ts.Labels
	// Drop empty values in place.
	n := 0
	for _, lb := range ls {
		if lb.Value != "" {
			ls[n] = lb
			n++
		}
	}
	changed = n != len(ls)
	ls = ls[:n]
	ts.Labels = ls
	switch {
	case len(ls) == 0:
		return changed, ReasonNoLabels, errors.New("series has no labels")
	case l.MaxLabelsPerSeries > 0 && len(ls) > l.MaxLabelsPerSeries:
		return changed, ReasonTooManyLabels, fmt.Errorf("series has %d labels, over the limit of %d", len(ls), l.MaxLabelsPerSeries)
	}
	sorted := true
	ascii := knownASCII || asciiLabels(ls)
	for j := range ls {
		name, value := ls[j].Name, ls[j].Value
		switch {
		case name == "":
			return changed, ReasonEmptyLabelName, fmt.Errorf("label %d has an empty name", j)
		case l.MaxLabelNameLength > 0 && len(name) > l.MaxLabelNameLength:
			return changed, ReasonLabelNameTooLong, fmt.Errorf("label name %.64q… is %d bytes long, over the limit of %d", name, len(name), l.MaxLabelNameLength)
		case l.MaxLabelValueLength > 0 && len(value) > l.MaxLabelValueLength:
			return changed, ReasonLabelValueTooLong, fmt.Errorf("value of label %q is %d bytes long, over the limit of %d", name, len(value), l.MaxLabelValueLength)
		case !ascii && !utf8.ValidString(name):
			return changed, ReasonInvalidLabelName, fmt.Errorf("label name %q is not valid UTF-8", name)
		case !ascii && !utf8.ValidString(value):
			return changed, ReasonInvalidLabelValue, fmt.Errorf("value of label %q is not valid UTF-8", name)
		}
		if j > 0 && ls[j-1].Name >= name {
			sorted = false
		}
	}
	if !sorted {
		changed = true
		slices.SortFunc(ls, func(a, b prompb.Label) int { return cmp.Compare(a.Name, b.Name) })
		for j := 1; j < len(ls); j++ {
			if ls[j-1].Name == ls[j].Name {
				return changed, ReasonDuplicateLabel, fmt.Errorf("label name %q appears more than once", ls[j].Name)
			}
		}
	}
	return changed, "", nil
}

// asciiLabels reports whether every byte of the names and values of ls is ASCII — what senders
// send — in which case all of them are valid UTF-8 and need no check one by one.
func asciiLabels(ls []prompb.Label) bool {
	var a asciiCheck
	for i := range ls {
		a.add(ls[i].Name)
		a.add(ls[i].Value)
	}
	return a.ascii()
}

// asciiCheck tells whether the strings added are all ASCII. It reads eight bytes at a time: checking
// each string with utf8.ValidString was most of validation's cost.
type asciiCheck struct {
	words uint64
	bytes byte
}

func (a *asciiCheck) add(s string) {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	for len(b) >= 8 {
		a.words |= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		a.bytes |= c
	}
}

func (a *asciiCheck) ascii() bool { return (a.words|uint64(a.bytes))&0x8080808080808080 == 0 }

// rejectSeries records that series i was removed whole with everything it carried.
func (v *validation) rejectSeries(i int, ts *prompb.TimeSeries, reason string, err error) {
	v.removed = append(v.removed, i)
	if len(v.rejected) < maxExamples {
		err = fmt.Errorf("%s: %w", labelsString(ts.Labels), err)
	}
	counts := [write.NumKinds]int{len(ts.Samples), len(ts.Histograms), len(ts.Exemplars)}
	for k, n := range counts {
		if n > 0 {
			v.rejected = append(v.rejected, write.Rejection{Series: i, Kind: write.Kind(k), Reason: reason, Count: n, Err: err})
		}
	}
}

// dropFuture removes the points of series i stamped after maxT, in place, with their start
// timestamps in e (nil: none); it reports whether it removed any.
func (v *validation) dropFuture(i int, ts *prompb.TimeSeries, e *write.SeriesExtra, maxT int64) bool {
	before := len(ts.Samples) + len(ts.Histograms)
	starts := extraStarts(e, before)
	n := 0
	for j, s := range ts.Samples {
		if s.Timestamp <= maxT {
			ts.Samples[n] = s
			if starts != nil {
				starts[n] = starts[j]
			}
			n++
		}
	}
	if dropped := len(ts.Samples) - n; dropped > 0 {
		v.rejected = append(v.rejected, write.Rejection{Series: i, Kind: write.KindFloat, Reason: ReasonTooFarInFuture, Count: dropped,
			Err: fmt.Errorf("%d samples stamped after %s (receiver clock plus the future window)", dropped, time.UnixMilli(maxT).UTC().Format(time.RFC3339))})
		ts.Samples = ts.Samples[:n]
	}
	hn := 0
	for j, h := range ts.Histograms {
		if h.Timestamp <= maxT {
			ts.Histograms[hn] = h
			if starts != nil {
				starts[n+hn] = starts[before-len(ts.Histograms)+j]
			}
			hn++
		}
	}
	if dropped := len(ts.Histograms) - hn; dropped > 0 {
		v.rejected = append(v.rejected, write.Rejection{Series: i, Kind: write.KindHistogram, Reason: ReasonTooFarInFuture, Count: dropped,
			Err: fmt.Errorf("%d histograms stamped after %s (receiver clock plus the future window)", dropped, time.UnixMilli(maxT).UTC().Format(time.RFC3339))})
		clear(ts.Histograms[hn:])
		ts.Histograms = ts.Histograms[:hn]
	}
	if starts != nil {
		e.Starts = starts[:n+hn]
	}
	return len(ts.Samples)+len(ts.Histograms) != before
}

// extraStarts is e's start timestamps when it has one per point of a series of n points, else nil.
func extraStarts(e *write.SeriesExtra, n int) []int64 {
	if e == nil || len(e.Starts) != n {
		return nil
	}
	return e.Starts
}

// dropBigHistograms removes the native histograms of series i with more than max populated buckets,
// in place; it reports whether it removed any. A histogram is refused rather than reduced: its
// resolution is the sender's choice (Prometheus' native_histogram_bucket_limit reduces it at scrape).
func (v *validation) dropBigHistograms(i int, ts *prompb.TimeSeries, e *write.SeriesExtra, limit int) bool {
	starts := extraStarts(e, len(ts.Samples)+len(ts.Histograms))
	var hstarts []int64
	if starts != nil {
		hstarts = starts[len(ts.Samples):]
	}
	n, most := 0, 0
	for j, h := range ts.Histograms {
		b := len(h.PositiveDeltas) + len(h.NegativeDeltas) + len(h.PositiveCounts) + len(h.NegativeCounts)
		if b <= limit {
			ts.Histograms[n] = h
			if starts != nil {
				hstarts[n] = hstarts[j]
			}
			n++
			continue
		}
		most = max(most, b)
	}
	if starts != nil {
		e.Starts = starts[:len(ts.Samples)+n]
	}
	dropped := len(ts.Histograms) - n
	if dropped == 0 {
		return false
	}
	v.rejected = append(v.rejected, write.Rejection{Series: i, Kind: write.KindHistogram, Reason: ReasonHistogramBuckets, Count: dropped,
		Err: fmt.Errorf("%d histograms with up to %d buckets, over the tenant's native_histogram_buckets_limit of %d", dropped, most, limit)})
	clear(ts.Histograms[n:])
	ts.Histograms = ts.Histograms[:n]
	return true
}
