package receive

import (
	"encoding/binary"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/write"
)

// fuzzNow is the receiver clock of the fuzz target.
var fuzzNow = time.UnixMilli(1_700_000_000_000)

// fuzzSeed is one seed input of FuzzDecodeValidate. The same seeds are checked in as files under
// testdata/fuzz/FuzzDecodeValidate/<name>, so that `go test` runs them without -fuzz too.
type fuzzSeed struct {
	name string
	body []byte
}

func fuzzSeeds(tb testing.TB) []fuzzSeed {
	now := fuzzNow.UnixMilli()
	h := &histogram.Histogram{
		Schema: 3, Count: 9, Sum: 42.5, ZeroThreshold: 1e-128, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: -2, Length: 3}}, PositiveBuckets: []int64{2, 1, -1},
		NegativeSpans: []histogram.Span{{Offset: 0, Length: 1}}, NegativeBuckets: []int64{3},
	}
	fh := &histogram.FloatHistogram{
		Schema: -1, Count: 4.5, Sum: -3, ZeroThreshold: 0.5, ZeroCount: 0.5,
		PositiveSpans: []histogram.Span{{Offset: 1, Length: 2}}, PositiveBuckets: []float64{1.5, 2.5},
	}
	nhcb := &histogram.Histogram{
		Schema: histogram.CustomBucketsSchema, Count: 3, Sum: 1.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 1},
		CustomValues: []float64{0.1, 1},
	}
	wrs := []struct {
		name string
		wr   *prompb.WriteRequest
	}{
		{"samples", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: lbls("__name__", "up", "instance", "10.0.0.1:9100", "job", "node"), Samples: samples(now-15_000, now)},
			{Labels: lbls("__name__", "http_requests_total", "code", "200", "method", "GET"), Samples: samples(now)},
		}}},
		{"histograms", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: lbls("__name__", "rpc_duration_seconds", "job", "api"), Histograms: []prompb.Histogram{
				prompb.FromIntHistogram(now-1000, h), prompb.FromIntHistogram(now, h),
			}},
			{Labels: lbls("__name__", "queue_wait_seconds"), Histograms: []prompb.Histogram{prompb.FromFloatHistogram(now, fh)}},
			{Labels: lbls("__name__", "nhcb_seconds"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, nhcb)}},
		}}},
		{"exemplars", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  lbls("__name__", "http_request_duration_seconds_bucket", "le", "0.5"),
			Samples: samples(now),
			Exemplars: []prompb.Exemplar{
				{Labels: lbls("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736", "span_id", "00f067aa0ba902b7"), Value: 0.31, Timestamp: now},
				{Value: 0.2},
			},
		}}}},
		{"unsorted-labels", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: lbls("job", "node", "__name__", "up", "az", "", "instance", "h:1"), Samples: samples(now)},
		}}},
		{"duplicate-labels", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: lbls("__name__", "up", "job", "a", "job", "b"), Samples: samples(now)},
			{Labels: lbls("b", "1", "a", "1", "b", "1"), Samples: samples(now)},
			{Labels: lbls("__name__", "ok"), Samples: samples(now)},
		}}},
		{"invalid-labels", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: lbls("", "x"), Samples: samples(now)},
			{Labels: lbls("a\xff", "x"), Samples: samples(now)},
			{Labels: lbls("a", "\xc3("), Samples: samples(now)},
			{Labels: lbls("a", ""), Samples: samples(now)},
			{Samples: samples(now)},
		}}},
		{"future-and-metadata", &prompb.WriteRequest{
			Timeseries: []prompb.TimeSeries{
				{Labels: lbls("__name__", "clock_skew"), Samples: samples(now, now+3_600_000), Histograms: []prompb.Histogram{prompb.FromIntHistogram(now+3_600_000, h)}},
			},
			Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "clock_skew", Help: "Skew.", Unit: "seconds"}},
		}},
		{"empty-request", &prompb.WriteRequest{}},
	}
	var seeds []fuzzSeed
	for _, w := range wrs {
		seeds = append(seeds, fuzzSeed{name: "seed-" + w.name, body: encodeWR(tb, w.wr)})
	}
	raw := marshalWR(tb, wrs[0].wr)
	seeds = append(seeds,
		fuzzSeed{"garbage-empty", []byte{}},
		fuzzSeed{"garbage-uncompressed-protobuf", raw},
		fuzzSeed{"garbage-gzip", gzipped(tb, raw)},
		fuzzSeed{"garbage-framed-snappy", framedSnappy(tb, raw)},
		fuzzSeed{"garbage-claims-4GiB", append(binary.AppendUvarint(nil, 1<<32-1), "\x00\x01garbage"...)},
		fuzzSeed{"garbage-truncated-protobuf", snappy.Encode(nil, raw[:len(raw)/2])},
		fuzzSeed{"garbage-text", []byte("up{job=\"node\"} 1\n")},
	)
	return seeds
}

// FuzzDecodeValidate feeds arbitrary bodies through what the handler does before storage: decode, then
// validate. It must never panic; a refused body must be the client's fault (400 or 413); and what
// validation keeps must be safe to hand to the TSDB.
func FuzzDecodeValidate(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.body)
	}
	limits := Limits{
		MaxSeriesPerRequest: 2000,
		MaxLabelsPerSeries:  30,
		MaxLabelNameLength:  128,
		MaxLabelValueLength: 2048,
		FutureWindow:        10 * time.Minute,
	}
	maxT := fuzzNow.Add(limits.FutureWindow).UnixMilli()

	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodeValidate(t, body, limits, maxT)
		// Mutated snappy rarely stays valid snappy; compressing the input as well lets the fuzzer explore
		// protobuf decoding and validation directly (the raw-protobuf seed starts it off).
		checkDecodeValidate(t, snappy.Encode(nil, body), limits, maxT)
	})
}

// checkDecodeValidate decodes and validates body and checks what must hold of the outcome.
func checkDecodeValidate(t *testing.T, body []byte, limits Limits, maxT int64) {
	req, err := DecodeBytes(body, 1<<20)
	if err != nil {
		require.Nil(t, req)
		c := ClassOf(err)
		require.True(t, c == ClassInvalid || c == ClassTooLarge, "class %d for %v", c, err)
		return
	}
	defer req.Release()

	n := len(req.Write.Timeseries)
	pointsIn := countPoints(req.Write.Timeseries)
	kept, v, err := limits.validateRequest(req, fuzzNow)
	if err != nil {
		require.Equal(t, ClassInvalid, ClassOf(err))
		require.Greater(t, n, limits.MaxSeriesPerRequest)
		return
	}
	require.LessOrEqual(t, n, limits.MaxSeriesPerRequest)
	require.Len(t, kept, n-len(v.removed))
	require.Equal(t, kept, req.Write.Timeseries)
	checkFrames(t, req, kept) // what the router forwards of them as they came is exactly them

	for j, r := range v.removed {
		require.Less(t, r, n)
		if j > 0 {
			require.Greater(t, r, v.removed[j-1], "removed not ascending")
		}
	}
	for _, r := range v.rejected {
		require.GreaterOrEqual(t, r.Series, 0)
		require.Less(t, r.Series, n)
		require.Less(t, r.Kind, write.NumKinds)
		require.NotEmpty(t, r.Reason)
		require.Positive(t, r.Count)
		require.Error(t, r.Err)
	}

	// Every point is either kept or counted as rejected.
	rejected := 0
	for _, r := range v.rejected {
		rejected += r.Count
	}
	require.Equal(t, pointsIn, countPoints(kept)+rejected)

	prev := -1
	for i, ts := range kept {
		orig := v.originalIndex(i)
		require.Greater(t, orig, prev)
		require.Less(t, orig, n)
		prev = orig

		require.NotEmpty(t, ts.Labels, "series %d", i)
		require.LessOrEqual(t, len(ts.Labels), limits.MaxLabelsPerSeries)
		for j, l := range ts.Labels {
			require.NotEmpty(t, l.Name)
			require.NotEmpty(t, l.Value)
			require.True(t, utf8.ValidString(l.Name), "name %q", l.Name)
			require.True(t, utf8.ValidString(l.Value), "value %q", l.Value)
			require.LessOrEqual(t, len(l.Name), limits.MaxLabelNameLength)
			require.LessOrEqual(t, len(l.Value), limits.MaxLabelValueLength)
			if j > 0 {
				require.Less(t, ts.Labels[j-1].Name, l.Name, "labels not sorted or not unique")
			}
		}
		for _, s := range ts.Samples {
			require.LessOrEqual(t, s.Timestamp, maxT)
		}
		for _, h := range ts.Histograms {
			require.LessOrEqual(t, h.Timestamp, maxT)
		}
	}

	// The answer stays small whatever the request held.
	if err := partialError(write.Stats{}, v.rejected); err != nil {
		require.Equal(t, 400, StatusCode(err))
		require.Less(t, len(err.Error()), 8<<10)
	}
}

func countPoints(series []prompb.TimeSeries) int {
	n := 0
	for _, ts := range series {
		n += len(ts.Samples) + len(ts.Histograms) + len(ts.Exemplars)
	}
	return n
}
