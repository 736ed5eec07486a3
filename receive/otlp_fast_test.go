package receive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	otelmetric "go.opentelemetry.io/otel/metric"

	"github.com/weir-metrics/weir/write"
)

// recordingStorage keeps every batch as text (samples by their bits, so NaNs compare), for comparing
// what two handlers stored.
type recordingStorage struct {
	mu      sync.Mutex
	batches []string
}

func (s *recordingStorage) Write(_ context.Context, b Batch) (write.Stats, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "tenant %s: %d series, %d extras\n", b.Tenant, len(b.Series), len(b.Extras))
	for i := range b.Series {
		ts := &b.Series[i]
		pb, err := ts.Marshal()
		if err != nil {
			return write.Stats{}, err
		}
		fmt.Fprintf(&buf, "%s %x\n", labelsString(ts.Labels), pb)
		if i < len(b.Extras) {
			fmt.Fprintf(&buf, "  extra %+v starts=%v nil=%v\n", b.Extras[i].Metadata, b.Extras[i].Starts, b.Extras[i].Starts == nil)
		}
	}
	s.mu.Lock()
	s.batches = append(s.batches, buf.String())
	s.mu.Unlock()
	return write.Stats{}, nil
}

func (s *recordingStorage) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.batches
	s.batches = nil
	return b
}

// otlpPair is two OTLP handlers with one configuration: fast with the fast path, slow without.
type otlpPair struct {
	fast, slow     *OTLPHandler
	fastSt, slowSt *recordingStorage
}

func newOTLPPair(tb testing.TB, cfg OTLPConfig) *otlpPair {
	p := &otlpPair{fastSt: &recordingStorage{}, slowSt: &recordingStorage{}}
	for _, side := range []struct {
		o  **OTLPHandler
		st *recordingStorage
	}{{&p.fast, p.fastSt}, {&p.slow, p.slowSt}} {
		h, err := NewHandler(testConfig(), side.st, nil, alwaysReady, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		require.NoError(tb, err)
		h.now = func() time.Time { return fuzzNow }
		o, err := NewOTLPHandler(h, cfg, prometheus.NewRegistry())
		require.NoError(tb, err)
		*side.o = o
	}
	require.NotNil(tb, p.fast.fast, "the configuration must allow the fast path")
	p.slow.fast = nil
	return p
}

// compare sends body to both handlers and requires the same answer and the same stored batches. It
// reports whether the fast path took the request.
func (p *otlpPair) compare(t *testing.T, body []byte, contentType string) bool {
	t.Helper()
	taken := testutil.ToFloat64(p.fast.metrics.fast.WithLabelValues("taken"))
	var codes [2]int
	var answers [2]string
	for i, o := range []*OTLPHandler{p.fast, p.slow} {
		r := httptest.NewRequest(http.MethodPost, OTLPPath, bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		o.ServeHTTP(w, r)
		codes[i], answers[i] = w.Code, w.Header().Get("Content-Type")+"\n"+w.Body.String()
	}
	fastTook := testutil.ToFloat64(p.fast.metrics.fast.WithLabelValues("taken")) > taken
	require.Equal(t, codes[1], codes[0], "status (fast path taken: %v)", fastTook)
	require.Equal(t, answers[1], answers[0], "answer (fast path taken: %v)", fastTook)
	require.Equal(t, p.slowSt.take(), p.fastSt.take(), "stored batches (fast path taken: %v)", fastTook)
	return fastTook
}

// otlpFastConfigs are the configurations the differential tests run: target_info on and off.
func otlpFastConfigs() []OTLPConfig {
	off := testOTLPConfig()
	off.EnableTargetInfo = false
	off.PromoteResourceAttributes = []string{"k8s.cluster.name", "cloud.region", "service.name"}
	return []OTLPConfig{testOTLPConfig(), off}
}

// FuzzOTLPFastMatches runs the fast path and the translator on the same body: whenever the fast path
// takes a request, answer and stored series must be those of the translator.
func FuzzOTLPFastMatches(f *testing.F) {
	for _, b := range otlpFuzzSeeds(f) {
		if len(b) == 0 || b[0] != '{' {
			f.Add(b, true)
		}
	}
	for _, b := range otlpFastSeeds(f) {
		f.Add(b, true)
		f.Add(b, false)
	}
	cfgs := otlpFastConfigs()
	pairs := []*otlpPair{newOTLPPair(f, cfgs[0]), newOTLPPair(f, cfgs[1])}
	f.Fuzz(func(t *testing.T, body []byte, targetInfo bool) {
		p := pairs[1]
		if targetInfo {
			p = pairs[0]
		}
		p.compare(t, body, otlpProtobuf)
	})
}

// TestOTLPFastMatchesTranslator checks that the fast path takes the realistic requests (so that the
// differential fuzz test compares something) with the same result as the translator, and declines
// what it does not replicate.
func TestOTLPFastMatchesTranslator(t *testing.T) {
	for i, cfg := range otlpFastConfigs() {
		p := newOTLPPair(t, cfg)
		for j, body := range otlpFastSeeds(t) {
			require.True(t, p.compare(t, body, otlpProtobuf), "config %d: realistic request %d must take the fast path", i, j)
		}
		for j, md := range otlpFastDeclined() {
			took := p.compare(t, marshalOTLP(t, md, false), otlpProtobuf)
			// Without target_info, a resource's points may span any time.
			require.Equal(t, !cfg.EnableTargetInfo && j == len(otlpFastDeclined())-1, took, "config %d: request %d", i, j)
		}
		require.False(t, p.compare(t, marshalOTLP(t, otlpRealistic(fuzzNow), true), otlpJSON), "JSON takes the translator")
	}
}

func TestOTLPFastConfig(t *testing.T) {
	cfg := testOTLPConfig()
	require.NotNil(t, newOTLPFastConfig(cfg))
	cfg.ConvertHistogramsToNHCB = true
	require.Nil(t, newOTLPFastConfig(cfg))
	for _, s := range []string{"UnderscoreEscapingWithoutSuffixes", "NoUTF8EscapingWithSuffixes", "NoTranslation"} {
		cfg := testOTLPConfig()
		cfg.TranslationStrategy = s
		require.Nil(t, newOTLPFastConfig(cfg), s)
	}
}

// otlpFastSeeds are realistic protobuf requests the fast path takes.
func otlpFastSeeds(tb testing.TB) [][]byte {
	now := fuzzNow
	twice := otlpRealistic(now)
	otlpRealistic(now).ResourceMetrics().MoveAndAppendTo(twice.ResourceMetrics()) // target_info written once
	bench := benchOTLPMetrics(20)
	return [][]byte{
		marshalOTLP(tb, otlpRealistic(now), false),
		marshalOTLP(tb, twice, false),
		marshalOTLP(tb, otlpRequest(now, pmetric.AggregationTemporalityCumulative), false),
		marshalOTLP(tb, bench, false),
		marshalOTLP(tb, pmetric.NewMetrics(), false),
	}
}

// otlpRealistic is what an SDK sends: a resource with service and other attributes, a counter with
// int values and mixed attribute types, a gauge with a stale point, a histogram and a summary.
func otlpRealistic(now time.Time) pmetric.Metrics {
	ts := pcommon.NewTimestampFromTime(now)
	start := pcommon.NewTimestampFromTime(now.Add(-time.Hour))
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ra := rm.Resource().Attributes()
	ra.PutStr("service.name", "checkout")
	ra.PutStr("service.namespace", "shop")
	ra.PutStr("service.instance.id", "pod-1")
	ra.PutStr("k8s.cluster.name", "eu1")
	ra.PutStr("host.name", "h1")
	ra.PutInt("process.pid", 42)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("go.opentelemetry.io/otel")
	sm.Scope().SetVersion("1.0")
	ms := sm.Metrics()

	c := ms.AppendEmpty()
	c.SetName("http.server.requests")
	c.SetDescription("Requests served.")
	c.SetUnit("{request}")
	sum := c.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for i, code := range []int64{200, 500} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(ts)
		dp.SetIntValue(100 * int64(i+1))
		dp.Attributes().PutInt("http.response.status_code", code)
		dp.Attributes().PutBool("tls", i == 0)
		dp.Attributes().PutStr("http.route", "/cart")
		dp.Attributes().PutStr("empty", "")
	}
	g := ms.AppendEmpty()
	g.SetName("memory.used")
	g.SetUnit("By")
	gdps := g.SetEmptyGauge().DataPoints()
	gp := gdps.AppendEmpty()
	gp.SetTimestamp(ts)
	gp.SetDoubleValue(1.5e9)
	gp.Attributes().PutStr("job", "overridden")
	stale := gdps.AppendEmpty()
	stale.SetTimestamp(ts)
	stale.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	stale.Attributes().PutStr("state", "gone")
	u := ms.AppendEmpty()
	u.SetName("queue.size")
	us := u.SetEmptySum()
	us.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	up := us.DataPoints().AppendEmpty()
	up.SetTimestamp(ts - 90_000_000_000)
	up.SetDoubleValue(-3)

	h := ms.AppendEmpty()
	h.SetName("http.server.duration")
	h.SetUnit("s")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hist.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(start)
	hp.SetTimestamp(ts)
	hp.SetCount(6)
	hp.SetSum(2.5)
	hp.SetMin(0.01)
	hp.SetMax(2)
	hp.ExplicitBounds().FromRaw([]float64{0.05, 0.1, 0.25, 1})
	hp.BucketCounts().FromRaw([]uint64{1, 2, 0, 2, 1})
	hp.Attributes().PutStr("le", "attribute")
	hp2 := hist.DataPoints().AppendEmpty()
	hp2.SetTimestamp(ts)
	hp2.SetCount(1)
	hp2.ExplicitBounds().FromRaw([]float64{1})
	hp2.BucketCounts().FromRaw([]uint64{1})
	hp2.Attributes().PutStr("http.route", "/")

	s := ms.AppendEmpty()
	s.SetName("gc.pause")
	s.SetUnit("ms")
	sp := s.SetEmptySummary().DataPoints().AppendEmpty()
	sp.SetStartTimestamp(start)
	sp.SetTimestamp(ts)
	sp.SetCount(10)
	sp.SetSum(55)
	for _, q := range [][2]float64{{0.5, 4}, {0.99, 9.5}} {
		qv := sp.QuantileValues().AppendEmpty()
		qv.SetQuantile(q[0])
		qv.SetValue(q[1])
	}

	// A resource without service attributes: no job, instance or target_info.
	other := md.ResourceMetrics().AppendEmpty()
	other.Resource().Attributes().PutStr("cloud.region", "eu")
	og := other.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	og.SetName("up")
	op := og.SetEmptyGauge().DataPoints().AppendEmpty()
	op.SetTimestamp(ts)
	op.SetIntValue(1)
	return md
}

// otlpFastDeclined are requests the fast path leaves to the translator.
func otlpFastDeclined() []pmetric.Metrics {
	now := fuzzNow
	var out []pmetric.Metrics
	add := func(edit func(ms pmetric.MetricSlice, ra pcommon.Map)) {
		md := otlpRealistic(now)
		rm := md.ResourceMetrics().At(0)
		edit(rm.ScopeMetrics().At(0).Metrics(), rm.Resource().Attributes())
		out = append(out, md)
	}
	add(func(ms pmetric.MetricSlice, _ pcommon.Map) { // delta
		ms.At(0).Sum().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	})
	add(func(ms pmetric.MetricSlice, _ pcommon.Map) { // exemplar
		ms.At(0).Sum().DataPoints().At(0).Exemplars().AppendEmpty().SetDoubleValue(1)
	})
	add(func(ms pmetric.MetricSlice, _ pcommon.Map) { // exponential histogram
		e := ms.AppendEmpty()
		e.SetName("size")
		eh := e.SetEmptyExponentialHistogram()
		eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		eh.DataPoints().AppendEmpty().SetTimestamp(pcommon.NewTimestampFromTime(now))
	})
	add(func(ms pmetric.MetricSlice, _ pcommon.Map) { // colliding label names
		a := ms.At(1).Gauge().DataPoints().At(0).Attributes()
		a.PutStr("a.b", "1")
		a.PutStr("a_b", "2")
	})
	add(func(ms pmetric.MetricSlice, _ pcommon.Map) { // +Inf bound
		hp := ms.At(3).Histogram().DataPoints().At(1)
		hp.ExplicitBounds().FromRaw([]float64{1, math.Inf(1)})
		hp.BucketCounts().FromRaw([]uint64{1, 0, 0})
	})
	add(func(ms pmetric.MetricSlice, _ pcommon.Map) { // double attribute
		ms.At(1).Gauge().DataPoints().At(0).Attributes().PutDouble("ratio", 0.5)
	})
	add(func(ms pmetric.MetricSlice, _ pcommon.Map) { // no points
		ms.AppendEmpty().SetName("nothing")
		ms.At(ms.Len() - 1).SetEmptyGauge()
	})
	add(func(_ pmetric.MetricSlice, ra pcommon.Map) { // target_info span the appender bounds
		ra.PutStr("x", "y")
	})
	out[len(out)-1].ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(1).Gauge().DataPoints().At(0).SetTimestamp(1)
	return out
}

// TestOTLPFastSDKRequest checks the fast path takes what the OpenTelemetry Go SDK sends (counter,
// gauge, explicit histogram, up-down counter) with the translator's result.
func TestOTLPFastSDKRequest(t *testing.T) {
	body := otlpSDKBody(t)
	for _, cfg := range otlpFastConfigs() {
		p := newOTLPPair(t, cfg)
		require.True(t, p.compare(t, body, otlpProtobuf), "the SDK's request takes the fast path")
	}
}

// otlpSDKBody is the body the OpenTelemetry Go SDK's OTLP/HTTP exporter sends for a few instruments
// (its exponential histograms left out: they are the translator's).
func otlpSDKBody(t *testing.T) []byte {
	t.Helper()
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", otlpProtobuf)
	}))
	t.Cleanup(srv.Close)
	mp := sdkMeterProvider(t, srv.URL+OTLPPath, "team-a")
	ctx := context.Background()
	m := mp.Meter("weir-test", otelmetric.WithInstrumentationVersion("1.2.3"))
	c, err := m.Int64Counter("http.requests", otelmetric.WithUnit("{request}"), otelmetric.WithDescription("Requests served."))
	require.NoError(t, err)
	c.Add(ctx, 3, otelmetric.WithAttributes(attribute.String("code", "200"), attribute.Bool("tls", true), attribute.Int("shard", 4)))
	g, err := m.Float64Gauge("temperature", otelmetric.WithUnit("Cel"))
	require.NoError(t, err)
	g.Record(ctx, 21.5, otelmetric.WithAttributes(attribute.String("room", "a")))
	h, err := m.Float64Histogram("request.duration", otelmetric.WithUnit("s"))
	require.NoError(t, err)
	h.Record(ctx, 0.2)
	h.Record(ctx, 0.7)
	u, err := m.Int64UpDownCounter("queue.items")
	require.NoError(t, err)
	u.Add(ctx, -2)
	require.NoError(t, mp.ForceFlush(ctx))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bodies, 1)
	return bodies[0]
}

// FuzzOTLPFastStructured builds well-formed requests from fuzzed names, attributes, values, flags and
// times, so that the fast path takes most of them, and compares it with the translator as
// FuzzOTLPFastMatches does.
func FuzzOTLPFastStructured(f *testing.F) {
	f.Add("http.requests", "{request}", "Requests.", "code", "200", "service.name", "api", uint8(1), uint64(fuzzNow.UnixNano()), uint64(0), 1.5, uint32(0), 0.5, true)
	f.Add("latency", "ms", "", "le", "x", "k8s.cluster.name", "", uint8(2), uint64(fuzzNow.UnixNano()), uint64(1), math.Inf(-1), uint32(1), math.NaN(), false)
	f.Add("rpc", "", "", "a.b", "1", "a_b", "2", uint8(3), uint64(0), uint64(fuzzNow.UnixNano()), math.Copysign(0, -1), uint32(3), 1e300, true)
	f.Add("target_info", "1", "", "job", "j", "service.instance.id", "i", uint8(0), uint64(fuzzNow.UnixNano()), uint64(fuzzNow.UnixNano()), 0.0, uint32(0), 0.0, true)
	cfgs := otlpFastConfigs()
	pairs := []*otlpPair{newOTLPPair(f, cfgs[0]), newOTLPPair(f, cfgs[1])}
	f.Fuzz(func(t *testing.T, name, unit, desc, k1, v1, k2, v2 string, kind uint8, ts, start uint64, v float64, flags uint32, bound float64, targetInfo bool) {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr(k2, v2)
		rm.Resource().Attributes().PutStr("host.name", v1)
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName(name)
		m.SetUnit(unit)
		m.SetDescription(desc)
		var attrs pcommon.Map
		var dp interface {
			SetTimestamp(pcommon.Timestamp)
			SetStartTimestamp(pcommon.Timestamp)
		}
		switch kind % 4 {
		case 0, 1:
			var p pmetric.NumberDataPoint
			if kind%4 == 0 {
				p = m.SetEmptyGauge().DataPoints().AppendEmpty()
			} else {
				s := m.SetEmptySum()
				s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
				s.SetIsMonotonic(kind&4 != 0)
				p = s.DataPoints().AppendEmpty()
			}
			p.SetDoubleValue(v)
			p.SetFlags(pmetric.DataPointFlags(flags))
			attrs, dp = p.Attributes(), p
		case 2:
			h := m.SetEmptyHistogram()
			h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			p := h.DataPoints().AppendEmpty()
			p.SetCount(uint64(flags))
			if kind&4 != 0 {
				p.SetSum(v)
			}
			p.ExplicitBounds().FromRaw([]float64{bound, v})
			p.BucketCounts().FromRaw([]uint64{uint64(kind), 1, 2}[:1+int(kind>>4)%3])
			p.SetFlags(pmetric.DataPointFlags(flags))
			attrs, dp = p.Attributes(), p
		case 3:
			p := m.SetEmptySummary().DataPoints().AppendEmpty()
			p.SetSum(v)
			p.SetCount(uint64(flags))
			q := p.QuantileValues().AppendEmpty()
			q.SetQuantile(bound)
			q.SetValue(v)
			p.SetFlags(pmetric.DataPointFlags(flags))
			attrs, dp = p.Attributes(), p
		}
		attrs.PutStr(k1, v1)
		attrs.PutStr(k2, v2)
		dp.SetTimestamp(pcommon.Timestamp(ts))
		dp.SetStartTimestamp(pcommon.Timestamp(start))
		p := pairs[1]
		if targetInfo {
			p = pairs[0]
		}
		p.compare(t, marshalOTLP(t, md, false), otlpProtobuf)
	})
}

// TestOTLPFastLabelNamesOutliveBody checks the label-name cache, kept across requests, holds no
// string of a body, whose buffer the next request reuses.
func TestOTLPFastLabelNamesOutliveBody(t *testing.T) {
	cfg := newOTLPFastConfig(testOTLPConfig())
	body := func() []byte {
		return marshalOTLP(t, otlpRequest(fuzzNow, pmetric.AggregationTemporalityCumulative), false)
	}
	first := body()
	app := getOTLPAppender()
	require.True(t, otlpFastTranslate(context.Background(), cfg, first, app))
	app.release()
	for i := range first {
		first[i] = 'x'
	}
	app = getOTLPAppender()
	defer app.release()
	require.True(t, otlpFastTranslate(context.Background(), cfg, body(), app))
	series, _ := app.series()
	var names []string
	for _, ts := range series {
		names = append(names, labelsString(ts.Labels))
	}
	require.Contains(t, names, `{__name__="jobs_done_total", job="api", queue="a"}`)
}
