package limits

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter enforces each tenant's ingestion_rate_limit on one router with a token bucket per
// tenant (golang.org/x/time/rate): it fills at the router's share of the tenant's rate (RouterRate)
// and holds ingestion_burst_size tokens. A request takes one token per sample and histogram sample.
//
// The split assumes the routers get a tenant's traffic evenly (a load balancer in front of them, or
// senders spread over them): each router lets rate/N through, so the cluster lets the rate through.
// A router that gets more than its share refuses more; a tenant that sends all of its traffic to one
// router of N gets 1/N of its rate. Buckets follow limit changes at their next request. A
// RateLimiter is safe for concurrent use.
type RateLimiter struct {
	// routers returns how many routers share tenantID's rate (at least 1 is used).
	routers func(tenantID string) int
	now     func() time.Time
	buckets sync.Map // tenant ID → *rate.Limiter
}

// NewRateLimiter returns a limiter whose share of every rate is 1/routers(tenant).
func NewRateLimiter(routers func(tenantID string) int) *RateLimiter {
	if routers == nil {
		routers = func(string) int { return 1 }
	}
	return &RateLimiter{routers: routers, now: time.Now}
}

// Allow takes n tokens from tenantID's bucket, sized by l, and reports whether they were there; if
// not, retryAfter is when they will be (whole seconds, at least one), and nothing is taken. A request
// larger than the bucket takes the whole bucket, so that it can pass once the bucket is full instead
// of being refused for ever. Without a rate limit (or a RateLimiter: nil allows everything) it
// allows everything and touches nothing.
func (r *RateLimiter) Allow(tenantID string, l *Limits, n int) (ok bool, retryAfter time.Duration) {
	if r == nil || l.IngestionRate <= 0 || n <= 0 {
		return true, 0
	}
	now := r.now()
	limit := rate.Limit(l.RouterRate(r.routers(tenantID)))
	burst := int(min(l.IngestionBurst, math.MaxInt32))
	lim := r.bucket(tenantID, limit, burst)
	if lim.Limit() != limit {
		lim.SetLimitAt(now, limit)
	}
	if lim.Burst() != burst {
		lim.SetBurstAt(now, burst)
	}
	n = min(n, burst)
	if lim.AllowN(now, n) {
		return true, 0
	}
	missing := float64(n) - lim.TokensAt(now)
	secs := math.Ceil(missing / float64(limit))
	if secs < 1 || math.IsNaN(secs) {
		secs = 1
	}
	return false, time.Duration(min(secs, 3600)) * time.Second
}

func (r *RateLimiter) bucket(tenantID string, limit rate.Limit, burst int) *rate.Limiter {
	if v, ok := r.buckets.Load(tenantID); ok {
		return v.(*rate.Limiter)
	}
	v, _ := r.buckets.LoadOrStore(tenantID, rate.NewLimiter(limit, burst))
	return v.(*rate.Limiter)
}

// Tokens returns the tokens left in tenantID's bucket now (-1: no bucket yet), for the status page.
func (r *RateLimiter) Tokens(tenantID string) float64 {
	if r == nil {
		return -1
	}
	v, ok := r.buckets.Load(tenantID)
	if !ok {
		return -1
	}
	return v.(*rate.Limiter).TokensAt(r.now())
}
