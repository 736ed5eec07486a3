package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestStoreAPIRingReadByThanosQuery: Thanos Query over a Weir ring reads every ingester's fresh data
// and deduplicates the replicas, as it does over Thanos Receive.
//
//	test ──remote write (two tenants)──▶ node 0 ──gRPC──▶ node 1, node 2     (RF=3: every node a copy)
//	                                       ▲        ▲        ▲
//	                                       └──── StoreAPI ───┘◀── thanos query --endpoint ×3
//	                                                               --query.replica-label=replica
//
// Three router+ingester nodes, each with --receive.local-endpoint and its own replica label r1…r3.
// Asserted: Thanos Query's stores page lists the three nodes as receive stores, each with both tenants'
// label sets; without deduplication every series comes three times (r1, r2, r3) with the same values
// (so each node serves its copy); with deduplication (the default) PromQL range queries return exactly
// the written values, one copy per series without the replica label, and a tenant_id matcher selects
// the tenant.
func TestStoreAPIRingReadByThanosQuery(t *testing.T) {
	t.Parallel()
	thanos := testutil.RequireTool(t, "WEIR_THANOS", "bin/thanos", "make tools")

	grpcAddrs := testutil.LoopbackAddrs(t, 3)
	file := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, file, grpcAddrs...)
	nodes := make([]*weirNode, 3)
	replicas := make([]string, 3)
	for i, addr := range grpcAddrs {
		replicas[i] = "r" + strconv.Itoa(i+1)
		nodes[i] = startWeir(t, t.TempDir(), routerArgs(file, 3, "ketama",
			"--grpc-address="+addr, "--receive.local-endpoint="+addr, `--label=replica="`+replicas[i]+`"`)...)
	}

	// Ten samples 15 s apart for four series per tenant, all written through node 0; a value tells
	// tenant, series and sample.
	const points, seriesPerTenant = 10, 4
	tenants := []string{"team-a", "team-b"}
	start := baseTime()
	end := start + (points-1)*15_000
	want := map[string][]string{} // "tenant/series" → values
	for ti, tenantID := range tenants {
		req := writeReq()
		for s := range seriesPerTenant {
			ts := series(lbls("__name__", "storeapi_ring_test", "series", strconv.Itoa(s)))
			k := tenantID + "/" + strconv.Itoa(s)
			for i := range points {
				v := float64(ti*1000 + s*100 + i)
				ts.Samples = append(ts.Samples, smp(start+int64(i)*15_000, v))
				want[k] = append(want[k], strconv.FormatFloat(v, 'f', -1, 64))
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		resp := nodes[0].Write(t, req, "THANOS-TENANT", tenantID)
		require.Equal(t, http.StatusNoContent, resp.Code, resp.String())
	}

	queryAddrs := testutil.LoopbackAddrs(t, 2)
	args := []string{"query", "--query.replica-label=replica", "--grpc-address=" + queryAddrs[0], "--http-address=" + queryAddrs[1]}
	for _, addr := range grpcAddrs {
		args = append(args, "--endpoint="+addr)
	}
	startTool(t, "thanos-query", thanos, args...)
	base := "http://" + queryAddrs[1]
	client := nodes[0].client

	// The stores page: three receive stores, each with one label set per tenant.
	waitFor(t, 60*time.Second, "Thanos Query listing the three ingesters with both tenants", func() error {
		code, body, err := httpGet(client, base+"/api/v1/stores")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d: %s", code, body)
		}
		var r struct {
			Data map[string][]struct {
				Name      string              `json:"name"`
				LastError *string             `json:"lastError"`
				LabelSets []map[string]string `json:"labelSets"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return err
		}
		stores := r.Data["receive"]
		if len(stores) != len(grpcAddrs) {
			return fmt.Errorf("%d receive stores, want %d: %s", len(stores), len(grpcAddrs), body)
		}
		var names []string
		for _, st := range stores {
			names = append(names, st.Name)
			j := slices.Index(grpcAddrs, st.Name)
			if j < 0 {
				return fmt.Errorf("unknown store %s: %s", st.Name, body)
			}
			if st.LastError != nil {
				return fmt.Errorf("store %s: last error %s", st.Name, *st.LastError)
			}
			var got []string
			for _, ls := range st.LabelSets {
				got = append(got, fmt.Sprint(ls))
			}
			slices.Sort(got)
			var wantSets []string
			for _, tenantID := range tenants {
				wantSets = append(wantSets, fmt.Sprint(map[string]string{"replica": replicas[j], "tenant_id": tenantID}))
			}
			if !slices.Equal(got, wantSets) {
				return fmt.Errorf("store %s: label sets %v, want %v", st.Name, got, wantSets)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, slices.Sorted(slices.Values(grpcAddrs))) {
			return fmt.Errorf("stores %v, want %v", names, grpcAddrs)
		}
		return nil
	})

	rangeQuery := func(query string, dedup bool) (map[string][]string, error) {
		return thanosRangeQuery(client, base, query, start, end, 15*time.Second, dedup)
	}
	expect := func(tenants ...string) map[string][]string {
		out := map[string][]string{}
		for k, vals := range want {
			if slices.Contains(tenants, strings.SplitN(k, "/", 2)[0]) {
				out[k] = vals
			}
		}
		return out
	}

	// Without deduplication: three copies of everything, one per node (replication to nodes 1 and 2
	// may finish after the 204, hence the wait).
	wantAll := map[string][]string{}
	for k, vals := range want {
		for _, r := range replicas {
			wantAll[k+"/"+r] = vals
		}
	}
	waitFor(t, 30*time.Second, "every replica of every series through Thanos Query", func() error {
		got, err := rangeQuery(`storeapi_ring_test`, false)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(wantAll) {
			return fmt.Errorf("got %v, want %v", got, wantAll)
		}
		return nil
	})

	// Deduplicated: exactly what was written, once.
	for _, tc := range []struct {
		query string
		want  map[string][]string
	}{
		{`storeapi_ring_test`, expect("team-a", "team-b")},
		{`storeapi_ring_test{tenant_id="team-a"}`, expect("team-a")},
		{`{tenant_id="team-a"}`, expect("team-a")},
		{`{tenant_id="team-b"}`, expect("team-b")},
		{`storeapi_ring_test{tenant_id="team-b",series="2"}`, map[string][]string{"team-b/2": want["team-b/2"]}},
		{`storeapi_ring_test{replica="r2",tenant_id="team-a"}`, expect("team-a")},
		{`storeapi_ring_test{tenant_id="nobody"}`, map[string][]string{}},
	} {
		got, err := rangeQuery(tc.query, true)
		require.NoError(t, err, tc.query)
		require.Equal(t, tc.want, got, tc.query)
	}

	// Every node served Series calls.
	for i, n := range nodes {
		v, ok := n.Metric(t, "weir_store_requests_total", "method", "Series", "result", "success")
		require.True(t, ok, "node %d", i)
		require.Positive(t, v, "node %d", i)
	}
}
