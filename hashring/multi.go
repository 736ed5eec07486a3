package hashring

import (
	"errors"
	"fmt"
	"path"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
)

// ErrNoHashring is returned by Rings.For when no hashring matches the tenant and there is no default
// (tenant-less) hashring.
var ErrNoHashring = errors.New("no hashring matches the tenant and there is no default hashring")

// maxCachedTenants bounds the cache of glob and default resolutions, so that a flood of distinct
// tenant IDs cannot grow it without limit; tenants beyond it are matched on every call.
const maxCachedTenants = 10000

// Hashring is one hashring of a Rings: its name, configuration and placement.
type Hashring struct {
	// Name is the hashring's name, or hashrings[i] for an unnamed one.
	Name string
	// Config is the hashring as read from the file (Algorithm resolved).
	Config RingConfig
	// Ring places the hashring's series.
	Ring Ring
}

// Rings is the placement of every tenant: the hashrings of one hashrings file. A Rings is immutable
// (apart from an internal lookup cache) and safe for concurrent use; a new file produces a new Rings.
//
// A tenant's hashring is, in this order of precedence: the hashring listing it exactly; else the first
// hashring (in file order) with a glob pattern matching it; else the default (tenant-less) hashring.
// Thanos instead takes the first hashring in file order that matches in any way, so a default ring
// listed before the others captures every tenant there; Weir lets exact and glob entries win
// regardless of order. The two agree whenever the default ring comes last in the file and no tenant matches
// two glob patterns.
type Rings struct {
	rings  []*Hashring
	exact  map[string]int
	globs  []glob
	def    int // index of the default ring, -1 if none
	cache  sync.Map
	cached atomic.Int64
}

type glob struct {
	pattern string
	ring    int
}

// Load parses a hashrings file and builds its rings (ParseConfig followed by NewRings).
func Load(data []byte, opts Options) (*Rings, error) {
	cfgs, err := ParseConfig(data, opts)
	if err != nil {
		return nil, err
	}
	return NewRings(cfgs, opts)
}

// NewRings validates cfgs (see Validate) and builds their rings.
func NewRings(cfgs []RingConfig, opts Options) (*Rings, error) {
	if err := Validate(cfgs, opts); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	r := &Rings{exact: make(map[string]int), def: -1}
	for i, c := range cfgs {
		if c.Algorithm == "" {
			c.Algorithm = opts.DefaultAlgorithm
		}
		ring, err := New(c.Algorithm, c.Endpoints, opts)
		if err != nil {
			return nil, ringError(i, c.Name, err)
		}
		r.rings = append(r.rings, &Hashring{Name: displayName(i, c.Name), Config: c, Ring: ring})
		if len(c.Tenants) == 0 {
			r.def = i
		}
		for _, t := range c.Tenants {
			if c.TenantMatcherType == MatcherGlob {
				r.globs = append(r.globs, glob{pattern: t, ring: i})
			} else {
				r.exact[t] = i
			}
		}
	}
	return r, nil
}

// For returns the ring of tenant and the external labels of its hashring (nil when none). It is meant
// to be called once per request, not per series. The error wraps ErrNoHashring.
func (r *Rings) For(tenant string) (Ring, labels.Labels, error) {
	h, err := r.Lookup(tenant)
	if err != nil {
		return nil, labels.EmptyLabels(), err
	}
	return h.Ring, h.Config.ExternalLabels, nil
}

// Lookup returns the hashring of tenant (see Rings for the precedence rules). The error wraps
// ErrNoHashring.
func (r *Rings) Lookup(tenant string) (*Hashring, error) {
	if i, ok := r.exact[tenant]; ok {
		return r.rings[i], nil
	}
	if i, ok := r.cache.Load(tenant); ok {
		return r.rings[i.(int)], nil
	}
	i := r.match(tenant)
	if i < 0 {
		return nil, fmt.Errorf("tenant %q: %w", tenant, ErrNoHashring)
	}
	if r.cached.Load() < maxCachedTenants {
		if _, loaded := r.cache.LoadOrStore(tenant, i); !loaded {
			r.cached.Add(1)
		}
	}
	return r.rings[i], nil
}

// match finds the hashring of a tenant that has no exact entry: the first glob match, else the
// default ring; -1 if neither.
func (r *Rings) match(tenant string) int {
	for _, g := range r.globs {
		// Patterns were checked at load: Match cannot fail.
		if ok, _ := path.Match(g.pattern, tenant); ok {
			return g.ring
		}
	}
	return r.def
}

// Hashrings returns the hashrings in file order. The slice is shared: callers must not modify it.
func (r *Rings) Hashrings() []*Hashring { return r.rings }
