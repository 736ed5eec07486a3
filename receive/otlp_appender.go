package receive

import (
	"errors"
	"strconv"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	pmetadata "github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/weir-metrics/weir/write"
)

// otlpAppender is the storage.AppenderV2 that Prometheus' OTLP translator (prometheusremotewrite.
// PrometheusConverter) appends to. It stores nothing: it gathers the points into series, once per
// label set, so that a translated request becomes a Batch like a remote-write request and takes the
// same way through validation, the ring and the replicas. Start timestamps and metadata, which the
// translator hands over with each point, go into the Batch's Extras.
//
// Append records each point in a flat list; series turns the lists into series in one pass over
// arenas, so a request costs a few allocations however many points it has. The appender and its
// arenas are pooled (getOTLPAppender, release); what series returns is valid until release.
type otlpAppender struct {
	index map[uint64]int32 // labels hash → first series with that hash
	next  []int32          // per series: the next series with the same hash, or -1
	lsets []labels.Labels
	meta  []pmetadata.Metadata
	// Points per series, counted by Append, then used as write cursors by series.
	nFloats, nHists, nExemplars []int32

	floats    []otlpFloat
	hists     []otlpHist
	exemplars []otlpExemplar
	// targetInfo counts the target_info points of the request (see appendTargetInfo).
	targetInfo int

	// Arenas the built series are windows of.
	out         []prompb.TimeSeries
	extras      []write.SeriesExtra
	labelArena  []prompb.Label
	sampleArena []prompb.Sample
	histArena   []prompb.Histogram
	exArena     []prompb.Exemplar
	startArena  []int64
}

type otlpFloat struct {
	series int32
	st, t  int64
	v      float64
}

type otlpHist struct {
	series int32
	st     int64
	h      prompb.Histogram
}

type otlpExemplar struct {
	series int32
	e      prompb.Exemplar
}

// targetInfoName is the name the translator gives the resource series (no namespace is set).
const targetInfoName = "target_info"

var otlpAppenderPool = sync.Pool{New: func() any { return &otlpAppender{index: map[uint64]int32{}} }}

func getOTLPAppender() *otlpAppender { return otlpAppenderPool.Get().(*otlpAppender) }

// maxRetainedOTLPSeries bounds the series a pooled appender keeps room for: one huge request must not
// pin its arenas for ever.
const maxRetainedOTLPSeries = 1 << 16

// release empties a and returns it to the pool; nothing series returned may be used afterwards.
func (a *otlpAppender) release() {
	if len(a.lsets) > maxRetainedOTLPSeries {
		otlpAppenderPool.Put(&otlpAppender{index: map[uint64]int32{}})
		return
	}
	clear(a.index)
	clear(a.lsets) // the label sets, exemplars and histograms reference the request's memory
	clear(a.hists)
	clear(a.exemplars)
	clear(a.out)
	clear(a.extras)
	clear(a.labelArena)
	clear(a.histArena)
	clear(a.exArena)
	a.next, a.lsets, a.meta = a.next[:0], a.lsets[:0], a.meta[:0]
	a.nFloats, a.nHists, a.nExemplars = a.nFloats[:0], a.nHists[:0], a.nExemplars[:0]
	a.floats, a.hists, a.exemplars = a.floats[:0], a.hists[:0], a.exemplars[:0]
	a.targetInfo = 0
	otlpAppenderPool.Put(a)
}

// The translator writes a target_info point every 2.5 minutes between the earliest and the latest
// point of a resource: two points of a hostile request 290 years apart would make 60 million of them
// (seconds of CPU and gigabytes from a body of a few hundred bytes). The appender refuses target_info
// points past these bounds, which ends the translator's loop for that resource with an error (in
// the answer's partial_success); the resource's own points are written. 64 points span 2.6 hours,
// more than the TSDB accepts anyway (older points are refused as too old).
const (
	maxTargetInfoPerSeries = 64
	// The whole request may have this many target_info points per other point appended, plus
	// maxTargetInfoPerSeries: each point costs bytes of the body, so memory stays proportional to it.
	maxTargetInfoPerPoint = 4
)

// errTargetInfoSpan is the refusal of a target_info point past the bounds.
var errTargetInfoSpan = errors.New("the resource's points span too long a time: target_info written for its first " + strconv.Itoa(maxTargetInfoPerSeries) + " intervals only")

// Append implements storage.AppenderV2. It fails only for target_info points past their bounds (see
// maxTargetInfoPerSeries): whatever else is wrong with a point is found by validation and storage,
// which reject it as they would a remote-write point.
func (a *otlpAppender) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	s := a.seriesOf(ls)
	if opts.MetricFamilyName == targetInfoName {
		others := len(a.floats) + len(a.hists) - a.targetInfo
		if a.nFloats[s] >= maxTargetInfoPerSeries || a.targetInfo >= maxTargetInfoPerPoint*others+maxTargetInfoPerSeries {
			return 0, errTargetInfoSpan
		}
		a.targetInfo++
	}
	if a.meta[s].IsEmpty() {
		a.meta[s] = opts.Metadata
	}
	switch {
	case fh != nil:
		a.hists = append(a.hists, otlpHist{series: s, st: st, h: prompb.FromFloatHistogram(t, fh)})
		a.nHists[s]++
	case h != nil:
		a.hists = append(a.hists, otlpHist{series: s, st: st, h: prompb.FromIntHistogram(t, h)})
		a.nHists[s]++
	default:
		a.floats = append(a.floats, otlpFloat{series: s, st: st, t: t, v: v})
		a.nFloats[s]++
	}
	for _, e := range opts.Exemplars {
		a.exemplars = append(a.exemplars, otlpExemplar{series: s, e: prompb.Exemplar{Labels: prompb.FromLabels(e.Labels, nil), Value: e.Value, Timestamp: e.Ts}})
		a.nExemplars[s]++
	}
	return storage.SeriesRef(s + 1), nil
}

// Commit and Rollback end the translator's transaction; the handler takes the series with series.
func (a *otlpAppender) Commit() error   { return nil }
func (a *otlpAppender) Rollback() error { return nil }

var _ storage.AppenderV2 = (*otlpAppender)(nil)

// seriesOf is the index of the series with labels ls, added when new.
func (a *otlpAppender) seriesOf(ls labels.Labels) int32 {
	hash := ls.Hash()
	first, ok := a.index[hash]
	if ok {
		for s := first; s >= 0; s = a.next[s] {
			if labels.Equal(a.lsets[s], ls) {
				return s
			}
		}
	}
	s := int32(len(a.lsets))
	a.lsets = append(a.lsets, ls)
	a.meta = append(a.meta, pmetadata.Metadata{})
	a.nFloats, a.nHists, a.nExemplars = append(a.nFloats, 0), append(a.nHists, 0), append(a.nExemplars, 0)
	if ok {
		a.next = append(a.next, first) // chain the new series in front of the others of its hash
	} else {
		a.next = append(a.next, -1)
	}
	a.index[hash] = s
	return s
}

// series builds the gathered series, points in the order they were appended, and their extras
// (metadata, and start timestamps when any point has one). Both are valid until release.
func (a *otlpAppender) series() ([]prompb.TimeSeries, []write.SeriesExtra) {
	n := len(a.lsets)
	a.out = resize(a.out, n)
	a.extras = resize(a.extras, n)
	nLabels := 0
	for _, ls := range a.lsets {
		nLabels += ls.Len()
	}
	a.labelArena = resize(a.labelArena, nLabels)[:0]
	a.sampleArena = resize(a.sampleArena, len(a.floats))
	a.histArena = resize(a.histArena, len(a.hists))
	a.exArena = resize(a.exArena, len(a.exemplars))
	a.startArena = resize(a.startArena, len(a.floats)+len(a.hists))
	clear(a.startArena)

	// Give each series its windows, and turn the counts into write cursors.
	var fo, ho, eo int32
	for s := range n {
		ts := &a.out[s]
		start := len(a.labelArena)
		a.lsets[s].Range(func(l labels.Label) {
			a.labelArena = append(a.labelArena, prompb.Label{Name: l.Name, Value: l.Value})
		})
		nf, nh, ne := a.nFloats[s], a.nHists[s], a.nExemplars[s]
		ts.Labels = a.labelArena[start:len(a.labelArena):len(a.labelArena)]
		ts.Samples = a.sampleArena[fo : fo+nf : fo+nf]
		ts.Histograms = a.histArena[ho : ho+nh : ho+nh]
		ts.Exemplars = a.exArena[eo : eo+ne : eo+ne]
		a.extras[s] = write.SeriesExtra{Metadata: a.meta[s], Starts: a.startArena[fo+ho : fo+ho+nf+nh : fo+ho+nf+nh]}
		fo, ho, eo = fo+nf, ho+nh, eo+ne
		a.nFloats[s], a.nHists[s], a.nExemplars[s] = 0, 0, 0
	}
	for _, p := range a.floats {
		ts, j := &a.out[p.series], a.nFloats[p.series]
		ts.Samples[j] = prompb.Sample{Timestamp: p.t, Value: p.v}
		a.extras[p.series].Starts[j] = p.st
		a.nFloats[p.series]++
	}
	for i := range a.hists {
		p := &a.hists[i]
		ts, j := &a.out[p.series], a.nHists[p.series]
		ts.Histograms[j] = p.h
		a.extras[p.series].Starts[len(ts.Samples)+int(j)] = p.st
		a.nHists[p.series]++
	}
	for _, p := range a.exemplars {
		ts, j := &a.out[p.series], a.nExemplars[p.series]
		ts.Exemplars[j] = p.e
		a.nExemplars[p.series]++
	}
	// A series without any known start carries none (Starts nil), as a Remote Write 1.0 series.
	for s := range a.extras {
		if !anyNonZero(a.extras[s].Starts) {
			a.extras[s].Starts = nil
		}
	}
	return a.out, a.extras
}

func anyNonZero(xs []int64) bool {
	for _, x := range xs {
		if x != 0 {
			return true
		}
	}
	return false
}
