package receive

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/limits"
	"github.com/weir-metrics/weir/tenant"
)

// limitsFile is the tenant limits of TestHandlerTenantLimits: tenant "small" has every router-side
// limit, the others the default (only a generous size limit).
const limitsFile = `
write:
  default:
    request:
      size_bytes_limit: 1000000
  tenants:
    small:
      request:
        size_bytes_limit: 300
        series_limit: 3
        samples_limit: 5
      ingestion_rate_limit: 4
      ingestion_burst_size: 4
      labels_per_series_limit: 3
      label_value_length_limit: 8
      native_histogram_buckets_limit: 2
`

func newTenantLimitedHandler(t *testing.T, file string) (*Handler, *fakeStorage, *prometheus.Registry, *atomic.Pointer[limits.Snapshot]) {
	t.Helper()
	snap, err := limits.Parse([]byte(file))
	require.NoError(t, err)
	var cur atomic.Pointer[limits.Snapshot]
	cur.Store(snap)
	st := &fakeStorage{}
	reg := prometheus.NewRegistry()
	h, err := NewHandler(testConfig(), st, nil, alwaysReady, slog.New(slog.DiscardHandler), reg,
		WithTenantLimits(cur.Load, limits.NewRateLimiter(func(string) int { return 1 })))
	require.NoError(t, err)
	return h, st, reg, &cur
}

func postAs(h http.Handler, tenantID string, wr *prompb.WriteRequest, tb testing.TB) *httptest.ResponseRecorder {
	r := newPost(encodeWR(tb, wr), nil)
	r.Header.Set(tenant.DefaultHeader, tenantID)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// seriesWR is n series of one sample each, named m0…m(n-1).
func seriesWR(n int) *prompb.WriteRequest {
	wr := &prompb.WriteRequest{}
	for i := range n {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: lbls("__name__", fmt.Sprintf("m%d", i)), Samples: samples(1000)})
	}
	return wr
}

// TestHandlerTenantLimits: each router-side limit of a tenant gets the answer of the status table
// (doc.go), is counted by tenant and limit, and leaves other tenants alone.
func TestHandlerTenantLimits(t *testing.T) {
	h, st, reg, _ := newTenantLimitedHandler(t, limitsFile)

	// request.series_limit: 413, nothing written.
	w := postAs(h, "small", seriesWR(4), t)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "tenant small: request has 4 series, over its request.series_limit of 3")
	// request.samples_limit: 413.
	wr := seriesWR(2)
	wr.Timeseries[0].Samples = samples(1, 2, 3, 4, 5)
	w = postAs(h, "small", wr, t)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "request.samples_limit of 5")
	// request.size_bytes_limit: 413 before the body is read.
	big := seriesWR(1)
	var incompressible strings.Builder
	for i := range 200 {
		fmt.Fprintf(&incompressible, "%x", uint32(i*2654435761))
	}
	big.Timeseries[0].Labels = lbls("__name__", incompressible.String())
	w = postAs(h, "small", big, t)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "tenant small: request.size_bytes_limit is 300 bytes")
	require.Zero(t, st.calls, "nothing over a request limit reaches storage")

	// The rate: 4 samples, then 429 with Retry-After (4 more samples at 4/s: one second).
	w = postAs(h, "small", seriesWR(3), t)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	w = postAs(h, "small", seriesWR(2), t)
	require.Equal(t, http.StatusTooManyRequests, w.Code, w.Body.String())
	require.Equal(t, "1", w.Header().Get("Retry-After"))
	require.Contains(t, w.Body.String(), "tenant small is over its ingestion_rate_limit of 4 samples/s")
	require.Equal(t, 1, st.calls)

	// Another tenant, same request sizes: not limited (the default has only a size limit).
	for range 5 {
		w = postAs(h, "other", seriesWR(4), t)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	}

	require.Equal(t, map[string]float64{
		"limit=ingestion_rate_limit,tenant=small":     1,
		"limit=request.samples_limit,tenant=small":    1,
		"limit=request.series_limit,tenant=small":     1,
		"limit=request.size_bytes_limit,tenant=small": 1,
	}, metricValues(t, reg, "weir_receive_limited_requests_total"))
	require.Equal(t, map[string]float64{
		"limit=ingestion_rate_limit,tenant=small":  2,
		"limit=request.samples_limit,tenant=small": 6,
		"limit=request.series_limit,tenant=small":  4,
	}, metricValues(t, reg, "weir_receive_limited_samples_total"))
	require.Equal(t, map[string]float64{"reason=rate_limited": 1, "reason=tenant_limit": 2, "reason=too_large": 1},
		metricValues(t, reg, "weir_receive_requests_refused_total"))
}

// TestHandlerTenantShapeLimits: the tenant's label and histogram limits tighten the node's and are
// answered as a partial write naming the limit; the rest of the request is written.
func TestHandlerTenantShapeLimits(t *testing.T) {
	h, st, reg, cur := newTenantLimitedHandler(t, `
write:
  tenants:
    small:
      labels_per_series_limit: 3
      label_value_length_limit: 8
      native_histogram_buckets_limit: 2
`)
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "ok"), Samples: samples(1)},
		{Labels: lbls("__name__", "many", "a", "1", "b", "2", "c", "3"), Samples: samples(1)},
		{Labels: lbls("__name__", "long", "a", "123456789"), Samples: samples(1)},
		{Labels: lbls("__name__", "hist"), Histograms: []prompb.Histogram{
			{Timestamp: 1, PositiveDeltas: []int64{1, 2}, Count: &prompb.Histogram_CountInt{CountInt: 3}},
			{Timestamp: 2, PositiveDeltas: []int64{1, 2}, NegativeDeltas: []int64{1}, Count: &prompb.Histogram_CountInt{CountInt: 4}},
		}},
	}}
	w := postAs(h, "small", wr, t)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	body := w.Body.String()
	require.Contains(t, body, "partial write: 3 points rejected, 0 written")
	require.Contains(t, body, ReasonTooManyLabels+": 1")
	require.Contains(t, body, ReasonLabelValueTooLong+": 1")
	require.Contains(t, body, ReasonHistogramBuckets+": 1")
	require.Contains(t, body, "over the tenant's native_histogram_buckets_limit of 2")
	require.Equal(t, 1, st.calls)
	require.Len(t, st.series[0], 2, "the valid series and the histogram within the limit are written")
	require.Len(t, st.series[0][1].Histograms, 1)
	require.Equal(t, 1.0, metricValues(t, reg, "weir_receive_rejected_total")["kind=histogram,reason=native_histogram_buckets_limit,tenant=small"])

	// Another tenant gets the node's limits only.
	w = postAs(h, "other", wr, t)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())

	// A new snapshot applies at the next request: the limits are gone.
	snap, err := limits.Parse(nil)
	require.NoError(t, err)
	cur.Store(snap)
	w = postAs(h, "small", wr, t)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
}

func TestTenantShapeTightensOnly(t *testing.T) {
	node := Limits{MaxLabelsPerSeries: 30, MaxLabelNameLength: 0, MaxLabelValueLength: 100}
	got := tenantShape(node, &limits.Limits{LabelsPerSeries: 50, LabelNameLength: 10, LabelValueLength: 20, NativeHistogramBuckets: 7})
	require.Equal(t, Limits{MaxLabelsPerSeries: 30, MaxLabelNameLength: 10, MaxLabelValueLength: 20, MaxNativeHistogramBuckets: 7}, got)
	require.Equal(t, node, tenantShape(node, limits.None()))
}

// TestHandlerRelabel: the global rules and then the tenant's run on every valid series before it is
// stored (and placed); a dropped series is not an error; rejections still name the series by its
// index in the request as sent.
func TestHandlerRelabel(t *testing.T) {
	src, err := limits.NewSource(limits.Config{
		Relabel: "- target_label: cluster\n  replacement: eu\n",
		Inline: `
write:
  tenants:
    a:
      relabel_configs:
        - action: labeldrop
          regex: pod_uid
        - action: drop
          source_labels: [__name__]
          regex: debug_.*
`}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	st := &fakeStorage{}
	reg := prometheus.NewRegistry()
	h, err := NewHandler(testConfig(), st, nil, alwaysReady, slog.New(slog.DiscardHandler), reg, WithTenantLimits(src.Current, nil))
	require.NoError(t, err)

	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "debug_x", "job", "j"), Samples: samples(1)},               // dropped
		{Labels: lbls("__name__", "up", "pod_uid", "123", "job", "j"), Samples: samples(1)},  // relabelled
		{Labels: lbls("__name__", "bad", "dup", "1", "dup", "2"), Samples: samples(1)},       // invalid
		{Labels: lbls("__name__", "up", "job", "k", "cluster", "mine"), Samples: samples(1)}, // relabelled (overwritten)
	}}
	w := postAs(h, "a", wr, t)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "partial write: 1 points rejected")
	require.Contains(t, w.Body.String(), "series 2: 1 sample(s) rejected (duplicate_label_name)", "the index as sent")
	require.Equal(t, [][]prompb.TimeSeries{{
		{Labels: lbls("__name__", "up", "cluster", "eu", "job", "j"), Samples: samples(1)},
		{Labels: lbls("__name__", "up", "cluster", "eu", "job", "k"), Samples: samples(1)},
	}}, st.series)
	require.Equal(t, map[string]float64{"tenant=a": 1}, metricValues(t, reg, "weir_receive_relabel_dropped_series_total"))

	// Another tenant: the global rules only.
	w = postAs(h, "b", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "debug_x", "pod_uid", "1"), Samples: samples(1)},
	}}, t)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, []prompb.TimeSeries{{Labels: lbls("__name__", "debug_x", "cluster", "eu", "pod_uid", "1"), Samples: samples(1)}}, st.series[1])
}
