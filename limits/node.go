package limits

// RingShape tells a node how a tenant is placed: the replication factor and the endpoints of the
// tenant's hashring (0 when unknown: no hashring, or none for the tenant).
type RingShape func(tenantID string) (rf, endpoints int)

// SeriesShares returns what an ingester enforces (tenant.SeriesLimits): the current
// head_series_limit and series_per_metric_limit of a tenant as this ingester's share of them
// (IngesterShare with the tenant's ring shape; the whole figures without a ring). It is called only
// when a series is about to be created.
func (s *Source) SeriesShares(ring RingShape) func(tenantID string) (headSeries, perMetric int64) {
	return func(tenantID string) (int64, int64) {
		l := s.Current().For(tenantID)
		if l.HeadSeries == 0 && l.SeriesPerMetric == 0 {
			return 0, 0
		}
		rf, n := 0, 0
		if ring != nil {
			rf, n = ring(tenantID)
		}
		return IngesterShare(l.HeadSeries, rf, n), IngesterShare(l.SeriesPerMetric, rf, n)
	}
}

// Routers returns how many routers share a tenant's rate: --receive.limits.routers when set, else
// the endpoints of the tenant's hashring (every node a router and an ingester), else 1.
func (s *Source) Routers(ring RingShape) func(tenantID string) int {
	fixed := s.cfg.Routers
	return func(tenantID string) int {
		if fixed > 0 {
			return fixed
		}
		if ring != nil {
			if _, n := ring(tenantID); n > 0 {
				return n
			}
		}
		return 1
	}
}
