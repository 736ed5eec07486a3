package receive

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/weir-metrics/weir/tenant"
)

// benchOTLPMetrics is benchWriteRequest as OTLP: a gauge per metric name, a data point per series
// with its other labels as attributes, one resource without attributes (so no target_info, no job).
// Translated, it is the same 2,000 series of 10 labels.
func benchOTLPMetrics(series int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	byName := map[string]pmetric.NumberDataPointSlice{}
	for _, ts := range benchWriteRequest(series).Timeseries {
		var name string
		for _, l := range ts.Labels {
			if l.Name == model.MetricNameLabel {
				name = l.Value
			}
		}
		dps, ok := byName[name]
		if !ok {
			m := ms.AppendEmpty()
			m.SetName(name)
			dps = m.SetEmptyGauge().DataPoints()
			byName[name] = dps
		}
		dp := dps.AppendEmpty()
		for _, l := range ts.Labels {
			if l.Name != model.MetricNameLabel {
				dp.Attributes().PutStr(l.Name, l.Value)
			}
		}
		dp.SetTimestamp(pcommon.NewTimestampFromTime(time.UnixMilli(ts.Samples[0].Timestamp)))
		dp.SetDoubleValue(ts.Samples[0].Value)
	}
	return md
}

// BenchmarkOTLPHandler: the whole OTLP request path in front of storage (headers, tenant, read,
// gunzip, unmarshal, translation, validation, answer) for the series of BenchmarkHandler; compare
// their cpu-ns/sample. MB/s is of the body as received.
func BenchmarkOTLPHandler(b *testing.B) {
	md := benchOTLPMetrics(benchSeries)
	for _, enc := range []struct {
		name         string
		json, zipped bool
	}{{"protobuf", false, false}, {"protobuf+gzip", false, true}, {"json", true, false}} {
		b.Run("series="+strconv.Itoa(benchSeries)+"/encoding="+enc.name, func(b *testing.B) {
			cfg := testConfig()
			cfg.Decode = DecodeLimits{MaxBodyBytes: 16 << 20, MaxDecodedBytes: 64 << 20}
			cfg.Limits = benchLimits
			h, err := NewHandler(cfg, nopStorage{}, nil, alwaysReady, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.NoError(b, err)
			h.now = func() time.Time { return benchNow }
			o, err := NewOTLPHandler(h, testOTLPConfig(), prometheus.NewRegistry())
			require.NoError(b, err)

			body := marshalOTLP(b, md, enc.json)
			r := newPost(nil, http.Header{})
			r.URL.Path = OTLPPath
			r.Header.Set("Content-Type", otlpProtobuf)
			if enc.json {
				r.Header.Set("Content-Type", otlpJSON)
			}
			if enc.zipped {
				body = gzipBytes(b, body)
				r.Header.Set("Content-Encoding", "gzip")
			}
			r.Header.Set(tenant.DefaultHeader, "team-a")
			rb := &rewindBody{}
			r.Body = rb
			r.ContentLength = int64(len(body))
			w := &discardResponse{header: http.Header{}}
			b.SetBytes(int64(len(body)))
			loop(b, benchSeries, func() error {
				rb.Reset(body)
				w.code = 0
				o.ServeHTTP(w, r)
				if w.code != http.StatusOK {
					return fmt.Errorf("status %d", w.code)
				}
				return nil
			})
			// The share of requests the fast path (otlp_fast.go) took; the rest took the translator.
			b.ReportMetric(testutil.ToFloat64(o.metrics.fast.WithLabelValues("taken"))/float64(b.N), "fast-share")
		})
	}
}
