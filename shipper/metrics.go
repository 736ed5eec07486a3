package shipper

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	uploads         prometheus.Counter
	uploadFailures  prometheus.Counter
	uploadedBytes   prometheus.Counter
	lastSuccess     prometheus.Gauge
	pending         prometheus.Gauge
	oldestUnshipped prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		uploads: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_shipper_uploads_total",
			Help: "Blocks uploaded to object storage (meta.json included).",
		}),
		uploadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_shipper_upload_failures_total",
			Help: "Block uploads that failed; the block is retried by the next sync.",
		}),
		uploadedBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_shipper_uploaded_bytes_total",
			Help: "Bytes of block files (meta.json included) of successfully uploaded blocks.",
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_shipper_last_success_timestamp_seconds",
			Help: "Unix time of the last successful block upload.",
		}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_shipper_blocks_pending",
			Help: "Local blocks waiting to be uploaded, as of the last sync.",
		}),
		oldestUnshipped: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_shipper_oldest_unshipped_block_age_seconds",
			Help: "Seconds since the oldest block waiting for upload was created (its ULID time), as of the last sync; 0 when none waits.",
		}),
	}
}
