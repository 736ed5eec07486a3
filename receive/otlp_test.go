package receive

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelmetric "go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weir-metrics/weir/write"
)

// extrasStorage records the batches it was asked to write, extras included, deep-copied (the
// handler's memory is pooled).
type extrasStorage struct {
	fakeStorage
	mu     sync.Mutex
	extras [][]write.SeriesExtra
}

func (s *extrasStorage) Write(ctx context.Context, b Batch) (write.Stats, error) {
	s.mu.Lock()
	ex := make([]write.SeriesExtra, len(b.Extras))
	for i, e := range b.Extras {
		ex[i] = write.SeriesExtra{Metadata: e.Metadata, Starts: slices.Clone(e.Starts)}
	}
	s.extras = append(s.extras, ex)
	s.mu.Unlock()
	return s.fakeStorage.Write(ctx, b)
}

// stored is every series written, by its labels as text, with its extra.
func (s *extrasStorage) stored(t *testing.T) map[string]storedSeries {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]storedSeries{}
	for i, batch := range s.series {
		require.Len(t, s.extras[i], len(batch), "one extra per series")
		for j, ts := range batch {
			out[labelsString(ts.Labels)] = storedSeries{ts: ts, extra: s.extras[i][j]}
		}
	}
	return out
}

type storedSeries struct {
	ts    prompb.TimeSeries
	extra write.SeriesExtra
}

func testOTLPConfig() OTLPConfig {
	return OTLPConfig{EnableTargetInfo: true, TranslationStrategy: "UnderscoreEscapingWithSuffixes", PromoteResourceAttributes: []string{"k8s.cluster.name"}}
}

// newOTLPServer serves the OTLP handler over storage on loopback.
func newOTLPServer(t *testing.T, cfg OTLPConfig, storage Storage, ready func() bool) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	h, reg := newTestHandler(t, testConfig(), storage, ready)
	o, err := NewOTLPHandler(h, cfg, reg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(OTLPPath, o)
	mux.Handle(OTLPThanosPath, o)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, reg
}

// TestOTLPSDKExporter sends counters, gauges, explicit and exponential histograms with the
// OpenTelemetry Go SDK's OTLP/HTTP exporter and checks the series Prometheus' translator makes of
// them: names with suffixes, job and instance from the resource, the promoted attribute, target_info,
// metadata and start timestamps.
func TestOTLPSDKExporter(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string
		opts []otlpmetrichttp.Option
	}{
		{"prometheus path", OTLPPath, nil},
		{"thanos path gzip", OTLPThanosPath, []otlpmetrichttp.Option{otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &extrasStorage{}
			srv, _ := newOTLPServer(t, testOTLPConfig(), st, alwaysReady)
			start := time.Now()
			mp := sdkMeterProvider(t, srv.URL+tc.path, "team-a", tc.opts...)
			recordSDKMetrics(t, mp)
			require.NoError(t, mp.ForceFlush(context.Background()))

			require.Equal(t, []string{"team-a"}, st.tenants)
			got := st.stored(t)
			job := `job="shop/checkout"`
			for _, name := range []string{
				`{__name__="http_requests_total", code="200", instance="pod-1", ` + job + `, k8s_cluster_name="eu1"}`,
				`{__name__="temperature_celsius", instance="pod-1", ` + job + `, k8s_cluster_name="eu1", room="a"}`,
				`{__name__="request_duration_seconds_bucket", instance="pod-1", ` + job + `, k8s_cluster_name="eu1", le="0.5"}`,
				`{__name__="request_duration_seconds_bucket", instance="pod-1", ` + job + `, k8s_cluster_name="eu1", le="+Inf"}`,
				`{__name__="request_duration_seconds_count", instance="pod-1", ` + job + `, k8s_cluster_name="eu1"}`,
				`{__name__="request_duration_seconds_sum", instance="pod-1", ` + job + `, k8s_cluster_name="eu1"}`,
				`{__name__="payload_size_bytes", instance="pod-1", ` + job + `, k8s_cluster_name="eu1"}`,
				`{__name__="target_info", host_arch="amd64", instance="pod-1", ` + job + `, k8s_cluster_name="eu1"}`,
			} {
				require.Contains(t, got, name, "series %s; got %v", name, slices.Sorted(mapKeys(got)))
			}
			counter := got[`{__name__="http_requests_total", code="200", instance="pod-1", `+job+`, k8s_cluster_name="eu1"}`]
			require.Len(t, counter.ts.Samples, 1)
			require.Equal(t, 3.0, counter.ts.Samples[0].Value)
			require.Equal(t, model.MetricTypeCounter, counter.extra.Metadata.Type)
			require.Equal(t, "Requests served.", counter.extra.Metadata.Help)
			require.Len(t, counter.extra.Starts, 1, "a cumulative sum has a start timestamp")
			require.InDelta(t, start.UnixMilli(), counter.extra.Starts[0], float64(time.Minute.Milliseconds()))
			require.Less(t, counter.extra.Starts[0], counter.ts.Samples[0].Timestamp+1)

			gauge := got[`{__name__="temperature_celsius", instance="pod-1", `+job+`, k8s_cluster_name="eu1", room="a"}`]
			require.Equal(t, 21.5, gauge.ts.Samples[0].Value)
			require.Equal(t, model.MetricTypeGauge, gauge.extra.Metadata.Type)
			require.Equal(t, "celsius", gauge.extra.Metadata.Unit)

			count := got[`{__name__="request_duration_seconds_count", instance="pod-1", `+job+`, k8s_cluster_name="eu1"}`]
			require.Equal(t, 2.0, count.ts.Samples[0].Value)
			require.Equal(t, model.MetricTypeHistogram, count.extra.Metadata.Type)

			exp := got[`{__name__="payload_size_bytes", instance="pod-1", `+job+`, k8s_cluster_name="eu1"}`]
			require.Empty(t, exp.ts.Samples)
			require.Len(t, exp.ts.Histograms, 1)
			require.Equal(t, uint64(3), exp.ts.Histograms[0].GetCountInt())
			require.Equal(t, 1600.0, exp.ts.Histograms[0].Sum)
			require.Len(t, exp.extra.Starts, 1)
			require.NotZero(t, exp.extra.Starts[0])
		})
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// sdkMeterProvider is an SDK meter provider exporting to url with the tenant header; it exports on
// ForceFlush (its interval is too long to fire in a test).
func sdkMeterProvider(t *testing.T, url, tenantID string, opts ...otlpmetrichttp.Option) *sdkmetric.MeterProvider {
	t.Helper()
	opts = append([]otlpmetrichttp.Option{otlpmetrichttp.WithEndpointURL(url), otlpmetrichttp.WithHeaders(map[string]string{"THANOS-TENANT": tenantID}),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false})}, opts...)
	exp, err := otlpmetrichttp.New(context.Background(), opts...)
	require.NoError(t, err)
	res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("service.namespace", "shop"),
		attribute.String("service.instance.id", "pod-1"), attribute.String("k8s.cluster.name", "eu1"), attribute.String("host.arch", "amd64"))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "payload.size"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "request.duration"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: []float64{0.1, 0.5, 1}}})))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp
}

// recordSDKMetrics records one of each instrument kind: a counter (3), a gauge (21.5), an explicit
// histogram (0.2, 0.7) and an exponential one (100, 500, 1000).
func recordSDKMetrics(t *testing.T, mp *sdkmetric.MeterProvider) {
	t.Helper()
	ctx := context.Background()
	m := mp.Meter("weir-test")
	c, err := m.Int64Counter("http.requests", otelmetric.WithUnit("{request}"), otelmetric.WithDescription("Requests served."))
	require.NoError(t, err)
	c.Add(ctx, 3, otelmetric.WithAttributes(attribute.String("code", "200")))
	g, err := m.Float64Gauge("temperature", otelmetric.WithUnit("Cel"))
	require.NoError(t, err)
	g.Record(ctx, 21.5, otelmetric.WithAttributes(attribute.String("room", "a")))
	h, err := m.Float64Histogram("request.duration", otelmetric.WithUnit("s"))
	require.NoError(t, err)
	h.Record(ctx, 0.2)
	h.Record(ctx, 0.7)
	e, err := m.Int64Histogram("payload.size", otelmetric.WithUnit("By"))
	require.NoError(t, err)
	for _, v := range []int64{100, 500, 1000} {
		e.Record(ctx, v)
	}
}

// TestOTLPAnswers checks each answer of the handler: status, Content-Type, body (an
// ExportMetricsServiceResponse or a google.rpc.Status) and what reached storage.
func TestOTLPAnswers(t *testing.T) {
	now := time.Now()
	cumulative := otlpRequest(now, pmetric.AggregationTemporalityCumulative)
	delta := otlpRequest(now, pmetric.AggregationTemporalityDelta)
	for _, tc := range []struct {
		name        string
		method      string
		body        []byte
		headers     map[string]string
		storageErr  error
		stats       write.Stats
		notReady    bool
		wantCode    int
		wantType    string
		wantMsg     string // in the Status message or the partial success
		wantWrites  int
		wantSeries  int // series in the first write
		wantRejects int64
		retryAfter  bool
	}{
		{name: "protobuf", body: marshalOTLP(t, cumulative, false), wantCode: 200, wantType: otlpProtobuf, wantWrites: 1, wantSeries: 3},
		{name: "json", body: marshalOTLP(t, cumulative, true), headers: map[string]string{"Content-Type": "application/json"}, wantCode: 200, wantType: otlpJSON, wantWrites: 1, wantSeries: 3},
		{name: "gzip json", body: gzipBytes(t, marshalOTLP(t, cumulative, true)), headers: map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, wantCode: 200, wantType: otlpJSON, wantWrites: 1, wantSeries: 3},
		{name: "delta refused, rest written", body: marshalOTLP(t, delta, false), wantCode: 200, wantType: otlpProtobuf, wantMsg: "delta temporality refused", wantRejects: 2, wantWrites: 1, wantSeries: 1},
		{name: "storage rejects some points", body: marshalOTLP(t, cumulative, false), stats: write.Stats{Appended: [write.NumKinds]int{1}, Rejected: []write.Rejection{{Series: 0, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 1, Err: io.EOF}}},
			wantCode: 200, wantType: otlpProtobuf, wantMsg: "out_of_order", wantRejects: 1, wantWrites: 1, wantSeries: 3},
		{name: "not protobuf", body: []byte("hello, world"), wantCode: 400, wantType: otlpProtobuf, wantMsg: "not an OTLP ExportMetricsServiceRequest"},
		{name: "bad json", body: []byte(`{"resourceMetrics": [`), headers: map[string]string{"Content-Type": "application/json"}, wantCode: 400, wantType: otlpJSON, wantMsg: "not an OTLP"},
		{name: "not gzip", body: []byte("plain"), headers: map[string]string{"Content-Encoding": "gzip"}, wantCode: 400, wantType: otlpProtobuf, wantMsg: "gzip"},
		{name: "gzip bomb", body: gzipBytes(t, make([]byte, 9<<20)), headers: map[string]string{"Content-Encoding": "gzip"}, wantCode: 413, wantType: otlpProtobuf, wantMsg: "limit"},
		{name: "body too large", body: make([]byte, 2<<20), wantCode: 413, wantType: otlpProtobuf, wantMsg: "limit"},
		{name: "snappy", body: []byte("x"), headers: map[string]string{"Content-Encoding": "snappy"}, wantCode: 415, wantType: otlpProtobuf, wantMsg: "Content-Encoding"},
		{name: "text", body: []byte("x"), headers: map[string]string{"Content-Type": "text/plain"}, wantCode: 415, wantType: otlpProtobuf, wantMsg: "Content-Type"},
		{name: "GET", method: http.MethodGet, wantCode: 405, wantType: otlpProtobuf, wantMsg: "POST"},
		{name: "bad tenant", body: marshalOTLP(t, cumulative, false), headers: map[string]string{"THANOS-TENANT": "../etc"}, wantCode: 400, wantType: otlpProtobuf},
		{name: "not ready", body: marshalOTLP(t, cumulative, false), notReady: true, wantCode: 503, wantType: otlpProtobuf, retryAfter: true},
		{name: "quorum failed", body: marshalOTLP(t, cumulative, false), storageErr: errorf(ClassUnavailable, "no quorum"), wantCode: 503, wantType: otlpProtobuf, wantMsg: "no quorum", wantWrites: 1, wantSeries: 3, retryAfter: true},
		{name: "storage failure is retryable", body: marshalOTLP(t, cumulative, false), storageErr: io.ErrUnexpectedEOF, wantCode: 503, wantType: otlpProtobuf, wantWrites: 1, wantSeries: 3, retryAfter: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &extrasStorage{}
			st.err, st.stats = tc.storageErr, tc.stats
			srv, _ := newOTLPServer(t, testOTLPConfig(), st, func() bool { return !tc.notReady })
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, srv.URL+OTLPPath, bytes.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-protobuf")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.wantCode, resp.StatusCode, "body: %q", body)
			require.Equal(t, tc.wantType, resp.Header.Get("Content-Type"))
			require.Equal(t, tc.retryAfter, resp.Header.Get("Retry-After") != "")
			require.Equal(t, tc.wantWrites, st.calls)
			if tc.wantWrites > 0 {
				require.Len(t, st.series[0], tc.wantSeries)
			}
			if tc.wantCode != 200 {
				var s spb.Status
				if tc.wantType == otlpJSON {
					require.NoError(t, protojson.Unmarshal(body, &s), "error answers are a google.rpc.Status")
				} else {
					require.NoError(t, proto.Unmarshal(body, &s), "error answers are a google.rpc.Status")
				}
				require.Contains(t, s.Message, tc.wantMsg)
				return
			}
			r := pmetricotlp.NewExportResponse()
			if tc.wantType == otlpJSON {
				require.NoError(t, r.UnmarshalJSON(body))
			} else {
				require.NoError(t, r.UnmarshalProto(body))
			}
			require.Equal(t, tc.wantRejects, r.PartialSuccess().RejectedDataPoints())
			require.Contains(t, r.PartialSuccess().ErrorMessage(), tc.wantMsg)
			if tc.wantMsg == "" {
				require.Empty(t, r.PartialSuccess().ErrorMessage())
			}
		})
	}
}

// otlpRequest is one resource (service.name only: no target_info) with a gauge (always kept) and a
// sum of two points of the given temporality on two series.
func otlpRequest(now time.Time, temporality pmetric.AggregationTemporality) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "api")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	g := ms.AppendEmpty()
	g.SetName("queue.depth")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.SetDoubleValue(7)
	s := ms.AppendEmpty()
	s.SetName("jobs.done")
	sum := s.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(temporality)
	for i, q := range []string{"a", "b"} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
		dp.SetIntValue(int64(10 + i))
		dp.Attributes().PutStr("queue", q)
	}
	return md
}

func marshalOTLP(t testing.TB, md pmetric.Metrics, json bool) []byte {
	t.Helper()
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	var b []byte
	var err error
	if json {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	require.NoError(t, err)
	return b
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// TestOTLPAppenderGathersSeries: points of one label set become one series in their order, with the
// start timestamps in the points' order (samples, then histograms) and the first metadata.
func TestOTLPAppenderGathersSeries(t *testing.T) {
	st := &extrasStorage{}
	srv, _ := newOTLPServer(t, testOTLPConfig(), st, alwaysReady)
	now := time.Now().Truncate(time.Second)
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	s := ms.AppendEmpty()
	s.SetName("events")
	sum := s.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for i := range 3 {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Hour)))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i-3) * time.Second)))
		dp.SetIntValue(int64(i))
	}
	resp, err := http.Post(srv.URL+OTLPPath, otlpProtobuf, bytes.NewReader(marshalOTLP(t, md, false)))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, 200, resp.StatusCode)
	got := st.stored(t)
	keys := slices.Collect(mapKeys(got))
	sort.Strings(keys)
	require.Equal(t, []string{`{__name__="events_total"}`}, keys, "no resource: no target_info, no job")
	ev := got[`{__name__="events_total"}`]
	require.Equal(t, []prompb.Sample{{Value: 0, Timestamp: now.Add(-3 * time.Second).UnixMilli()}, {Value: 1, Timestamp: now.Add(-2 * time.Second).UnixMilli()}, {Value: 2, Timestamp: now.Add(-time.Second).UnixMilli()}}, ev.ts.Samples)
	start := now.Add(-time.Hour).UnixMilli()
	require.Equal(t, []int64{start, start, start}, ev.extra.Starts)
	require.Equal(t, model.MetricTypeCounter, ev.extra.Metadata.Type)
}

func TestOTLPConfigValidate(t *testing.T) {
	c := testOTLPConfig()
	require.NoError(t, c.Validate())
	c.TranslationStrategy = "Escape"
	require.ErrorContains(t, c.Validate(), "--receive.otlp-translation-strategy")
	c = testOTLPConfig()
	c.PromoteResourceAttributes = []string{" "}
	require.ErrorContains(t, c.Validate(), "--receive.otlp-promote-resource-attributes")
}

// TestOTLPTranslationStrategy: UTF-8 names are kept with NoUTF8EscapingWithSuffixes and escaped by
// default.
func TestOTLPTranslationStrategy(t *testing.T) {
	for strategy, want := range map[string]string{
		"UnderscoreEscapingWithSuffixes":    `{__name__="queue_depth", job="api"}`,
		"NoUTF8EscapingWithSuffixes":        `{__name__="queue.depth", job="api"}`,
		"UnderscoreEscapingWithoutSuffixes": `{__name__="queue_depth", job="api"}`,
	} {
		t.Run(strategy, func(t *testing.T) {
			st := &extrasStorage{}
			cfg := testOTLPConfig()
			cfg.TranslationStrategy = strategy
			srv, _ := newOTLPServer(t, cfg, st, alwaysReady)
			resp, err := http.Post(srv.URL+OTLPPath, otlpProtobuf, bytes.NewReader(marshalOTLP(t, otlpRequest(time.Now(), pmetric.AggregationTemporalityCumulative), false)))
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Contains(t, st.stored(t), want)
			if strings.HasPrefix(strategy, "NoUTF8") {
				require.Contains(t, st.stored(t), `{__name__="jobs.done_total", job="api", queue="a"}`)
			}
		})
	}
}

// TestOTLPHistogramsAsNHCB: with ConvertHistogramsToNHCB an explicit histogram is one series of
// native histograms with custom buckets (schema -53, the bounds in custom_values).
func TestOTLPHistogramsAsNHCB(t *testing.T) {
	st := &extrasStorage{}
	cfg := testOTLPConfig()
	cfg.ConvertHistogramsToNHCB = true
	srv, _ := newOTLPServer(t, cfg, st, alwaysReady)
	mp := sdkMeterProvider(t, srv.URL+OTLPPath, "team-a")
	recordSDKMetrics(t, mp)
	require.NoError(t, mp.ForceFlush(context.Background()))
	got := st.stored(t)
	nhcb, ok := got[`{__name__="request_duration_seconds", instance="pod-1", job="shop/checkout", k8s_cluster_name="eu1"}`]
	require.True(t, ok, "got %v", slices.Sorted(mapKeys(got)))
	require.Len(t, nhcb.ts.Histograms, 1)
	h := nhcb.ts.Histograms[0]
	require.Equal(t, int32(-53), h.Schema)
	require.Equal(t, []float64{0.1, 0.5, 1}, h.CustomValues)
	require.Equal(t, uint64(2), h.GetCountInt())
	for name := range got {
		require.NotContains(t, name, "request_duration_seconds_bucket")
	}
}

// TestOTLPTargetInfoSpanBounded: a resource whose two points are decades apart would make the
// translator write a target_info point every 2.5 minutes between them (millions from a tiny body);
// the handler writes the points, at most maxTargetInfoPerSeries target_info points, and says so.
func TestOTLPTargetInfoSpanBounded(t *testing.T) {
	st := &extrasStorage{}
	srv, _ := newOTLPServer(t, testOTLPConfig(), st, alwaysReady)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "api")
	rm.Resource().Attributes().PutStr("host.name", "h1")
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("up")
	dps := g.SetEmptyGauge().DataPoints()
	for _, ts := range []time.Time{time.Unix(1, 0), time.Now()} {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.SetDoubleValue(1)
	}
	resp, err := http.Post(srv.URL+OTLPPath, otlpProtobuf, bytes.NewReader(marshalOTLP(t, md, false)))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r := pmetricotlp.NewExportResponse()
	require.NoError(t, r.UnmarshalProto(body))
	require.Contains(t, r.PartialSuccess().ErrorMessage(), "span too long a time")
	got := st.stored(t)
	require.Len(t, got[`{__name__="up", job="api"}`].ts.Samples, 2, "the resource's own points are written")
	ti := got[`{__name__="target_info", host_name="h1", job="api"}`]
	require.Len(t, ti.ts.Samples, maxTargetInfoPerSeries)
}

// TestOTLPTenantLimits: the tenant limits of remote write apply to the translated series: a request
// over the series limit is refused whole (413), over the ingestion rate 429 with Retry-After (the
// second one: the first empties the bucket), series
// over a shape limit are rejected as a partial success; the default tenant is not limited.
func TestOTLPTenantLimits(t *testing.T) {
	const file = `
write:
  tenants:
    small:
      request:
        series_limit: 2
    slow:
      ingestion_rate_limit: 0.01
      ingestion_burst_size: 1
    narrow:
      labels_per_series_limit: 2
`
	h, st, reg, _ := newTenantLimitedHandler(t, file)
	o, err := NewOTLPHandler(h, testOTLPConfig(), reg)
	require.NoError(t, err)
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	body := marshalOTLP(t, otlpRequest(time.Now(), pmetric.AggregationTemporalityCumulative), false) // 3 series
	for _, tc := range []struct {
		tenant     string
		code       int
		retryAfter bool
		rejected   int64
		msg        string
	}{
		{"small", http.StatusRequestEntityTooLarge, false, 0, "series_limit"},
		{"slow", http.StatusOK, false, 0, ""}, // a request larger than the burst takes the whole bucket
		{"slow", http.StatusTooManyRequests, true, 0, "ingestion_rate_limit"},
		{"narrow", http.StatusOK, false, 2, "labels"},
		{"anyone", http.StatusOK, false, 0, ""},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			calls := st.calls
			req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", otlpProtobuf)
			req.Header.Set("THANOS-TENANT", tc.tenant)
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, tc.code, resp.StatusCode, "%q", b)
			require.Equal(t, tc.retryAfter, resp.Header.Get("Retry-After") != "")
			if tc.code != http.StatusOK {
				require.Equal(t, calls, st.calls, "nothing written")
				var s spb.Status
				require.NoError(t, proto.Unmarshal(b, &s))
				require.Contains(t, s.Message, tc.msg)
				return
			}
			require.Equal(t, calls+1, st.calls)
			r := pmetricotlp.NewExportResponse()
			require.NoError(t, r.UnmarshalProto(b))
			require.Equal(t, tc.rejected, r.PartialSuccess().RejectedDataPoints())
			require.Contains(t, r.PartialSuccess().ErrorMessage(), tc.msg)
			require.Len(t, st.series[len(st.series)-1], 3-int(tc.rejected))
		})
	}
}

// TestOTLPSplitTenants: with --receive.split-tenant-label-name a data point attribute names the
// tenant of its series, as a label does in remote write; each tenant's batch keeps its extras.
func TestOTLPSplitTenants(t *testing.T) {
	st := &extrasStorage{}
	cfg := testConfig()
	cfg.SplitTenantLabel = "queue"
	h, reg := newTestHandler(t, cfg, st, alwaysReady)
	o, err := NewOTLPHandler(h, testOTLPConfig(), reg)
	require.NoError(t, err)
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	// jobs.done has queue="a" and queue="b": tenants a and b; queue.depth has none: the header's.
	resp, err := http.Post(srv.URL, otlpProtobuf, bytes.NewReader(marshalOTLP(t, otlpRequest(time.Now(), pmetric.AggregationTemporalityCumulative), false)))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.ElementsMatch(t, []string{"default-tenant", "a", "b"}, st.tenants)
	for i, tenantID := range st.tenants {
		require.Len(t, st.series[i], 1, tenantID)
		name := st.series[i][0].Labels[0].Value
		if tenantID == "default-tenant" {
			require.Equal(t, "queue_depth", name)
			continue
		}
		require.Equal(t, "jobs_done_total", name)
		require.Equal(t, `{__name__="jobs_done_total", job="api"}`, labelsString(st.series[i][0].Labels), "stored without the tenant label")
		require.Equal(t, model.MetricTypeCounter, st.extras[i][0].Metadata.Type)
		require.Len(t, st.extras[i][0].Starts, 1)
	}
}
