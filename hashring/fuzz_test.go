package hashring

import (
	"path"
	"testing"
)

// FuzzParseConfig: any input either fails to parse with an error, or yields rings that place series on
// rf distinct endpoints. It must never panic. Seed corpus: testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(multiFile))
	f.Add([]byte(fileV1))
	f.Add([]byte(`[{"endpoints": [{"address": "a:1", "az": "1"}, {"address": "b:1", "az": "2"}], "algorithm": "ketama"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range []Options{{}, {DefaultAlgorithm: AlgorithmKetama, ReplicationFactor: 2, KetamaPoints: 16}} {
			cfgs, err := ParseConfig(data, opts)
			if err != nil {
				continue
			}
			rings, err := NewRings(cfgs, opts)
			if err != nil {
				t.Fatalf("ParseConfig accepted what NewRings refuses: %v", err)
			}
			rf := opts.withDefaults().ReplicationFactor
			for _, h := range rings.Hashrings() {
				owners, err := h.Ring.Owners(0x9e3779b97f4a7c15, rf, nil)
				if err != nil || len(owners) != rf || (rf == 2 && owners[0] == owners[1]) {
					t.Fatalf("ring %s: owners %v, err %v", h.Name, owners, err)
				}
				for _, tenant := range h.Config.Tenants {
					if h.Config.TenantMatcherType == MatcherGlob {
						if ok, _ := path.Match(tenant, tenant); !ok {
							continue // a pattern such as "[0]" need not match itself
						}
					}
					if _, err := rings.Lookup(tenant); err != nil {
						t.Fatalf("tenant %q of ring %s does not resolve: %v", tenant, h.Name, err)
					}
				}
			}
		}
	})
}
