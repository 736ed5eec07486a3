package tenant

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// unregisterer registers a tenant's TSDB metrics under a tenant label and removes them all again when
// the tenant's TSDB is closed or failed to open. Without it, reopening a tenant would panic on
// duplicate registration inside the TSDB.
type unregisterer struct {
	prometheus.Registerer

	mu         sync.Mutex
	collectors []prometheus.Collector
	walFailed  []prometheus.Metric // the TSDB's counters of failed WAL writes (walguard.go)
}

func newUnregisterer(reg prometheus.Registerer, tenantID string) *unregisterer {
	return &unregisterer{Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"tenant": tenantID}, reg)}
}

func (u *unregisterer) Register(c prometheus.Collector) error {
	if err := u.Registerer.Register(c); err != nil {
		return err
	}
	walFailed := walFailureMetric(c)
	u.mu.Lock()
	u.collectors = append(u.collectors, c)
	if walFailed != nil {
		u.walFailed = append(u.walFailed, walFailed)
	}
	u.mu.Unlock()
	return nil
}

func (u *unregisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := u.Register(c); err != nil {
			panic(err)
		}
	}
}

// unregisterAll removes every collector registered through u.
func (u *unregisterer) unregisterAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range u.collectors {
		u.Unregister(c)
	}
	u.collectors = nil
	u.walFailed = nil
}
