package receive

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"

	"github.com/weir-metrics/weir/limits"
)

// WithTenantLimits makes the handler enforce the per-tenant limits that current returns (called once
// per request; nil limits nothing): the request limits (413), the ingestion rate through rate (429
// with Retry-After; nil: no rate limit) and the shape limits, which tighten HandlerConfig.Limits for
// the tenant (400 partial write). The series limits are the ingesters' (tenant.Manager).
func WithTenantLimits(current func() *limits.Snapshot, rate *limits.RateLimiter) HandlerOption {
	return func(h *Handler) {
		h.limits = current
		h.rate = rate
	}
}

// Names of the limits in answers and metrics (label limit of weir_receive_limited_*_total): the
// file's own names.
const (
	limitSizeBytes = limits.NameRequestSizeBytes
	limitSeries    = limits.NameRequestSeries
	limitSamples   = limits.NameRequestSamples
	limitRate      = limits.NameIngestionRate
)

// limitMetrics count what tenant limits refused before storage.
type limitMetrics struct {
	requests       *prometheus.CounterVec
	samples        *prometheus.CounterVec
	relabelDropped *prometheus.CounterVec
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	f := promauto.With(reg)
	return &limitMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_receive_limited_requests_total",
			Help: "Requests refused whole for a tenant limit (413 for a request limit, 429 for the ingestion rate), by tenant and limit.",
		}, []string{"tenant", "limit"}),
		samples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_receive_limited_samples_total",
			Help: "Samples and histogram samples of requests refused whole for a tenant limit, by tenant and limit (not counted for request.size_bytes_limit: the body is not read).",
		}, []string{"tenant", "limit"}),
		relabelDropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_receive_relabel_dropped_series_total",
			Help: "Series dropped by relabel rules (the global --receive.relabel-config and the tenant's relabel_configs), by tenant; not an error for the sender.",
		}, []string{"tenant"}),
	}
}

// tenantDecode is the decode limits of a request of a tenant with limits l: its size_bytes_limit
// when tighter than the node's.
func tenantDecode(d DecodeLimits, l *limits.Limits) (DecodeLimits, bool) {
	if l.RequestSizeBytes > 0 && l.RequestSizeBytes < d.MaxBodyBytes {
		d.MaxBodyBytes = l.RequestSizeBytes
		return d, true
	}
	return d, false
}

// tenantShape is the validation limits of a tenant with limits l: each of its shape limits that is
// tighter than the node's replaces it.
func tenantShape(node Limits, l *limits.Limits) Limits {
	tighten := func(dst *int, v int64) {
		if v > 0 && (*dst == 0 || v < int64(*dst)) {
			*dst = int(v)
		}
	}
	tighten(&node.MaxLabelsPerSeries, l.LabelsPerSeries)
	tighten(&node.MaxLabelNameLength, l.LabelNameLength)
	tighten(&node.MaxLabelValueLength, l.LabelValueLength)
	tighten(&node.MaxNativeHistogramBuckets, l.NativeHistogramBuckets)
	node.Relabel = l.Relabel
	return node
}

// pointCount is the samples and histogram samples of series: what the request and rate limits count.
func pointCount(series []prompb.TimeSeries) int {
	n := 0
	for i := range series {
		n += len(series[i].Samples) + len(series[i].Histograms)
	}
	return n
}

// checkTenantLimits applies tenantID's request limits and ingestion rate to a decoded request of
// points samples; nil when it may go on. A refused request takes no token from the rate.
func (h *Handler) checkTenantLimits(tenantID string, l *limits.Limits, series []prompb.TimeSeries, points int) error {
	var err error
	limit := ""
	switch {
	case l.RequestSeries > 0 && int64(len(series)) > l.RequestSeries:
		limit = limitSeries
		err = errorf(ClassTooLarge, "tenant %s: request has %d series, over its %s of %d (lower the sender's max_samples_per_send)", tenantID, len(series), limitSeries, l.RequestSeries)
	case l.RequestSamples > 0 && int64(points) > l.RequestSamples:
		limit = limitSamples
		err = errorf(ClassTooLarge, "tenant %s: request has %d samples, over its %s of %d (lower the sender's max_samples_per_send)", tenantID, points, limitSamples, l.RequestSamples)
	default:
		if ok, wait := h.rate.Allow(tenantID, l, points); !ok {
			limit = limitRate
			err = &Error{Class: ClassLimited, RetryAfter: wait, Err: fmt.Errorf("tenant %s is over its %s of %g samples/s (burst %d): retry after %s", tenantID, limitRate, l.IngestionRate, l.IngestionBurst, wait)}
		}
	}
	if err != nil {
		h.lm.requests.WithLabelValues(tenantID, limit).Inc()
		h.lm.samples.WithLabelValues(tenantID, limit).Add(float64(points))
	}
	return err
}

// sizeRefusal names and counts a refusal of decoding err as the tenant's size_bytes_limit when it is
// one (the tenant's limit was the one applied, and the body as sent was over it).
func (h *Handler) sizeRefusal(tenantID string, l *limits.Limits, err error) error {
	if !errors.Is(err, errBodySize) {
		return err
	}
	h.lm.requests.WithLabelValues(tenantID, limitSizeBytes).Inc()
	return &Error{Class: ClassTooLarge, Err: fmt.Errorf("tenant %s: %s is %d bytes: %w", tenantID, limitSizeBytes, l.RequestSizeBytes, err)}
}
