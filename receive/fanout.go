package receive

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/prompb"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/write"
)

// fanout is the state of one Write. It is pooled and reference-counted: the Write holds one
// reference and every background forward another until it has encoded its payload; the last to
// release it returns it to the pool. Forwards read only groups, spans, enc, orig and body (written before
// they start) and extras; everything else belongs to the Write's goroutine.
type fanout struct {
	refs    atomic.Int32
	encoded sync.WaitGroup // forwards that have not yet encoded their payload (they read orig)
	groups  [][]int32      // per endpoint index: the indexes of the series it owns, ascending
	owners  []int          // scratch for Ring.Owners
	hashes  []uint64       // per series: its hashring.SeriesHash
	spans   []frameRef     // per series: its field in enc or orig (empty when only the local endpoint owns it)
	enc     []byte         // the series owned by a remote endpoint and marshalled again, each as a WriteRequest field
	orig    []byte         // the request's original encoding (SeriesFrames), which the other spans index
	body    []byte         // the client's compressed body when it is the whole request (SeriesFrames.wholeBody)
	local   []prompb.TimeSeries
	// localHashes are the hashes of local, the local endpoint's share.
	localHashes []uint64
	// extras are the request's series extras, or nil; forwards encode theirs before encoded is done.
	extras      []write.SeriesExtra
	localExtras []write.SeriesExtra // the local share's

	tracker  tracker
	conflict []bool       // scratch of apply, per series
	rejected []destResult // answers with rejections, for stats
	failure  error        // the first server-side failure, for the error message
	invalid  error        // the first client-class failure
	timedOut bool         // some endpoint did not answer in time
}

// frameRef is where a series' field is: in the fanout's enc, or in the request's original bytes.
type frameRef struct {
	span
	orig bool
}

var fanoutPool = sync.Pool{New: func() any { return new(fanout) }}

func getFanout(n, endpoints, rf int) *fanout {
	f := fanoutPool.Get().(*fanout)
	f.refs.Store(1)
	if cap(f.groups) < endpoints {
		groups := make([][]int32, endpoints)
		copy(groups, f.groups[:cap(f.groups)])
		f.groups = groups
	}
	f.groups = f.groups[:endpoints]
	f.spans = resize(f.spans, n)
	f.hashes = resize(f.hashes, n)
	f.conflict = resize(f.conflict, n)
	f.tracker.reset(n, rf)
	return f
}

func (f *fanout) release() {
	if f.refs.Add(-1) != 0 {
		return
	}
	for i := range f.groups {
		f.groups[i] = f.groups[i][:0]
	}
	f.enc, f.orig, f.body, f.extras = f.enc[:0], nil, nil, nil
	clear(f.rejected)
	f.rejected = f.rejected[:0]
	f.failure, f.invalid, f.timedOut = nil, nil, false
	fanoutPool.Put(f)
}

// flight is what the forwards of one Write share until the last one ends: their context and the
// channel of their answers. Pooled and reference-counted like fanout, by the Write and every forward.
type flight struct {
	refs    atomic.Int32
	results chan destResult // buffered for every endpoint: sends never block
	ctx     context.Context
	cancel  context.CancelFunc
}

var flightPool = sync.Pool{New: func() any { return new(flight) }}

func getFlight(endpoints int) *flight {
	fl := flightPool.Get().(*flight)
	fl.refs.Store(1)
	if cap(fl.results) < endpoints {
		fl.results = make(chan destResult, endpoints)
	}
	return fl
}

func (fl *flight) release() {
	if fl.refs.Add(-1) != 0 {
		return
	}
	if fl.cancel != nil {
		fl.cancel()
	}
	fl.ctx, fl.cancel = nil, nil
	for len(fl.results) > 0 {
		<-fl.results
	}
	flightPool.Put(fl)
}

// split places every series: it appends each series' index to the groups of its owners and, for
// the series owned by a remote endpoint, notes its field: the original one from frames when there is
// one (frames.go), else a marshalling of the series into enc, made once for all its owners.
func (f *fanout) split(ring hashring.Ring, tenantID string, series []prompb.TimeSeries, frames SeriesFrames, rf, local int) error {
	owners := f.owners[:0]
	enc := f.enc[:0]
	if frames.Len() == len(series) {
		f.orig, f.body = frames.buf, frames.wholeBody()
	} else {
		frames = SeriesFrames{}
	}
	var err error
	for i := range series {
		ts := &series[i]
		f.hashes[i] = hashring.SeriesHash(tenantID, ts.Labels)
		owners, err = ring.Owners(f.hashes[i], rf, owners[:0])
		if err != nil {
			f.owners, f.enc = owners, enc
			return err
		}
		remote := false
		for _, o := range owners {
			f.groups[o] = append(f.groups[o], int32(i))
			remote = remote || o != local
		}
		switch {
		case !remote:
			f.spans[i] = frameRef{}
		case frames.Len() > 0 && !frames.spans[i].empty():
			f.spans[i] = frameRef{span: frames.spans[i], orig: true}
		default:
			start := len(enc)
			if enc, err = appendSeries(enc, ts); err != nil {
				f.owners, f.enc = owners, enc[:start]
				return fmt.Errorf("marshal series %d: %w", i, err)
			}
			f.spans[i] = frameRef{span: span{start, len(enc)}}
		}
	}
	f.owners, f.enc = owners, enc
	return nil
}

// appendSeries appends ts to b as a field of a WriteRequest (field 1, length-delimited).
func appendSeries(b []byte, ts *prompb.TimeSeries) ([]byte, error) {
	size := ts.Size()
	b = slices.Grow(b, 1+binary.MaxVarintLen64+size)
	b = append(b, 0x0a)
	b = binary.AppendUvarint(b, uint64(size))
	p := len(b)
	b = b[:p+size]
	if _, err := ts.MarshalToSizedBuffer(b[p:]); err != nil {
		return b[:p], err
	}
	return b, nil
}

// encode builds the payload of endpoint d: the protobuf WriteRequest of its series, the
// concatenation of their fields. The caller puts the returned buffer back with putBuffer.
func (f *fanout) encode(d int) *[]byte {
	raw := getBuffer()
	b := (*raw)[:0]
	n := 0
	for _, s := range f.groups[d] {
		n += f.spans[s].end - f.spans[s].start
	}
	b = slices.Grow(b, n)
	for _, s := range f.groups[d] {
		sp := f.spans[s]
		if sp.orig {
			b = append(b, f.orig[sp.start:sp.end]...)
		} else {
			b = append(b, f.enc[sp.start:sp.end]...)
		}
	}
	*raw = b
	return raw
}

// payload builds the payload of remote endpoint d (put it back with putBuffer) and tells whether
// it is compressed: a copy of the client's compressed body when d owns every series
// and the body is the whole request (SeriesFrames.wholeBody), else d's series encoded.
func (f *fanout) payload(d int) (payload *[]byte, compressed bool) {
	if f.body != nil && len(f.groups[d]) == len(f.spans) {
		buf := getBuffer()
		*buf = append((*buf)[:0], f.body...)
		return buf, true
	}
	return f.encode(d), false
}

// appendGroupHashes appends the hashes of the series of endpoint d, in order, to h.
func (f *fanout) appendGroupHashes(h []uint64, d int) []uint64 {
	for _, s := range f.groups[d] {
		h = append(h, f.hashes[s])
	}
	return h
}

// apply records the answer of one endpoint for each of its series.
func (f *fanout) apply(res destResult) {
	idx := f.groups[res.dest]
	if res.err != nil {
		o := outcomeOf(res.err)
		if o == outcomeInvalid && f.invalid == nil {
			f.invalid = res.err
		} else if o == outcomeFailed && f.failure == nil {
			f.failure = res.err
		}
		f.timedOut = f.timedOut || isTimeout(res.err)

		for _, s := range idx {
			f.tracker.add(int(s), o)
		}
		return
	}
	if len(res.stats.Rejected) > 0 {
		f.rejected = append(f.rejected, res)
		for _, rj := range res.stats.Rejected {
			if rj.Kind != write.KindExemplar {
				f.conflict[idx[rj.Series]] = true
			}
		}
	}
	for _, s := range idx {
		o := outcomeOK
		if f.conflict[s] {
			o = outcomeConflict
			f.conflict[s] = false
		}
		f.tracker.add(int(s), o)
	}
}

// stats builds the stats of a write in which no series failed (see Router.Write).
func (f *fanout) stats(series []prompb.TimeSeries) write.Stats {
	var st write.Stats
	verdicts := f.tracker.verdicts
	if len(f.rejected) > 0 {
		type key struct {
			series int
			kind   write.Kind
			reason string
		}
		at := map[key]int{}
		for _, res := range f.rejected {
			idx := f.groups[res.dest]
			for _, rj := range res.stats.Rejected {
				s := int(idx[rj.Series])
				if v := verdicts[s]; v != verdictConflict && (v != verdictWritten || rj.Kind != write.KindExemplar) {
					continue // a quorum wrote these points
				}
				k := key{s, rj.Kind, rj.Reason}
				if i, ok := at[k]; ok {
					st.Rejected[i].Count = max(st.Rejected[i].Count, rj.Count)
					continue
				}
				at[k] = len(st.Rejected)
				if rj.Err == nil {
					rj.Err = errors.New(rj.Reason)
				}
				rj.Series = s
				st.Rejected = append(st.Rejected, rj)
			}
		}
		slices.SortFunc(st.Rejected, func(a, b write.Rejection) int {
			return cmp.Or(cmp.Compare(a.Series, b.Series), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Reason, b.Reason))
		})
	}
	for i := range series {
		if v := verdicts[i]; v == verdictWritten || v == verdictConflict {
			st.Appended[write.KindFloat] += len(series[i].Samples)
			st.Appended[write.KindHistogram] += len(series[i].Histograms)
			st.Appended[write.KindExemplar] += len(series[i].Exemplars)
		}
	}
	for _, rj := range st.Rejected {
		st.Appended[rj.Kind] = max(st.Appended[rj.Kind]-rj.Count, 0)
	}
	return st
}

// bufferPool holds the payload buffers of forwards.
var bufferPool = sync.Pool{New: func() any { return new([]byte) }}

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	*b = (*b)[:0]
	bufferPool.Put(b)
}
