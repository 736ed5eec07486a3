package limits

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

// StatusPath is where a node serves its limits status (on --http-address).
const StatusPath = "/api/v1/status/limits"

// Status is the body of StatusPath: the limits serving on this node and, for every tenant that has
// limits of its own or that this node has seen, its effective limits, how they are split on this
// node, and its usage here.
type Status struct {
	Configured bool      `json:"configured"` // a limits file or inline limits are in use
	Version    uint64    `json:"version"`
	LoadedAt   time.Time `json:"loaded_at,omitzero"`
	// LastError is why the file on disk was refused (the limits of Version keep serving), if it was.
	LastError string         `json:"last_error,omitempty"`
	Default   *Limits        `json:"default"`
	Tenants   []TenantStatus `json:"tenants"`
}

// TenantStatus is one tenant's entry of Status.
type TenantStatus struct {
	Tenant string  `json:"tenant"`
	Own    bool    `json:"own_limits"` // an entry in write.tenants; else the default applies
	Limits *Limits `json:"limits"`
	// Routers is how many routers share its rate; RouterRate this router's share (0: no limit);
	// RateTokens the samples its bucket holds now (absent before its first limited request).
	Routers    int      `json:"routers"`
	RouterRate float64  `json:"router_rate_limit"`
	RateTokens *float64 `json:"rate_tokens,omitempty"`
	// Usage is what this node's storage reports for the tenant (series against the ingester's
	// shares), absent on a router that stores nothing.
	Usage any `json:"usage,omitempty"`
}

// StatusHandler serves Status as JSON. rate is the router's RateLimiter (nil on an ingester only),
// routers its split; usage returns what this node stores per tenant (nil: nothing).
func (s *Source) StatusHandler(rate *RateLimiter, routers func(string) int, usage func() map[string]any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.status(rate, routers, usage))
	})
}

func (s *Source) status(rate *RateLimiter, routers func(string) int, usage func() map[string]any) Status {
	snap := s.Current()
	st := Status{Configured: snap != nil, Default: snap.Default(), Tenants: []TenantStatus{}}
	if snap != nil {
		st.Version, st.LoadedAt = snap.Version, snap.LoadedAt
	}
	if err := s.Err(); err != nil {
		st.LastError = err.Error()
	}
	var used map[string]any
	if usage != nil {
		used = usage()
	}
	ids := snap.Tenants()
	for id := range used {
		ids = append(ids, id)
	}
	if rate != nil {
		rate.buckets.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		l := snap.For(id)
		_, own := snap.tenants[id]
		ts := TenantStatus{Tenant: id, Own: own, Limits: l, Usage: used[id], Routers: 1}
		if routers != nil {
			ts.Routers = routers(id)
		}
		ts.RouterRate = l.RouterRate(ts.Routers)
		if tok := rate.Tokens(id); tok >= 0 {
			ts.RateTokens = &tok
		}
		st.Tenants = append(st.Tenants, ts)
	}
	return st
}
