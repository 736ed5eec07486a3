package receive

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/write"
)

// lbls builds a label list from name, value pairs, in the order given (not sorted).
func lbls(nv ...string) []prompb.Label {
	if len(nv)%2 != 0 {
		panic("lbls: odd number of arguments")
	}
	ls := make([]prompb.Label, 0, len(nv)/2)
	for i := 0; i < len(nv); i += 2 {
		ls = append(ls, prompb.Label{Name: nv[i], Value: nv[i+1]})
	}
	return ls
}

// samples builds float samples at the given timestamps, with value = timestamp/1000.
func samples(ts ...int64) []prompb.Sample {
	out := make([]prompb.Sample, 0, len(ts))
	for _, t := range ts {
		out = append(out, prompb.Sample{Timestamp: t, Value: float64(t) / 1000})
	}
	return out
}

// histogramsAt builds minimal integer histograms at the given timestamps.
func histogramsAt(ts ...int64) []prompb.Histogram {
	out := make([]prompb.Histogram, 0, len(ts))
	for _, t := range ts {
		out = append(out, prompb.Histogram{
			Count:     &prompb.Histogram_CountInt{CountInt: 1},
			ZeroCount: &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1},
			Timestamp: t,
		})
	}
	return out
}

// marshalWR returns the uncompressed protobuf of wr.
func marshalWR(tb testing.TB, wr *prompb.WriteRequest) []byte {
	tb.Helper()
	raw, err := wr.Marshal()
	require.NoError(tb, err)
	return raw
}

// encodeWR returns the block-snappy protobuf of wr, as a Remote Write 1.0 sender sends it.
func encodeWR(tb testing.TB, wr *prompb.WriteRequest) []byte {
	tb.Helper()
	return snappy.Encode(nil, marshalWR(tb, wr))
}

// rw1Headers are the headers a Remote Write 1.0 sender sets.
func rw1Headers() http.Header {
	return http.Header{
		"Content-Encoding":                  {"snappy"},
		"Content-Type":                      {"application/x-protobuf"},
		"X-Prometheus-Remote-Write-Version": {"0.1.0"},
	}
}

// newPost returns a POST /api/v1/receive request with body and the headers given (nil: RW 1.0 headers).
func newPost(body []byte, h http.Header) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/receive", bytes.NewReader(body))
	if h == nil {
		h = rw1Headers()
	}
	for k, vs := range h {
		r.Header[k] = slices.Clone(vs)
	}
	return r
}

// cloneSeries deep-copies series: what the handler passes to storage lives in pooled memory that is
// reused once ServeHTTP returns, label strings included (they alias the decoded request, see Request).
func cloneSeries(in []prompb.TimeSeries) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, len(in))
	for i, ts := range in {
		out[i] = prompb.TimeSeries{
			Labels:     cloneLabels(ts.Labels),
			Samples:    slices.Clone(ts.Samples),
			Exemplars:  slices.Clone(ts.Exemplars),
			Histograms: slices.Clone(ts.Histograms),
		}
		for j := range out[i].Exemplars {
			out[i].Exemplars[j].Labels = cloneLabels(out[i].Exemplars[j].Labels)
		}
	}
	return out
}

// cloneLabels copies ls and its strings.
func cloneLabels(ls []prompb.Label) []prompb.Label {
	out := slices.Clone(ls)
	for i := range out {
		out[i].Name, out[i].Value = strings.Clone(out[i].Name), strings.Clone(out[i].Value)
	}
	return out
}

// fakeStorage records what it was asked to write and answers with configured stats and error.
type fakeStorage struct {
	stats write.Stats
	err   error

	mu      sync.Mutex
	calls   int
	tenants []string
	series  [][]prompb.TimeSeries
	extras  [][]write.SeriesExtra
	ctxErrs []error
}

func (s *fakeStorage) Write(ctx context.Context, b Batch) (write.Stats, error) {
	tenantID, series := b.Tenant, b.Series
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.tenants = append(s.tenants, tenantID)
	s.series = append(s.series, cloneSeries(series))
	if b.Extras != nil {
		ex := make([]write.SeriesExtra, len(b.Extras))
		for i, e := range b.Extras {
			ex[i] = write.SeriesExtra{Metadata: metadata.Metadata{Type: e.Metadata.Type, Help: strings.Clone(e.Metadata.Help), Unit: strings.Clone(e.Metadata.Unit)}, Starts: slices.Clone(e.Starts)}
		}
		s.extras = append(s.extras, ex)
	}
	s.ctxErrs = append(s.ctxErrs, ctx.Err())
	// Hand out a copy: the handler rewrites the Rejected entries in place.
	stats := s.stats
	stats.Rejected = slices.Clone(s.stats.Rejected)
	return stats, s.err
}

// testConfig is a realistic handler configuration.
func testConfig() HandlerConfig {
	return HandlerConfig{
		TenantHeader:  tenant.DefaultHeader,
		DefaultTenant: tenant.DefaultID,
		Decode:        DecodeLimits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: 8 << 20},
		Limits: Limits{
			MaxSeriesPerRequest: 100,
			MaxLabelsPerSeries:  30,
			MaxLabelNameLength:  128,
			MaxLabelValueLength: 1024,
		},
	}
}

// newTestHandler builds a handler over storage with a fresh registry and a discarding logger.
func newTestHandler(tb testing.TB, cfg HandlerConfig, storage Storage, ready func() bool) (*Handler, *prometheus.Registry) {
	tb.Helper()
	return newLimitedHandler(tb, cfg, storage, nil, ready)
}

// newLimitedHandler is newTestHandler with the write slots of lim.
func newLimitedHandler(tb testing.TB, cfg HandlerConfig, storage Storage, lim *Limiter, ready func() bool) (*Handler, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	h, err := NewHandler(cfg, storage, lim, ready, slog.New(slog.DiscardHandler), reg)
	require.NoError(tb, err)
	return h, reg
}

func alwaysReady() bool { return true }
