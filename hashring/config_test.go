package hashring

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestParseConfigValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		opts Options
		want []RingConfig
	}{
		{
			name: "one default ring of strings, default algorithm applied",
			file: `[{"hashring": "default", "endpoints": ["a:1", "b:1"]}]`,
			want: []RingConfig{{Name: "default", Endpoints: []Endpoint{{Address: "a:1"}, {Address: "b:1"}}, Algorithm: AlgorithmHashmod}},
		},
		{
			name: "default algorithm from options",
			file: `[{"endpoints": ["a:1"]}]`,
			opts: Options{DefaultAlgorithm: AlgorithmKetama},
			want: []RingConfig{{Endpoints: []Endpoint{{Address: "a:1"}}, Algorithm: AlgorithmKetama}},
		},
		{
			name: "mixed string and object endpoints, azs, external labels, glob",
			file: `[
			  {"hashring": "teams", "tenants": ["team-*", "ops-?"], "tenant_matcher_type": "glob",
			   "endpoints": [{"address": "a:1", "az": "z1"}, {"address": "b:1", "az": "z2", "capnproto_address": "b:19391"}, {"address": "c:1", "az": "z3"}],
			   "algorithm": "ketama", "external_labels": {"ring": "teams", "dc": "eu"}},
			  {"hashring": "exact", "tenants": ["acme"], "tenant_matcher_type": "exact", "endpoints": ["d:1", {"address": "e:1"}], "algorithm": "hashmod"},
			  {"hashring": "default", "tenants": [], "endpoints": ["f:1", "g:1", "h:1"]}
			]`,
			opts: Options{ReplicationFactor: 2},
			want: []RingConfig{
				{
					Name: "teams", Tenants: []string{"team-*", "ops-?"}, TenantMatcherType: MatcherGlob,
					Endpoints: []Endpoint{{"a:1", "z1"}, {"b:1", "z2"}, {"c:1", "z3"}},
					Algorithm: AlgorithmKetama, ExternalLabels: labels.FromStrings("dc", "eu", "ring", "teams"),
				},
				{Name: "exact", Tenants: []string{"acme"}, TenantMatcherType: MatcherExact, Endpoints: []Endpoint{{Address: "d:1"}, {Address: "e:1"}}, Algorithm: AlgorithmHashmod},
				{Name: "default", Tenants: []string{}, Endpoints: []Endpoint{{Address: "f:1"}, {Address: "g:1"}, {Address: "h:1"}}, Algorithm: AlgorithmHashmod},
			},
		},
		{
			name: "same endpoint in two rings, same tenant exact and glob",
			file: `[{"hashring": "a", "tenants": ["x"], "endpoints": ["a:1"]},
			        {"hashring": "b", "tenants": ["x"], "tenant_matcher_type": "glob", "endpoints": ["a:1"]}]`,
			want: []RingConfig{
				{Name: "a", Tenants: []string{"x"}, Endpoints: []Endpoint{{Address: "a:1"}}, Algorithm: AlgorithmHashmod},
				{Name: "b", Tenants: []string{"x"}, TenantMatcherType: MatcherGlob, Endpoints: []Endpoint{{Address: "a:1"}}, Algorithm: AlgorithmHashmod},
			},
		},
		{
			name: "IPv6 and DNS names",
			file: `[{"endpoints": ["[::1]:10901", "weir-0.weir.svc.cluster.local:10901"]}]`,
			want: []RingConfig{{Endpoints: []Endpoint{{Address: "[::1]:10901"}, {Address: "weir-0.weir.svc.cluster.local:10901"}}, Algorithm: AlgorithmHashmod}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.file), tc.opts)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			_, err = Load([]byte(tc.file), tc.opts)
			require.NoError(t, err)
		})
	}
}

func TestParseConfigInvalid(t *testing.T) {
	rf3 := Options{ReplicationFactor: 3}
	ketama := Options{DefaultAlgorithm: AlgorithmKetama}
	for _, tc := range []struct {
		name string
		file string
		opts Options
		want string // the whole error text
	}{
		{"empty file", ``, Options{}, `hashrings file is empty`},
		{"not JSON", `{`, Options{}, `hashrings file is not a JSON array of hashrings: unexpected EOF`},
		{"object, not array", `{"hashring": "a"}`, Options{}, `hashrings file is not a JSON array of hashrings: json: cannot unmarshal object into Go value of type []json.RawMessage`},
		{"trailing data", `[{"endpoints": ["a:1"]}] []`, Options{}, `hashrings file has data after its JSON array`},
		{"empty array", `[]`, Options{}, `hashrings file holds no hashring`},
		{"null", `null`, Options{}, `hashrings file holds no hashring`},
		{"null ring", `[null]`, Options{}, `hashrings[0]: is null, want an object`},
		{"unknown ring field", `[{"hashring": "a", "endpoint": ["a:1"]}]`, Options{}, `hashrings[0] "a": json: unknown field "endpoint"`},
		{"unknown endpoint field", `[{"hashring": "a", "endpoints": [{"address": "a:1", "zone": "z"}]}]`, Options{}, `hashrings[0] "a": endpoints[0]: json: unknown field "zone"`},
		{"endpoint of wrong type", `[{"hashring": "a", "endpoints": [7]}]`, Options{}, `hashrings[0] "a": endpoints[0]: want "host:port" or {"address": "host:port", "az": "zone"}, got 7`},
		{"wrong field type", `[{"hashring": "a", "tenants": "x", "endpoints": ["a:1"]}]`, Options{}, `hashrings[0] "a": json: cannot unmarshal string into Go struct field fileRing.tenants of type []string`},
		{"shuffle sharding", `[{"hashring": "a", "endpoints": ["a:1"], "shuffle_sharding_config": {"shard_size": 2}}]`, Options{}, `hashrings[0] "a": shuffle_sharding_config: shuffle sharding is not supported by Weir`},
		{"no endpoints", `[{"hashring": "a", "endpoints": []}]`, Options{}, `hashrings[0] "a": endpoints: empty: a hashring needs at least one endpoint`},
		{"missing endpoints", `[{"hashring": "a"}]`, Options{}, `hashrings[0] "a": endpoints: empty: a hashring needs at least one endpoint`},
		{"empty address", `[{"hashring": "a", "endpoints": [{"az": "z"}]}]`, Options{}, `hashrings[0] "a": endpoints[0]: address "" is not host:port`},
		{"no port", `[{"hashring": "a", "endpoints": ["a"]}]`, Options{}, `hashrings[0] "a": endpoints[0]: address "a" is not host:port`},
		{"no host", `[{"hashring": "a", "endpoints": [":1"]}]`, Options{}, `hashrings[0] "a": endpoints[0]: address ":1" is not host:port`},
		{"duplicate endpoint", `[{"hashring": "a", "endpoints": ["a:1", "b:1", {"address": "a:1"}]}]`, Options{}, `hashrings[0] "a": endpoints[2]: duplicate endpoint "a:1" (also endpoints[0])`},
		{"duplicate name", `[{"hashring": "a", "tenants": ["x"], "endpoints": ["a:1"]}, {"hashring": "a", "endpoints": ["b:1"]}]`, Options{}, `hashrings[1] "a": hashring: name "a" is also the name of hashrings[0]`},
		{"tenant in two rings", `[{"hashring": "a", "tenants": ["x", "y"], "endpoints": ["a:1"]}, {"hashring": "b", "tenants": ["y"], "tenant_matcher_type": "exact", "endpoints": ["b:1"]}]`, Options{}, `hashrings[1] "b": tenants: "y" is also listed in hashrings[0] "a" (exact): a tenant belongs to one hashring`},
		{"glob in two rings", `[{"hashring": "a", "tenants": ["t-*"], "tenant_matcher_type": "glob", "endpoints": ["a:1"]}, {"hashring": "b", "tenants": ["t-*"], "tenant_matcher_type": "glob", "endpoints": ["b:1"]}]`, Options{}, `hashrings[1] "b": tenants: "t-*" is also listed in hashrings[0] "a" (glob): a tenant belongs to one hashring`},
		{"tenant twice in a ring", `[{"hashring": "a", "tenants": ["x", "x"], "endpoints": ["a:1"]}]`, Options{}, `hashrings[0] "a": tenants[1]: "x" is listed twice`},
		{"empty tenant", `[{"hashring": "a", "tenants": [""], "endpoints": ["a:1"]}]`, Options{}, `hashrings[0] "a": tenants[0]: empty tenant`},
		{"bad glob", `[{"hashring": "a", "tenants": ["team-["], "tenant_matcher_type": "glob", "endpoints": ["a:1"]}]`, Options{}, `hashrings[0] "a": tenants[0]: glob pattern "team-[": syntax error in pattern`},
		{"two default rings", `[{"hashring": "a", "endpoints": ["a:1"]}, {"hashring": "b", "tenants": [], "endpoints": ["b:1"]}]`, Options{}, `hashrings[1] "b": tenants: empty, and so is hashrings[0] "a": only one hashring may be the default (tenant-less) ring`},
		{"unknown algorithm", `[{"hashring": "a", "endpoints": ["a:1"], "algorithm": "rendezvous"}]`, Options{}, `hashrings[0] "a": algorithm: unknown algorithm "rendezvous" (want "ketama" or "hashmod")`},
		{"unknown matcher", `[{"hashring": "a", "tenants": ["x"], "tenant_matcher_type": "regex", "endpoints": ["a:1"]}]`, Options{}, `hashrings[0] "a": tenant_matcher_type: unknown matcher "regex" (want "exact" or "glob")`},
		{"rf above endpoints", `[{"hashring": "a", "endpoints": ["a:1", "b:1"]}]`, rf3, `hashrings[0] "a": endpoints: 2 endpoints are fewer than the replication factor 3`},
		{"zones below rf", `[{"hashring": "a", "algorithm": "ketama", "endpoints": [{"address": "a:1", "az": "z1"}, {"address": "b:1", "az": "z2"}, {"address": "c:1", "az": "z1"}]}]`, rf3, `hashrings[0] "a": endpoints: 2 distinct zones (az) are fewer than the replication factor 3: replicas must land in distinct zones`},
		{"some endpoints without az", `[{"hashring": "a", "endpoints": [{"address": "a:1", "az": "z1"}, "b:1"]}]`, ketama, `hashrings[0] "a": endpoints: endpoints[1] (b:1) has no az while other endpoints have one: give every endpoint an az, or none`},
		{"hashmod with az", `[{"hashring": "a", "algorithm": "hashmod", "endpoints": [{"address": "a:1", "az": "z1"}]}]`, Options{}, `hashrings[0] "a": endpoints: az is set but the hashmod algorithm cannot place replicas in distinct zones: use "algorithm": "ketama", or remove az`},
		{"bad external label name", `[{"hashring": "a", "endpoints": ["a:1"], "external_labels": {"a-b": "x"}}]`, Options{}, `hashrings[0] "a": external_labels: "a-b" is not a valid label name`},
		{"empty external label value", `[{"hashring": "a", "endpoints": ["a:1"], "external_labels": {"ring": ""}}]`, Options{}, `hashrings[0] "a": external_labels: "ring" has an empty value`},
		{"unnamed ring", `[{"endpoints": ["a:1"]}, {"tenants": ["x"], "endpoints": []}]`, Options{}, `hashrings[1]: endpoints: empty: a hashring needs at least one endpoint`},
		{"bad options", `[{"endpoints": ["a:1"]}]`, Options{DefaultAlgorithm: "modulo"}, `default hashring algorithm "modulo": want "hashmod" or "ketama"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.file), tc.opts)
			require.EqualError(t, err, tc.want)
			_, err = Load([]byte(tc.file), tc.opts)
			require.EqualError(t, err, tc.want)
		})
	}
}
