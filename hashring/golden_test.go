package hashring

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from the current code")

// golden is testdata/golden.json: fixed series and the endpoints each ring places them on.
type golden struct {
	Rings map[string][]Endpoint `json:"rings"`
	Cases []goldenCase          `json:"cases"`
}

type goldenCase struct {
	Tenant string   `json:"tenant"`
	Labels []string `json:"labels"` // name, value, name, value, … sorted by name
	Hash   string   `json:"hash"`   // SeriesHash, hexadecimal
	// Owners maps "<ring>/rf=<n>" to the owners' addresses in replica order.
	Owners map[string][]string `json:"owners"`
}

// goldenRings are the rings the golden placements are computed on.
func goldenRings(t *testing.T) (map[string][]Endpoint, map[string]Ring) {
	eps := map[string][]Endpoint{
		"ketama":       endpoints(6),
		"ketama-zoned": zoned(6, 3),
		"hashmod":      endpoints(6),
	}
	rings := map[string]Ring{}
	for name, e := range eps {
		alg := AlgorithmKetama
		if name == "hashmod" {
			alg = AlgorithmHashmod
		}
		r, err := New(alg, e, Options{ReplicationFactor: 3})
		require.NoError(t, err)
		rings[name] = r
	}
	return eps, rings
}

// goldenSeries is a fixed set of tenants and label sets, built without randomness.
func goldenSeries() []goldenCase {
	var cs []goldenCase
	for _, tenant := range []string{"default-tenant", "team-a", "team-b", "acme"} {
		for i := range 6 {
			lbls := []string{"__name__", "http_requests_total", "instance", "10.0.0." + strconv.Itoa(i) + ":9100", "job", "node"}
			if i%2 == 1 {
				lbls = append(lbls, "le", strconv.Itoa(i*10))
			}
			if i%3 == 2 {
				lbls = append(lbls, "zone", "z"+strconv.Itoa(i))
			}
			cs = append(cs, goldenCase{Tenant: tenant, Labels: lbls})
		}
	}
	cs = append(cs, goldenCase{Tenant: "default-tenant", Labels: nil})
	return cs
}

func toLabels(kv []string) []prompb.Label {
	var l []prompb.Label
	for i := 0; i+1 < len(kv); i += 2 {
		l = append(l, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return l
}

// TestGoldenPlacements fails on any change of placement: the same input must map to the same
// endpoints across runs, machines and versions, or a rolling upgrade would move series. Regenerate
// with `go test ./hashring -run TestGoldenPlacements -update` only for an intended change.
func TestGoldenPlacements(t *testing.T) {
	eps, rings := goldenRings(t)
	got := golden{Rings: eps}
	for _, c := range goldenSeries() {
		lset := toLabels(c.Labels)
		// Labels are sorted by construction except the optional le/zone ones: sort pairs by name.
		sortLabels(lset)
		c.Labels = c.Labels[:0]
		for _, l := range lset {
			c.Labels = append(c.Labels, l.Name, l.Value)
		}
		h := SeriesHash(c.Tenant, lset)
		c.Hash = fmt.Sprintf("%016x", h)
		c.Owners = map[string][]string{}
		for name, r := range rings {
			for rf := 1; rf <= 3; rf++ {
				owners, err := r.Owners(h, rf, nil)
				require.NoError(t, err)
				var addrs []string
				for _, o := range owners {
					addrs = append(addrs, r.Endpoints()[o].Address)
				}
				c.Owners[fmt.Sprintf("%s/rf=%d", name, rf)] = addrs
			}
		}
		got.Cases = append(got.Cases, c)
	}

	path := filepath.Join("testdata", "golden.json")
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
		t.Logf("rewrote %s", path)
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var want golden
	require.NoError(t, json.Unmarshal(b, &want))
	require.Equal(t, want, got, "placements changed; if intended, rerun with -update and review the diff")
}

func sortLabels(l []prompb.Label) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].Name < l[j-1].Name; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}
