package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestStoreAPIReadByThanosQuery: Thanos Query reads the data Weir received a moment ago over the
// StoreAPI on --grpc-address, before any block is cut or shipped.
//
//	test ──remote write (two tenants)──▶ weir ◀──StoreAPI (gRPC)── thanos query ◀──PromQL (HTTP)── test
//
// Thanos Query lists weir as a "receive" store with one label set per tenant, and PromQL over it
// returns exactly the written values, tenant selection by the tenant_id external label included, with
// the replica label deduplicated away.
func TestStoreAPIReadByThanosQuery(t *testing.T) {
	thanos := testutil.RequireTool(t, "WEIR_THANOS", "bin/thanos", "make tools")

	addrs := testutil.LoopbackAddrs(t, 3)
	weirGRPC, queryGRPC, queryHTTP := addrs[0], addrs[1], addrs[2]
	n := startWeir(t, t.TempDir(), "--grpc-address="+weirGRPC, `--label=replica="r1"`)

	// Ten samples 15s apart for three series per tenant; the values tell tenant, series and sample.
	const points = 10
	start := baseTime()
	want := map[string]map[string][]string{} // tenant → series → values
	for ti, tenantID := range []string{"team-a", "team-b"} {
		want[tenantID] = map[string][]string{}
		req := writeReq()
		for s := range 3 {
			ts := series(lbls("__name__", "storeapi_test", "series", strconv.Itoa(s)))
			for i := range points {
				v := float64(ti*1000 + s*100 + i)
				ts.Samples = append(ts.Samples, smp(start+int64(i)*15_000, v))
				want[tenantID][strconv.Itoa(s)] = append(want[tenantID][strconv.Itoa(s)], strconv.FormatFloat(v, 'f', -1, 64))
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		resp := n.Write(t, req, "THANOS-TENANT", tenantID)
		require.Equal(t, 204, resp.Code, resp.String())
	}

	startTool(t, "thanos-query", thanos, "query", "--endpoint="+weirGRPC, "--query.replica-label=replica",
		"--grpc-address="+queryGRPC, "--http-address="+queryHTTP)
	base := "http://" + queryHTTP

	// The stores page: weir as a receive, with each tenant's external labels.
	waitFor(t, 60*time.Second, "Thanos Query listing weir with both tenants", func() error {
		code, body, err := httpGet(n.client, base+"/api/v1/stores")
		if err != nil {
			return err
		}
		if code != 200 {
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
		if len(stores) != 1 || stores[0].Name != weirGRPC || stores[0].LastError != nil {
			return fmt.Errorf("stores: %s", body)
		}
		wantSets := []map[string]string{{"replica": "r1", "tenant_id": "team-a"}, {"replica": "r1", "tenant_id": "team-b"}}
		if !slices.EqualFunc(stores[0].LabelSets, wantSets, func(a, b map[string]string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
			return fmt.Errorf("label sets %v, want %v", stores[0].LabelSets, wantSets)
		}
		return nil
	})

	rangeQuery := func(query string) (map[string][]string, error) {
		return thanosRangeQuery(n.client, base, query, start, start+(points-1)*15_000, 15*time.Second, true)
	}
	expect := func(tenants ...string) map[string][]string {
		out := map[string][]string{}
		for _, tenantID := range tenants {
			for s, vals := range want[tenantID] {
				out[tenantID+"/"+s] = vals
			}
		}
		return out
	}

	for _, tc := range []struct {
		query string
		want  map[string][]string
	}{
		{`storeapi_test`, expect("team-a", "team-b")},
		{`storeapi_test{tenant_id="team-a"}`, expect("team-a")},
		{`{tenant_id="team-b"}`, expect("team-b")},
		{`storeapi_test{tenant_id="team-b",series="1"}`, map[string][]string{"team-b/1": want["team-b"]["1"]}},
		{`storeapi_test{tenant_id="nobody"}`, map[string][]string{}},
	} {
		got, err := rangeQuery(tc.query)
		require.NoError(t, err, tc.query)
		require.Equal(t, tc.want, got, tc.query)
	}

	// Label APIs go through LabelNames and LabelValues.
	code, body, err := httpGet(n.client, base+"/api/v1/label/tenant_id/values")
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	require.JSONEq(t, `{"status":"success","data":["team-a","team-b"]}`, body)
	code, body, err = httpGet(n.client, base+"/api/v1/labels?"+url.Values{"match[]": {`storeapi_test{tenant_id="team-a"}`}}.Encode())
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	// Thanos Query asks label names with the replica label kept (as against Thanos Receive).
	require.JSONEq(t, `{"status":"success","data":["__name__","replica","series","tenant_id"]}`, body)

	// Weir counted the reads it served. (Not an exact count: Thanos Query may cancel a Series call it
	// no longer needs, which is then counted under another result.)
	v, ok := n.Metric(t, "weir_store_requests_total", "method", "Series", "result", "success")
	require.True(t, ok)
	require.Positive(t, v)
}

func seconds(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }

// thanosRangeQuery asks the query API at base for query over [start, end] (ms) at step and returns,
// by "tenant/series" (plus "/replica" without deduplication), the values at every step. It fails when
// a step's timestamp is not start + i·step, a series comes twice, or deduplication left a replica
// label.
func thanosRangeQuery(client *http.Client, base, query string, start, end int64, step time.Duration, dedup bool) (map[string][]string, error) {
	q := url.Values{"query": {query}, "start": {seconds(start)}, "end": {seconds(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
		"dedup": {strconv.FormatBool(dedup)}}
	result, err := queryAPI(client, base+"/api/v1/query_range?"+q.Encode())
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, s := range result {
		k := s.Metric["tenant_id"] + "/" + s.Metric["series"]
		replica, ok := s.Metric["replica"]
		if dedup && ok {
			return nil, fmt.Errorf("replica label not deduplicated away: %v", s.Metric)
		}
		if !dedup {
			k += "/" + replica
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("series %v returned twice", s.Metric)
		}
		for i, v := range s.Values {
			if ts := int64(v[0].(float64) * 1000); ts != start+int64(i)*step.Milliseconds() {
				return nil, fmt.Errorf("%s: timestamp %d at step %d", k, ts, i)
			}
			out[k] = append(out[k], v[1].(string))
		}
	}
	return out, nil
}

// promResult is one series of a Prometheus query API answer: an instant vector's Value or a matrix's
// Values.
type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

// queryAPI GETs a query API URL (/api/v1/query or /api/v1/query_range with its parameters) and
// returns the series of the answer; any status but 200 is an error.
func queryAPI(client *http.Client, u string) ([]promResult, error) {
	code, body, err := httpGet(client, u)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", code, body)
	}
	var r struct {
		Data struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil, fmt.Errorf("%w: %s", err, body)
	}
	return r.Data.Result, nil
}
