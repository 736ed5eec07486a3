package hashring

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics of a FileSource. Names follow Thanos' thanos_receive_config_* family under weir_hashring_.
type metrics struct {
	configHash      prometheus.Gauge
	configVersion   prometheus.Gauge
	lastSuccess     prometheus.Gauge
	lastSuccessTime prometheus.Gauge
	reloads         *prometheus.CounterVec
	reloadsSuccess  prometheus.Counter
	reloadsFailure  prometheus.Counter
	endpoints       *prometheus.GaugeVec
	tenants         *prometheus.GaugeVec
}

// newMetrics creates the metrics without registering them (see register).
func newMetrics() *metrics {
	f := promauto.With(nil)
	reloads := f.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_hashring_reloads_total",
		Help: "Attempts to load a new hashrings file, by result (success: a new snapshot is serving; failure: the file was refused and the previous snapshot keeps serving).",
	}, []string{"result"})
	return &metrics{
		configHash: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_hashring_config_hash",
			Help: "Hash of the hashrings file currently serving (the top 48 bits of its xxhash64, exact in a float64).",
		}),
		configVersion: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_hashring_config_version",
			Help: "Version of the hashrings snapshot currently serving: 1 for the first file loaded, +1 on every successful reload; 0 before any.",
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_hashring_config_last_reload_successful",
			Help: "1 if the last attempt to load the hashrings file succeeded (or found it unchanged), 0 if it was refused.",
		}),
		lastSuccessTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_hashring_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful load of the hashrings file.",
		}),
		reloads:        reloads,
		reloadsSuccess: reloads.WithLabelValues("success"),
		reloadsFailure: reloads.WithLabelValues("failure"),
		endpoints: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_hashring_endpoints",
			Help: "Endpoints of each hashring of the snapshot currently serving.",
		}, []string{"hashring"}),
		tenants: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_hashring_tenants",
			Help: "Tenants (IDs or glob patterns) listed by each hashring of the snapshot currently serving; 0 for the default ring.",
		}, []string{"hashring"}),
	}
}

// register registers the metrics on reg (nothing when reg is nil). It returns an error rather than
// panicking when reg already has them.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		m.configHash, m.configVersion, m.lastSuccess, m.lastSuccessTime, m.reloads, m.endpoints, m.tenants,
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register hashring metrics: %w", err)
		}
	}
	return nil
}

// serving records that s is now the snapshot in use.
func (m *metrics) serving(s *Snapshot) {
	m.configHash.Set(float64(s.ConfigHash >> 16))
	m.configVersion.Set(float64(s.Version))
	m.lastSuccess.Set(1)
	m.lastSuccessTime.Set(float64(s.LoadedAt.UnixNano()) / 1e9)
	m.endpoints.Reset()
	m.tenants.Reset()
	for _, h := range s.Rings.Hashrings() {
		m.endpoints.WithLabelValues(h.Name).Set(float64(len(h.Ring.Endpoints())))
		m.tenants.WithLabelValues(h.Name).Set(float64(len(h.Config.Tenants)))
	}
}
