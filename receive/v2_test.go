package receive

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/write"
)

// v2Series is one series of a Remote Write 2.0 test request, before symbolisation.
type v2Series struct {
	labels     []string // name/value pairs
	samples    []writev2.Sample
	histograms []writev2.Histogram
	exemplars  []v2Exemplar
	meta       metadata.Metadata
}

// v2Exemplar is an exemplar of a v2Series, before symbolisation.
type v2Exemplar struct {
	labels []string // name/value pairs
	value  float64
	ts     int64
}

// buildV2 symbolises series into a 2.0 request, as a sender does.
func buildV2(series ...v2Series) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, s := range series {
		ts := writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings(s.labels...), nil),
			Samples:    s.samples, Histograms: s.histograms,
			Metadata: writev2.Metadata{
				Type:    writev2.FromMetadataType(s.meta.Type),
				HelpRef: st.Symbolize(s.meta.Help),
				UnitRef: st.Symbolize(s.meta.Unit),
			},
		}
		for _, e := range s.exemplars {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{LabelsRefs: st.SymbolizeLabels(labels.FromStrings(e.labels...), nil), Value: e.value, Timestamp: e.ts})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	return req
}

func encodeV2(tb testing.TB, req *writev2.Request) []byte {
	tb.Helper()
	b, err := req.Marshal()
	require.NoError(tb, err)
	return snappy.Encode(nil, b)
}

func rw2Headers() http.Header {
	return http.Header{
		"Content-Encoding":                  {"snappy"},
		"Content-Type":                      {"application/x-protobuf;proto=io.prometheus.write.v2.Request"},
		"X-Prometheus-Remote-Write-Version": {"2.0.0"},
	}
}

var (
	counterMeta = metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests served.", Unit: ""}
	nhcbMeta    = metadata.Metadata{Type: model.MetricTypeHistogram, Help: "RPC latency.", Unit: "seconds"}
	nhcb        = &histogram.Histogram{
		Schema: histogram.CustomBucketsSchema, Count: 3, Sum: 1.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 1},
		CustomValues: []float64{0.1, 1},
	}
)

// happyV2 is a 2.0 request with what 1.0 cannot carry: start timestamps, metadata, custom buckets.
func happyV2() *writev2.Request {
	now := int64(1_700_000_000_000)
	return buildV2(
		v2Series{labels: []string{"__name__", "http_requests_total", "job", "api"}, meta: counterMeta,
			samples: []writev2.Sample{{Value: 5, Timestamp: now - 15_000, StartTimestamp: now - 60_000}, {Value: 7, Timestamp: now, StartTimestamp: now - 60_000}}},
		v2Series{labels: []string{"__name__", "rpc_seconds", "job", "api"}, meta: nhcbMeta,
			histograms: []writev2.Histogram{writev2.FromIntHistogram(now-30_000, now, nhcb)}},
		v2Series{labels: []string{"__name__", "up", "job", "api"}, samples: []writev2.Sample{{Value: 1, Timestamp: now}},
			exemplars: []v2Exemplar{{labels: []string{"trace_id", "4bf92f3577b34da6"}, value: 1, ts: now}}},
	)
}

// TestDecodeV2 decodes a 2.0 request into the 1.0 shape plus extras, as Prometheus' own codec reads it.
func TestDecodeV2(t *testing.T) {
	in := happyV2()
	req, err := decodeBytes(encodeV2(t, in), MessageV2, 1<<20)
	require.NoError(t, err)
	defer req.Release()
	require.Equal(t, MessageV2, req.Message)
	requireMatchesV2(t, in, req.Write.Timeseries, req.Extras)
	require.Equal(t, []int64{1_700_000_000_000 - 60_000, 1_700_000_000_000 - 60_000}, req.Extras[0].Starts)
	require.Equal(t, []int64{1_700_000_000_000 - 30_000}, req.Extras[1].Starts)
	require.Nil(t, req.Extras[2].Starts, "no start: no starts")
	require.Equal(t, metadata.Metadata{Type: model.MetricTypeUnknown}, req.Extras[2].Metadata)
	require.Equal(t, nhcb.CustomValues, req.Write.Timeseries[1].Histograms[0].CustomValues)
}

// requireMatchesV2 checks that series and extras are what Prometheus' generated code and codec make of
// the 2.0 request in.
func requireMatchesV2(t testing.TB, in *writev2.Request, series []prompb.TimeSeries, extras []write.SeriesExtra) {
	t.Helper()
	require.Len(t, series, len(in.Timeseries))
	require.Len(t, extras, len(in.Timeseries))
	b := labels.NewScratchBuilder(8)
	for i, ts := range in.Timeseries {
		ls, err := ts.ToLabels(&b, in.Symbols)
		require.NoError(t, err)
		require.Equal(t, ls, labelsOf(series[i].Labels), "series %d", i)
		if md, err := ts.ToMetadata(in.Symbols); err == nil {
			require.Equal(t, md, extras[i].Metadata, "series %d", i)
		} else {
			// Prometheus' codec resolves the zero references a wire without symbols left out.
			require.Empty(t, in.Symbols, "%v", err)
			require.Equal(t, metricTypes[ts.Metadata.Type], extras[i].Metadata.Type, "series %d", i)
			require.Empty(t, extras[i].Metadata.Help+extras[i].Metadata.Unit, "series %d", i)
		}
		require.Len(t, series[i].Samples, len(ts.Samples))
		var starts []int64
		for j, s := range ts.Samples {
			require.Equal(t, s.Timestamp, series[i].Samples[j].Timestamp)
			require.Equal(t, math.Float64bits(s.Value), math.Float64bits(series[i].Samples[j].Value))
			starts = append(starts, s.StartTimestamp)
		}
		require.Len(t, series[i].Histograms, len(ts.Histograms))
		for j, h := range ts.Histograms {
			got := series[i].Histograms[j]
			require.Equal(t, h.Timestamp, got.Timestamp)
			if h.IsFloatHistogram() {
				require.True(t, h.ToFloatHistogram().Equals(got.ToFloatHistogram()), "series %d histogram %d", i, j)
			} else {
				require.True(t, h.ToIntHistogram().Equals(got.ToIntHistogram()), "series %d histogram %d", i, j)
			}
			starts = append(starts, h.StartTimestamp)
		}
		if allZero(starts) {
			require.Nil(t, extras[i].Starts, "series %d", i)
		} else {
			require.Equal(t, starts, extras[i].Starts, "series %d", i)
		}
		require.Len(t, series[i].Exemplars, len(ts.Exemplars))
		for j, e := range ts.Exemplars {
			want, err := e.ToExemplar(&b, in.Symbols)
			require.NoError(t, err)
			got := series[i].Exemplars[j]
			require.Equal(t, want.Labels, labelsOf(got.Labels))
			require.Equal(t, want.Ts, got.Timestamp)
			require.Equal(t, math.Float64bits(want.Value), math.Float64bits(got.Value))
		}
	}
}

func allZero(s []int64) bool {
	for _, v := range s {
		if v != 0 {
			return false
		}
	}
	return true
}

func labelsOf(ls []prompb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	// Sorted, as Prometheus' codec desymbolizes them: the decoder keeps the wire's order and
	// validation sorts (validate.go).
	b.Sort()
	return b.Labels()
}

// TestDecodeV2Refusals: what the generated code takes but a receiver cannot use is refused, 400.
func TestDecodeV2Refusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  *writev2.Request
		want string
	}{
		{"label reference outside the table", &writev2.Request{Symbols: []string{"", "__name__"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2}}}},
			"symbol reference 2 outside the symbols table of 2 strings"},
		{"odd label references", &writev2.Request{Symbols: []string{"", "__name__", "up"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2, 1}}}},
			"odd number of label references (3)"},
		{"help reference outside the table", &writev2.Request{Symbols: []string{""}, Timeseries: []writev2.TimeSeries{{Metadata: writev2.Metadata{HelpRef: 9}}}},
			"metadata: symbol reference 9 outside the symbols table of 1 strings"},
		{"exemplar reference outside the table", &writev2.Request{Symbols: []string{""}, Timeseries: []writev2.TimeSeries{{Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{0, 5}}}}}},
			"symbol reference 5 outside the symbols table of 1 strings"},
		{"unknown metric type", &writev2.Request{Symbols: []string{""}, Timeseries: []writev2.TimeSeries{{Metadata: writev2.Metadata{Type: 42}}}},
			"metadata: unknown metric type 42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeBytes(encodeV2(t, tc.req), MessageV2, 1<<20)
			require.Error(t, err)
			require.Equal(t, ClassInvalid, ClassOf(err))
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestHandlerV2 writes a 2.0 request through the handler: the storage gets the series with their
// extras, and every answer counts what was written in the headers a 2.0 sender reads.
func TestHandlerV2(t *testing.T) {
	storage := &fakeStorage{}
	h, _ := newTestHandler(t, testConfig(), storage, alwaysReady)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, newPost(encodeV2(t, happyV2()), rw2Headers()))
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	require.Len(t, storage.extras, 1)
	in := happyV2()
	requireMatchesV2(t, in, storage.series[0], storage.extras[0])

	// The fake storage reports what it was told to; the headers say exactly that.
	storage.stats = write.Stats{Appended: [write.NumKinds]int{2, 1, 0}, Rejected: []write.Rejection{{Series: 2, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 1, Err: errors.New("out of order sample")}}}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, newPost(encodeV2(t, in), rw2Headers()))
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	require.Equal(t, "2", rec.Header().Get(headerSamplesWritten))
	require.Equal(t, "1", rec.Header().Get(headerHistogramsWritten))
	require.Equal(t, "0", rec.Header().Get(headerExemplarsWritten))

	// Refused before storage: nothing written, said so.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, newPost([]byte("not snappy"), rw2Headers()))
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, "0", rec.Header().Get(headerSamplesWritten))
	require.Equal(t, "0", rec.Header().Get(headerHistogramsWritten))
}

// TestHandlerV2ValidationKeepsStarts: validation that removes series and points keeps each remaining
// point's start timestamp with it.
func TestHandlerV2ValidationKeepsStarts(t *testing.T) {
	now := int64(1_700_000_000_000)
	storage := &fakeStorage{}
	cfg := testConfig()
	cfg.Limits.FutureWindow = 0
	h, _ := newTestHandler(t, cfg, storage, alwaysReady)
	h.now = func() time.Time { return time.UnixMilli(now) }
	h.cfg.Limits.FutureWindow = time.Minute
	in := buildV2(
		v2Series{labels: []string{"__name__", "bad", "a", "\xff"}, samples: []writev2.Sample{{Value: 1, Timestamp: now, StartTimestamp: 1}}},
		v2Series{labels: []string{"__name__", "c_total"}, meta: counterMeta, samples: []writev2.Sample{
			{Value: 1, Timestamp: now - 1000, StartTimestamp: 10},
			{Value: 2, Timestamp: now + time.Hour.Milliseconds(), StartTimestamp: 20}, // too far in the future
			{Value: 3, Timestamp: now, StartTimestamp: 30},
		}},
	)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, newPost(encodeV2(t, in), rw2Headers()))
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	require.Len(t, storage.series, 1)
	require.Len(t, storage.series[0], 1)
	require.Equal(t, []prompb.Sample{{Value: 1, Timestamp: now - 1000}, {Value: 3, Timestamp: now}}, storage.series[0][0].Samples)
	require.Equal(t, []write.SeriesExtra{{Metadata: counterMeta, Starts: []int64{10, 30}}}, storage.extras[0])
}

// FuzzUnmarshalV2MatchesWritev2 holds the 2.0 decoder to the generated code: what the generated code
// refuses, the decoder refuses; what the decoder takes, the generated code takes and reads the same;
// and what only the generated code takes is one of the refusals the decoder documents.
func FuzzUnmarshalV2MatchesWritev2(f *testing.F) {
	for _, r := range []*writev2.Request{happyV2(), {}, {Symbols: []string{""}}} {
		b, err := r.Marshal()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var gen writev2.Request
		genErr := gen.Unmarshal(b)
		var d decoder
		var wr prompb.WriteRequest
		extras, err := d.unmarshalV2(b, &wr)
		switch {
		case genErr != nil:
			require.Error(t, err, "the generated code refuses it: %v", genErr)
		case err != nil:
			msg := err.Error()
			documented := strings.Contains(msg, "outside the symbols table") || strings.Contains(msg, "odd number of label references") ||
				strings.Contains(msg, "unknown metric type") || strings.Contains(msg, "is reserved in 2.0") ||
				strings.Contains(msg, "packed LabelsRefs")
			require.True(t, documented, "refused what the generated code takes, for no documented reason: %v", err)
		default:
			requireMatchesV2(t, &gen, wr.Timeseries, extras)
		}
	})
}
