package main

import (
	"net/http"

	"github.com/weir-metrics/weir/limits"
	"github.com/weir-metrics/weir/tenant"
)

// nodeLimits is a node's per-tenant limits (package limits, docs/limits.md): the source of the
// limits file, the router's rate limiter, and the shape of the ring that whole-cluster figures are
// split by.
type nodeLimits struct {
	src   *limits.Source
	rate  *limits.RateLimiter
	shape limits.RingShape
}

// newNodeLimits loads the limits of n's configuration. The ring shape reads n.cluster, which build
// sets later and which is only read once the node serves (series creation, requests).
func newNodeLimits(n *node) (*nodeLimits, error) {
	src, err := limits.NewSource(n.cfg.limits, n.logger, n.reg)
	if err != nil {
		return nil, err
	}
	shape := func(tenantID string) (rf, endpoints int) {
		if n.cluster == nil {
			return 0, 0 // no hashring: the node stores everything, its share is the whole figure
		}
		snap := n.cluster.ring.Current()
		if snap == nil {
			return 0, 0
		}
		ring, _, err := snap.Rings.For(tenantID)
		if err != nil {
			return 0, 0
		}
		return n.cfg.router.ReplicationFactor, len(ring.Endpoints())
	}
	return &nodeLimits{src: src, rate: limits.NewRateLimiter(src.Routers(shape)), shape: shape}, nil
}

// seriesLimits is what the node's tenant storage enforces: its share of each tenant's series limits.
func (l *nodeLimits) seriesLimits() tenant.ManagerOption {
	return tenant.WithSeriesLimits(l.src.SeriesShares(l.shape))
}

// statusHandler serves limits.StatusPath, with the series usage of storage (nil on a router).
func (l *nodeLimits) statusHandler(storage *tenant.Manager) http.Handler {
	var usage func() map[string]any
	if storage != nil {
		usage = func() map[string]any {
			out := map[string]any{}
			for id, u := range storage.SeriesUsage() {
				out[id] = u
			}
			return out
		}
	}
	return l.src.StatusHandler(l.rate, l.src.Routers(l.shape), usage)
}
