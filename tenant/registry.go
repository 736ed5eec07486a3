package tenant

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// tenantRegistry is where one open tenant's TSDB, shipper and limits register their metrics: a
// registry of its own, which tenantMetrics reads at each scrape. An open gets a new one, so that a
// reopened tenant registers afresh instead of colliding with what its previous TSDB registered.
type tenantRegistry struct {
	*prometheus.Registry

	mu        sync.Mutex
	walFailed []prometheus.Metric // the TSDB's counters of failed WAL writes (walguard.go)
}

func newTenantRegistry() *tenantRegistry {
	return &tenantRegistry{Registry: prometheus.NewRegistry()}
}

func (r *tenantRegistry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	if m := walFailureMetric(c); m != nil {
		r.mu.Lock()
		r.walFailed = append(r.walFailed, m)
		r.mu.Unlock()
	}
	return nil
}

func (r *tenantRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}
