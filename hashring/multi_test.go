package hashring

import (
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

const multiFile = `[
  {"hashring": "glob-wide", "tenants": ["team-*"], "tenant_matcher_type": "glob", "endpoints": ["w:1"], "external_labels": {"ring": "wide"}},
  {"hashring": "exact", "tenants": ["acme", "team-special"], "endpoints": ["e1:1", "e2:1"], "algorithm": "ketama"},
  {"hashring": "default", "endpoints": ["d:1"], "external_labels": {"ring": "default"}},
  {"hashring": "glob-narrow", "tenants": ["team-[0-9]", "ops-?"], "tenant_matcher_type": "glob", "endpoints": ["n:1"]}
]`

func TestRingsFor(t *testing.T) {
	rings, err := Load([]byte(multiFile), Options{})
	require.NoError(t, err)

	for _, tc := range []struct {
		tenant string
		ring   string
		labels labels.Labels
	}{
		{"acme", "exact", labels.EmptyLabels()},
		{"team-special", "exact", labels.EmptyLabels()},             // exact wins over the glob listed before it
		{"team-x", "glob-wide", labels.FromStrings("ring", "wide")}, // first glob in file order
		{"team-1", "glob-wide", labels.FromStrings("ring", "wide")}, // also matches glob-narrow, listed later
		{"ops-1", "glob-narrow", labels.EmptyLabels()},
		{"ops-12", "default", labels.FromStrings("ring", "default")}, // ? matches one character
		{"anyone", "default", labels.FromStrings("ring", "default")},
		{"ACME", "default", labels.FromStrings("ring", "default")}, // case-sensitive
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			for range 2 { // the second lookup is served from the cache
				h, err := rings.Lookup(tc.tenant)
				require.NoError(t, err)
				require.Equal(t, tc.ring, h.Name)
				ring, ext, err := rings.For(tc.tenant)
				require.NoError(t, err)
				require.Same(t, h.Ring, ring)
				require.True(t, labels.Equal(tc.labels, ext), "external labels %s", ext)
			}
		})
	}
	require.Len(t, rings.Hashrings(), 4)
	require.Equal(t, AlgorithmKetama, rings.Hashrings()[1].Config.Algorithm)
	require.Equal(t, AlgorithmHashmod, rings.Hashrings()[0].Config.Algorithm)
}

func TestRingsNoMatch(t *testing.T) {
	rings, err := Load([]byte(`[
	  {"hashring": "a", "tenants": ["acme"], "endpoints": ["a:1"]},
	  {"hashring": "b", "tenants": ["team-*"], "tenant_matcher_type": "glob", "endpoints": ["b:1"]}
	]`), Options{})
	require.NoError(t, err)
	_, _, err = rings.For("other")
	require.ErrorIs(t, err, ErrNoHashring)
	require.EqualError(t, err, `tenant "other": no hashring matches the tenant and there is no default hashring`)
	// Not cached as a match: still an error.
	_, err = rings.Lookup("other")
	require.ErrorIs(t, err, ErrNoHashring)
}

func TestRingsUnnamed(t *testing.T) {
	rings, err := Load([]byte(`[{"tenants": ["a"], "endpoints": ["a:1"]}, {"endpoints": ["b:1"]}]`), Options{})
	require.NoError(t, err)
	h, err := rings.Lookup("x")
	require.NoError(t, err)
	require.Equal(t, "hashrings[1]", h.Name)
}

func TestRingsCacheBounded(t *testing.T) {
	rings, err := Load([]byte(`[{"tenants": ["t-*"], "tenant_matcher_type": "glob", "endpoints": ["a:1"]}, {"endpoints": ["b:1"]}]`), Options{})
	require.NoError(t, err)
	for i := range maxCachedTenants + 100 {
		h, err := rings.Lookup(fmt.Sprintf("t-%d", i))
		require.NoError(t, err)
		require.Equal(t, "hashrings[0]", h.Name)
	}
	require.EqualValues(t, maxCachedTenants, rings.cached.Load())
	h, err := rings.Lookup(fmt.Sprintf("t-%d", maxCachedTenants+50)) // uncached: matched again
	require.NoError(t, err)
	require.Equal(t, "hashrings[0]", h.Name)
}

func TestRingsConcurrent(t *testing.T) {
	rings, err := Load([]byte(multiFile), Options{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				tenant := fmt.Sprintf("team-%d", (g*1000+i)%50)
				if _, err := rings.Lookup(tenant); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
