package hashring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestThanosCompatibility pins the placements Thanos Receive's own tests expect of its ketama ring
// (pkg/receive/hashring_test.go, TestKetamaHashringGet, 10 points per endpoint): same file, same
// series → same endpoints, so moving from Thanos to Weir moves no series.
func TestThanosCompatibility(t *testing.T) {
	nginx := []prompb.Label{{Name: "pod", Value: "nginx"}}
	thanos := []prompb.Label{{Name: "pod", Value: "thanos"}}
	eps := func(addrs ...string) []Endpoint {
		var e []Endpoint
		for _, a := range addrs {
			e = append(e, Endpoint{Address: a})
		}
		return e
	}
	for _, tc := range []struct {
		name      string
		endpoints []Endpoint
		lset      []prompb.Label
		n         int
		want      string
	}{
		{"base case", eps("node-1", "node-2", "node-3"), nginx, 0, "node-2"},
		{"replica 1", eps("node-1", "node-2", "node-3"), nginx, 1, "node-1"},
		{"replica 2", eps("node-1", "node-2", "node-3"), nginx, 2, "node-3"},
		{"reordered nodes", eps("node-1", "node-3", "node-2"), nginx, 2, "node-3"},
		{"new node at beginning", eps("node-0", "node-1", "node-2", "node-3"), nginx, 0, "node-2"},
		{"new node at end", eps("node-1", "node-2", "node-3", "node-4"), nginx, 0, "node-2"},
		{"other series", eps("node-1", "node-2", "node-3"), thanos, 0, "node-3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewKetama(tc.endpoints, 10, tc.n+1)
			require.NoError(t, err)
			owners, err := r.Owners(SeriesHash("tenant", tc.lset), tc.n+1, nil)
			require.NoError(t, err)
			require.Equal(t, tc.want, r.Endpoints()[owners[tc.n]].Address)
		})
	}
}

func TestSeriesHash(t *testing.T) {
	lset := []prompb.Label{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}}
	h := SeriesHash("t", lset)
	require.Equal(t, h, SeriesHash("t", slices.Clone(lset)), "deterministic")
	require.NotEqual(t, h, SeriesHash("u", lset), "tenant is hashed")
	// Separators keep boundaries: moving bytes between tenant, names and values changes the hash.
	require.NotEqual(t, SeriesHash("ta", []prompb.Label{{Name: "b", Value: "1"}}), SeriesHash("t", []prompb.Label{{Name: "ab", Value: "1"}}))
	require.NotEqual(t, SeriesHash("t", []prompb.Label{{Name: "ab", Value: "c"}}), SeriesHash("t", []prompb.Label{{Name: "a", Value: "bc"}}))
	require.NotEqual(t, SeriesHash("t", nil), SeriesHash("t", []prompb.Label{{Name: "", Value: ""}}))

	allocs := testing.AllocsPerRun(100, func() { _ = SeriesHash("tenant", lset) })
	require.Zero(t, allocs)
}

func TestHashmod(t *testing.T) {
	// Endpoints are sorted by address; replica i is (h+i) mod n.
	r, err := NewHashmod([]Endpoint{{Address: "c:1"}, {Address: "a:1"}, {Address: "b:1"}}, 2)
	require.NoError(t, err)
	require.Equal(t, []Endpoint{{Address: "a:1"}, {Address: "b:1"}, {Address: "c:1"}}, r.Endpoints())
	for _, tc := range []struct {
		h    uint64
		want []int
	}{
		{0, []int{0, 1, 2}},
		{4, []int{1, 2, 0}},
		{5, []int{2, 0, 1}},
		{^uint64(0), []int{0, 1, 2}}, // 2^64-1 ≡ 0 (mod 3); no wrap-around duplicate
	} {
		got, err := r.Owners(tc.h, 3, nil)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "h=%d", tc.h)
	}
	_, err = r.Owners(1, 4, nil)
	require.ErrorIs(t, err, ErrNotEnoughEndpoints)
	_, err = r.Owners(1, 0, nil)
	require.ErrorIs(t, err, ErrInvalidReplicationFactor)

	_, err = NewHashmod([]Endpoint{{Address: "a:1", AZ: "z"}}, 1)
	require.Error(t, err)
}

func TestNewRingErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		alg  Algorithm
		eps  []Endpoint
		rf   int
		want string
	}{
		{"no endpoints", AlgorithmKetama, nil, 1, "no endpoints"},
		{"rf above endpoints", AlgorithmKetama, endpoints(2), 3, "replication factor 3 is larger than the 2 endpoints"},
		{"rf above zones", AlgorithmKetama, zoned(6, 2), 3, "replication factor 3 is larger than the 2 distinct zones (az)"},
		{"duplicate", AlgorithmHashmod, []Endpoint{{Address: "a:1"}, {Address: "a:1"}}, 1, `endpoints[1]: duplicate endpoint "a:1" (also endpoints[0])`},
		{"empty address", AlgorithmHashmod, []Endpoint{{}}, 1, "endpoints[0]: empty address"},
		{"unknown algorithm", "jump", endpoints(1), 1, `unknown algorithm "jump" (want "ketama" or "hashmod")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.alg, tc.eps, Options{ReplicationFactor: tc.rf})
			require.EqualError(t, err, tc.want)
		})
	}
}

// TestOwnersDistinct is a property test: for every ring size, zone layout, algorithm and rf up to what
// the ring can satisfy, the owners of many hashes are rf distinct endpoints in rf distinct zones, the
// same whether precomputed or walked, and a smaller rf gives a prefix of a larger one.
func TestOwnersDistinct(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hashes := make([]uint64, 2000)
	for i := range hashes {
		hashes[i] = rng.Uint64()
	}
	hashes = append(hashes, 0, 1, ^uint64(0))

	type layout struct {
		n, zones int
	}
	var layouts []layout
	for n := 1; n <= 9; n++ {
		layouts = append(layouts, layout{n, 0})
		for z := 1; z <= n; z++ {
			layouts = append(layouts, layout{n, z})
		}
	}
	for _, l := range layouts {
		eps := endpoints(l.n)
		maxRF := l.n
		if l.zones > 0 {
			eps = zoned(l.n, l.zones)
			maxRF = l.zones
		}
		var rings []Ring
		for _, points := range []int{1, 7, 160} {
			pre, err := NewKetama(eps, points, 1) // owners walked for rf > 1
			require.NoError(t, err)
			full, err := NewKetama(eps, points, maxRF) // owners precomputed
			require.NoError(t, err)
			var a, b []int
			for _, h := range hashes {
				a, _ = pre.Owners(h, maxRF, a[:0])
				b, _ = full.Owners(h, maxRF, b[:0])
				if !slices.Equal(a, b) {
					t.Fatalf("%d endpoints, %d zones, %d points, hash %d: walked owners %v, precomputed %v", l.n, l.zones, points, h, a, b)
				}
			}
			rings = append(rings, pre, full)
		}
		if l.zones == 0 {
			hm, err := NewHashmod(eps, 1)
			require.NoError(t, err)
			rings = append(rings, hm)
		}
		for ri, r := range rings {
			owners := make([]int, 0, maxRF)
			longest := make([]int, 0, maxRF)
			for _, h := range hashes {
				for rf := maxRF; rf >= 1; rf-- {
					var err error
					owners, err = r.Owners(h, rf, owners[:0])
					if err != nil || len(owners) != rf {
						t.Fatalf("%d endpoints, %d zones, ring %d, rf %d: owners %v, err %v", l.n, l.zones, ri, rf, owners, err)
					}
					for i, o := range owners {
						for _, p := range owners[:i] {
							if p == o {
								t.Fatalf("%d endpoints, %d zones, ring %d, rf %d: endpoint %d twice in %v", l.n, l.zones, ri, rf, o, owners)
							}
							if l.zones > 0 && r.Endpoints()[p].AZ == r.Endpoints()[o].AZ {
								t.Fatalf("%d endpoints, %d zones, ring %d, rf %d: zone %s twice in %v", l.n, l.zones, ri, rf, r.Endpoints()[o].AZ, owners)
							}
						}
					}
					if rf == maxRF {
						longest = append(longest[:0], owners...)
					} else if !slices.Equal(longest[:rf], owners) {
						t.Fatalf("ring %d: rf %d owners %v are not a prefix of rf %d owners %v", ri, rf, owners, maxRF, longest)
					}
				}
				if _, err := r.Owners(h, maxRF+1, owners[:0]); !errors.Is(err, ErrNotEnoughEndpoints) {
					t.Fatalf("rf %d above what the ring can satisfy: err %v", maxRF+1, err)
				}
			}
		}
	}
}

// TestOwnersAppends checks the append contract: Owners keeps what dst holds and adds rf indexes.
func TestOwnersAppends(t *testing.T) {
	r, err := NewKetama(endpoints(5), 100, 3)
	require.NoError(t, err)
	dst := []int{42}
	dst, err = r.Owners(7, 3, dst)
	require.NoError(t, err)
	require.Len(t, dst, 4)
	require.Equal(t, 42, dst[0])
	dst, err = r.Owners(7, 4, dst) // walked: distinctness is checked only among the new owners
	require.NoError(t, err)
	require.Len(t, dst, 8)
	require.Equal(t, dst[1:4], dst[4:7])
}

func TestOwnersDoNotAllocate(t *testing.T) {
	for _, alg := range []Algorithm{AlgorithmKetama, AlgorithmHashmod} {
		r, err := New(alg, endpoints(6), Options{ReplicationFactor: 3})
		require.NoError(t, err)
		dst := make([]int, 0, 6)
		for _, rf := range []int{1, 3, 6} { // 6 > precomputed 3: walked
			allocs := testing.AllocsPerRun(100, func() {
				dst, _ = r.Owners(12345, rf, dst[:0])
			})
			require.Zero(t, allocs, fmt.Sprintf("%s rf=%d", alg, rf))
		}
	}
}

// TestSeriesHashLong: series longer than the stack buffer hash as the same byte stream.
func TestSeriesHashLong(t *testing.T) {
	for _, n := range []int{1, 10, 100} {
		var lset []prompb.Label
		var stream []byte
		stream = append(stream, "tenant"...)
		stream = append(stream, 0xff)
		for i := range n {
			l := prompb.Label{Name: fmt.Sprintf("label_%03d", i), Value: strings.Repeat("v", i*7)}
			lset = append(lset, l)
			stream = append(stream, l.Name...)
			stream = append(stream, 0xff)
			stream = append(stream, l.Value...)
			stream = append(stream, 0xff)
		}
		require.Equal(t, xxhash.Sum64(stream), SeriesHash("tenant", lset), "%d labels", n)
		allocs := testing.AllocsPerRun(20, func() { _ = SeriesHash("tenant", lset) })
		require.Zero(t, allocs, "%d labels", n)
	}
}
