package tenant

import (
	"context"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/write"
)

// TestWriteStartTimestampsAndMetadata writes what Remote Write 2.0 and OTLP carry beyond 1.0: a start
// timestamp becomes a zero point at the start, once per start (the head ignores a start that is not
// newer than the series' last point), counted in no stat; metadata becomes readable by family. Both
// outlive a restart: the zero points are in the WAL, the metadata comes again with the next write.
func TestWriteStartTimestampsAndMetadata(t *testing.T) {
	cfg := testConfig(t.TempDir())
	m, _ := newManagerAt(t, cfg)
	counter := lbls("__name__", "http_requests_total", "job", "api")
	bucket := lbls("__name__", "latency_seconds_bucket", "job", "api", "le", "0.5")
	nhcb := lbls("__name__", "rpc_seconds", "job", "api")
	cb := tsdbutil.GenerateTestCustomBucketsHistograms(1)[0]
	series := []prompb.TimeSeries{
		{Labels: counter, Samples: floats(float64(t0+15_000), 5, float64(t0+30_000), 7)},
		{Labels: bucket, Samples: floats(float64(t0+15_000), 3)},
		{Labels: nhcb, Histograms: []prompb.Histogram{prompb.FromIntHistogram(t0+15_000, cb)}},
	}
	counterMeta := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests served.", Unit: ""}
	histMeta := metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"}
	extras := []write.SeriesExtra{
		{Metadata: counterMeta, Starts: []int64{t0, t0}},
		{Metadata: histMeta}, // no start: nothing is added
		{Metadata: histMeta, Starts: []int64{t0 + 5_000}},
	}
	st, err := m.Write(context.Background(), "team-a", series, extras, nil)
	require.NoError(t, err)
	require.Equal(t, appended(3, 1, 0), st.Appended, "zero points at the start are not counted")
	requireRejections(t, nil, st.Rejected)

	// Read back in the chunk's bucket layout, which the next histogram set: the same buckets, empty.
	zero := &histogram.Histogram{Schema: cb.Schema, CustomValues: cb.CustomValues, PositiveSpans: cb.PositiveSpans, PositiveBuckets: make([]int64, len(cb.PositiveBuckets))}
	want := map[string][]point{
		key("__name__", "http_requests_total", "job", "api"):                 {fp(t0, 0), fp(t0+15_000, 5), fp(t0+30_000, 7)},
		key("__name__", "latency_seconds_bucket", "job", "api", "le", "0.5"): {fp(t0+15_000, 3)},
		key("__name__", "rpc_seconds", "job", "api"):                         {{T: t0 + 5_000, H: zero}, {T: t0 + 15_000, H: cb}},
	}
	requireSeries(t, m, "team-a", want)
	wantMeta := map[string][]metadata.Metadata{"http_requests_total": {counterMeta}, "latency_seconds": {histMeta}, "rpc_seconds": {histMeta}}
	require.Equal(t, wantMeta, m.Metadata("", "", 0))
	require.Equal(t, map[string][]metadata.Metadata{"latency_seconds": {histMeta}}, m.Metadata("", "latency_seconds", 0))
	require.Len(t, m.Metadata("", "", 2), 2)

	// The same start again adds nothing; a new start (a counter reset) adds its zero point.
	_, err = m.Write(context.Background(), "team-a", []prompb.TimeSeries{{Labels: counter, Samples: floats(float64(t0+45_000), 9, float64(t0+70_000), 1)}},
		[]write.SeriesExtra{{Metadata: counterMeta, Starts: []int64{t0, t0 + 60_000}}}, nil)
	require.NoError(t, err)
	want[key("__name__", "http_requests_total", "job", "api")] = []point{fp(t0, 0), fp(t0+15_000, 5), fp(t0+30_000, 7), fp(t0+45_000, 9), fp(t0+60_000, 0), fp(t0+70_000, 1)}
	requireSeries(t, m, "team-a", want)

	require.NoError(t, m.Close())
	m2, _ := newManagerAt(t, cfg)
	requireSeries(t, m2, "team-a", want)
}
