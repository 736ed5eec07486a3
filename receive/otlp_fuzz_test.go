package receive

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/weir-metrics/weir/write"
)

// otlpFuzzSeeds are requests of every metric type, in both encodings. The same inputs are checked in
// under testdata/fuzz/FuzzOTLP, so that `go test` runs them without -fuzz too.
func otlpFuzzSeeds(tb testing.TB) [][]byte {
	now := fuzzNow
	md := otlpRequest(now, pmetric.AggregationTemporalityCumulative)
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	rm := md.ResourceMetrics().At(0).Resource().Attributes()
	rm.PutStr("service.instance.id", "i-1")
	rm.PutStr("cloud.region", "eu")

	h := ms.AppendEmpty()
	h.SetName("latency")
	h.SetUnit("ms")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hist.DataPoints().AppendEmpty()
	hp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	hp.SetCount(3)
	hp.SetSum(12)
	hp.ExplicitBounds().FromRaw([]float64{1, 5, 10})
	hp.BucketCounts().FromRaw([]uint64{1, 1, 1, 0})
	ex := hp.Exemplars().AppendEmpty()
	ex.SetDoubleValue(4)
	ex.SetTimestamp(pcommon.NewTimestampFromTime(now))
	ex.SetTraceID(pcommon.TraceID{1, 2, 3})

	e := ms.AppendEmpty()
	e.SetName("size")
	eh := e.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ep := eh.DataPoints().AppendEmpty()
	ep.SetTimestamp(pcommon.NewTimestampFromTime(now))
	ep.SetScale(2)
	ep.SetCount(4)
	ep.SetZeroCount(1)
	ep.Positive().SetOffset(-3)
	ep.Positive().BucketCounts().FromRaw([]uint64{1, 0, 2})

	s := ms.AppendEmpty()
	s.SetName("rpc")
	sp := s.SetEmptySummary().DataPoints().AppendEmpty()
	sp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	sp.SetCount(2)
	sp.SetSum(3)
	q := sp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(1.5)

	// A resource whose points are decades apart: target_info every 2.5 minutes between them unless
	// bounded (otlp_appender.go).
	span := pmetric.NewMetrics()
	srm := span.ResourceMetrics().AppendEmpty()
	srm.Resource().Attributes().PutStr("service.name", "api")
	srm.Resource().Attributes().PutStr("host.name", "h1")
	sdps := srm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptyGauge().DataPoints()
	for _, ts := range []time.Time{time.Unix(1, 0), now} {
		sdps.AppendEmpty().SetTimestamp(pcommon.NewTimestampFromTime(ts))
	}

	delta := otlpRequest(now, pmetric.AggregationTemporalityDelta)
	return [][]byte{
		marshalOTLP(tb, md, false),
		marshalOTLP(tb, md, true),
		marshalOTLP(tb, delta, false),
		marshalOTLP(tb, pmetric.NewMetrics(), false),
		marshalOTLP(tb, span, false),
	}
}

// FuzzOTLP sends hostile bodies through the whole OTLP handler (decode, translation, validation, the
// answer): it must answer 200, 400 or 413 — never crash, never a 5xx — and a 200 must be a valid
// ExportMetricsServiceResponse, every written series with its extra and start timestamps in line
// with its points.
func FuzzOTLP(f *testing.F) {
	for _, b := range otlpFuzzSeeds(f) {
		f.Add(b, len(b) > 0 && b[0] == '{')
	}
	st := &fuzzOTLPStorage{}
	h, err := NewHandler(testConfig(), st, nil, alwaysReady, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(f, err)
	h.now = func() time.Time { return fuzzNow }
	o, err := NewOTLPHandler(h, testOTLPConfig(), prometheus.NewRegistry())
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		r := httptest.NewRequest(http.MethodPost, OTLPPath, bytes.NewReader(body))
		f := otlpFormatProtobuf
		if json {
			f = otlpFormatJSON
		}
		r.Header.Set("Content-Type", f.contentType())
		w := httptest.NewRecorder()
		o.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
			resp := pmetricotlp.NewExportResponse()
			if json {
				require.NoError(t, resp.UnmarshalJSON(w.Body.Bytes()))
			} else {
				require.NoError(t, resp.UnmarshalProto(w.Body.Bytes()))
			}
			require.GreaterOrEqual(t, resp.PartialSuccess().RejectedDataPoints(), int64(0))
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for a hostile body: %s", w.Code, w.Body.String())
		}
	})
}

// fuzzOTLPStorage checks the Batch invariants the ring relies on and writes nothing; a broken one
// is an internal error, which fails the fuzz target (503).
type fuzzOTLPStorage struct{}

func (fuzzOTLPStorage) Write(_ context.Context, b Batch) (write.Stats, error) {
	if len(b.Extras) != len(b.Series) {
		return write.Stats{}, errorf(ClassInternal, "%d extras for %d series", len(b.Extras), len(b.Series))
	}
	for i, ts := range b.Series {
		if s := b.Extras[i].Starts; s != nil && len(s) != len(ts.Samples)+len(ts.Histograms) {
			return write.Stats{}, errorf(ClassInternal, "series %d: %d starts for %d points", i, len(s), len(ts.Samples)+len(ts.Histograms))
		}
		if len(ts.Labels) == 0 {
			return write.Stats{}, errorf(ClassInternal, "series %d without labels passed validation", i)
		}
	}
	return write.Stats{}, nil
}
