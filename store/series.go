package store

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/common/model"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-metrics/weir/store/storepb"
	"github.com/weir-metrics/weir/tenant"
)

// maxFrameBytes splits a series with more chunk bytes than this over several frames, as Thanos does
// (its RemoteReadFrameLimit): whole series after whole series, a series' frames one after the other.
const maxFrameBytes = 1 << 20

// Series streams the series matching the request from every matching tenant, each with the tenant's
// external labels (but for without_replica_labels) set on it, sorted by these full label sets as the
// StoreAPI requires.
//
// Ordering without buffering the result: a TSDB returns a tenant's series sorted by their own labels.
// Setting constant labels on every series keeps that order except between a series and the series it
// is a prefix of (up{a="1"} comes before up{a="1",b="2"}, but with tenant_id="t" set the second sorts
// first). Those come one right after the other in the TSDB's order, so each tenant's series pass
// through a small heap that holds a series only while a later one could still sort before it (see
// tenantStream.safe); the tenants' streams are then merged. A tenant whose own series carry the name of
// one of its external labels (or of a label to drop) is the exception: there the order can change in
// any way, and that tenant's result is read whole and sorted, as Thanos Receive does for every tenant.
func (s *Server) Series(r *storepb.SeriesRequest, srv grpc.ServerStreamingServer[storepb.SeriesResponse]) (err error) {
	defer func(start time.Time) { s.metrics.observe("Series", start, err) }(time.Now())
	ctx := srv.Context()
	ms, err := toMatchers(r.Matchers)
	if err != nil {
		return err
	}
	readers := s.tenants.Readers()
	defer releaseAll(readers)

	rd := &seriesReader{cfg: s.cfg, skipChunks: r.SkipChunks}
	var streams []*tenantStream
	defer func() {
		for _, t := range streams {
			_ = t.q.Close()
		}
	}()
	if r.MinTime > r.MaxTime {
		return nil
	}
	for _, tr := range readers {
		ok, tms := splitMatchers(ms, tr.ExternalLabels)
		if !ok {
			continue
		}
		if len(tms) == 0 {
			// Only external labels were matched (say {tenant_id="a"}): the whole tenant.
			tms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".*")}
		}
		t, err := newTenantStream(ctx, tr, r, tms, rd)
		if t != nil {
			streams = append(streams, t)
		}
		if err != nil {
			return queryError(ctx, tr.ID, err)
		}
	}

	out := &sender{srv: srv, batchSize: int(r.ResponseBatchSize), m: s.metrics}
	merged := &streamHeap{}
	for _, t := range streams {
		if err := merged.add(t); err != nil {
			return queryError(ctx, t.id, err)
		}
	}
	var sent int64
	for merged.Len() > 0 {
		if r.Limit > 0 && sent >= r.Limit {
			break
		}
		t := (*merged)[0]
		if err := out.send(t.cur); err != nil {
			return sendError(ctx, err)
		}
		sent++
		heap.Pop(merged)
		if err := merged.add(t); err != nil {
			return queryError(ctx, t.id, err)
		}
	}
	if err := out.flush(); err != nil {
		return sendError(ctx, err)
	}
	return nil
}

func sendError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Errorf(codes.Aborted, "sending series: %v", err)
}

// entry is one series as it is sent, its chunks copied out of the TSDB.
type entry struct {
	own     []labels.Label // the series' own labels, as sorted by the TSDB
	out     labels.Labels  // what is sent: own labels with the external labels set
	chunks  []*storepb.AggrChunk
	samples int
}

// seriesReader materializes series and enforces the limits of one request, over all its tenants.
type seriesReader struct {
	cfg             Config
	skipChunks      bool
	series, samples int64
}

func (rd *seriesReader) read(t *tenantStream, cs storage.ChunkSeries) (*entry, error) {
	rd.series++
	if rd.cfg.MaxSeries > 0 && rd.series > rd.cfg.MaxSeries {
		return nil, status.Errorf(codes.ResourceExhausted,
			"the query selects more than %d series, the limit per StoreAPI request on this node: narrow its selectors or time range", rd.cfg.MaxSeries)
	}
	e := &entry{}
	own := cs.Labels()
	e.own = make([]labels.Label, 0, own.Len())
	collides := false
	own.Range(func(l labels.Label) {
		e.own = append(e.own, l)
		if t.touched(l.Name) {
			collides = true
		}
	})
	if collides && !t.sortAll {
		// Only possible if such a series was created after the tenant's label names were checked.
		return nil, status.Errorf(codes.Unavailable,
			"tenant %s got series with external label names while it was read; retry the query", t.id)
	}
	b := labels.NewBuilder(own)
	for _, n := range t.drop {
		b.Del(n)
	}
	t.ext.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
	e.out = b.Labels()
	if rd.skipChunks {
		return e, nil
	}
	it := cs.Iterator(nil)
	for it.Next() {
		meta := it.At()
		if meta.Chunk == nil {
			return nil, fmt.Errorf("chunk %d of series %s not populated", meta.Ref, own)
		}
		enc, err := chunkEncoding(meta.Chunk.Encoding())
		if err != nil {
			return nil, err
		}
		n := meta.Chunk.NumSamples()
		e.samples += n
		rd.samples += int64(n)
		if rd.cfg.MaxSamples > 0 && rd.samples > rd.cfg.MaxSamples {
			return nil, status.Errorf(codes.ResourceExhausted,
				"the query reads more than %d samples, the limit per StoreAPI request on this node: narrow its selectors or time range", rd.cfg.MaxSamples)
		}
		// Copied: a head chunk is appended to while we send, a block's may be unmapped after the query.
		e.chunks = append(e.chunks, &storepb.AggrChunk{
			MinTime: meta.MinTime,
			MaxTime: meta.MaxTime,
			Raw:     &storepb.Chunk{Type: enc, Data: slices.Clone(meta.Chunk.Bytes())},
		})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading chunks of %s: %w", own, err)
	}
	return e, nil
}

// chunkEncoding maps a TSDB chunk encoding to the StoreAPI's (one off: TSDB counts EncNone as 0).
func chunkEncoding(e chunkenc.Encoding) (storepb.Chunk_Encoding, error) {
	switch e {
	case chunkenc.EncXOR:
		return storepb.Chunk_XOR, nil
	case chunkenc.EncHistogram:
		return storepb.Chunk_HISTOGRAM, nil
	case chunkenc.EncFloatHistogram:
		return storepb.Chunk_FLOAT_HISTOGRAM, nil
	}
	return 0, fmt.Errorf("chunk encoding %s has no StoreAPI equivalent", e)
}

// tenantStream yields one tenant's series in the order of their full label sets.
type tenantStream struct {
	id      string
	q       storage.ChunkQuerier
	set     storage.ChunkSeriesSet
	rd      *seriesReader
	ctx     context.Context
	ext     labels.Labels // external labels set on every series (without_replica_labels removed)
	maxExt  string        // the greatest name in ext
	drop    []string      // without_replica_labels: removed from the series
	sortAll bool          // own series carry external label names: read all, then sort

	peeked  bool // set.Next() was called and returned true, At not consumed yet
	done    bool
	last    []labels.Label // own labels of the last series read from the TSDB
	pending entryHeap
	cur     *entry
}

func newTenantStream(ctx context.Context, tr tenant.Reader, r *storepb.SeriesRequest, ms []*labels.Matcher, rd *seriesReader) (*tenantStream, error) {
	q, err := tr.DB.ChunkQuerier(r.MinTime, r.MaxTime)
	if err != nil {
		return nil, err
	}
	t := &tenantStream{id: tr.ID, q: q, rd: rd, ctx: ctx, drop: r.WithoutReplicaLabels}
	b := labels.NewBuilder(tr.ExternalLabels)
	for _, n := range t.drop {
		b.Del(n)
	}
	t.ext = b.Labels()
	t.ext.Range(func(l labels.Label) { t.maxExt = max(t.maxExt, l.Name) })

	hints := &storage.SelectHints{Start: r.MinTime, End: r.MaxTime, Limit: int(r.Limit), DisableTrimming: true}
	if r.SkipChunks {
		hints.Func = "series"
	}
	t.set = q.Select(ctx, true, hints, ms...)
	// The first Next resolves the postings; the label names read after it cover every series the set
	// can return.
	t.peeked = t.set.Next()
	if !t.peeked {
		t.done = true
		return t, t.set.Err()
	}
	names, _, err := q.LabelNames(ctx, nil)
	if err != nil {
		return t, err
	}
	t.sortAll = slices.ContainsFunc(names, t.touched)
	return t, nil
}

// touched reports whether a label of this name in a series is overwritten or removed.
func (t *tenantStream) touched(name string) bool {
	return t.ext.Has(name) || slices.Contains(t.drop, name)
}

// next moves t.cur to the tenant's next series; false at the end.
func (t *tenantStream) next() (bool, error) {
	for {
		if len(t.pending) > 0 && (t.done || t.safe(t.pending[0])) {
			t.cur = heap.Pop(&t.pending).(*entry)
			return true, nil
		}
		if t.done {
			t.cur = nil
			return false, nil
		}
		if err := t.ctx.Err(); err != nil {
			return false, err
		}
		if !t.peeked && !t.set.Next() {
			if err := t.set.Err(); err != nil {
				return false, err
			}
			t.done = true
			continue
		}
		t.peeked = false
		e, err := t.rd.read(t, t.set.At())
		if err != nil {
			return false, err
		}
		heap.Push(&t.pending, e)
		t.last = e.own
	}
}

// safe reports whether no series still to come from the TSDB can sort before m once the external
// labels are set. Series come sorted by their own labels; let c be the last one read. If m is not a
// prefix of c, every later series differs from m at a label both have, and setting the same external
// labels on both keeps their order. If m is a prefix of c, a later series extending m sorts before m
// exactly when its first label beyond m sorts before some external label's name: impossible when
// c's label at that position sorts after every external label name (later ones sort after c's).
func (t *tenantStream) safe(m *entry) bool {
	if t.sortAll {
		return false
	}
	if t.ext.IsEmpty() {
		return true
	}
	c := t.last
	if len(m.own) > len(c) || !slices.Equal(m.own, c[:len(m.own)]) {
		return true
	}
	if len(m.own) == len(c) {
		return false // m is c: wait for the next one
	}
	return c[len(m.own)].Name > t.maxExt
}

type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return labels.Compare(h[i].out, h[j].out) < 0 }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(*entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// streamHeap merges the tenants' streams by their current series.
type streamHeap []*tenantStream

func (h streamHeap) Len() int           { return len(h) }
func (h streamHeap) Less(i, j int) bool { return labels.Compare(h[i].cur.out, h[j].cur.out) < 0 }
func (h streamHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)        { *h = append(*h, x.(*tenantStream)) }
func (h *streamHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

// add advances t and puts it back in the heap unless it is exhausted.
func (h *streamHeap) add(t *tenantStream) error {
	ok, err := t.next()
	if err != nil || !ok {
		return err
	}
	heap.Push(h, t)
	return nil
}

// sender writes series to the stream: in frames of at most maxFrameBytes of chunks, in batches when
// the client asked for them.
type sender struct {
	srv       grpc.ServerStreamingServer[storepb.SeriesResponse]
	batchSize int
	batch     []*storepb.Series
	m         *metrics
}

func (s *sender) send(e *entry) error {
	lbls := toPB(e.out)
	s.m.series.Inc()
	s.m.chunks.Add(float64(len(e.chunks)))
	s.m.samples.Add(float64(e.samples))
	if len(e.chunks) == 0 {
		return s.frame(&storepb.Series{Labels: lbls})
	}
	start, size := 0, 0
	for i, c := range e.chunks {
		size += len(c.Raw.Data)
		if size >= maxFrameBytes || i == len(e.chunks)-1 {
			if err := s.frame(&storepb.Series{Labels: lbls, Chunks: e.chunks[start : i+1]}); err != nil {
				return err
			}
			start, size = i+1, 0
		}
	}
	return nil
}

func (s *sender) frame(ser *storepb.Series) error {
	if s.batchSize <= 1 {
		return s.srv.Send(&storepb.SeriesResponse{Result: &storepb.SeriesResponse_Series{Series: ser}})
	}
	s.batch = append(s.batch, ser)
	if len(s.batch) >= s.batchSize {
		return s.flush()
	}
	return nil
}

func (s *sender) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	err := s.srv.Send(&storepb.SeriesResponse{Result: &storepb.SeriesResponse_Batch{Batch: &storepb.SeriesBatch{Series: s.batch}}})
	s.batch = nil
	return err
}
