package e2e

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTSDBStatusRing: each node of a 3-node ring with RF=1 answers /api/v1/status/tsdb, in Thanos
// Receive's format, for its own share of a tenant's series: the shares add up to what was written,
// and every node holding series lists the metric.
func TestTSDBStatusRing(t *testing.T) {
	t.Parallel()
	nodes := startRouterIngesters(t, 1, []string{t.TempDir(), t.TempDir(), t.TempDir()})
	const n = 60
	req := writeReq()
	for i := range n {
		req.Timeseries = append(req.Timeseries, series(lbls("__name__", "status_probe", "i", fmt.Sprint(i)), smp(baseTime(), 1)))
	}
	r := nodes[0].Write(t, req, "THANOS-TENANT", "team-s")
	require.Equal(t, 204, r.Code, "%s", r)

	total := 0
	for i, node := range nodes {
		code, body := node.Get(t, "/api/v1/status/tsdb?all_tenants=true")
		require.Equal(t, 200, code, body)
		var resp struct {
			Status string `json:"status"`
			Data   []struct {
				Tenant    string `json:"tenant"`
				HeadStats struct {
					NumSeries uint64 `json:"numSeries"`
				} `json:"headStats"`
				SeriesCountByMetricName []struct {
					Name  string `json:"name"`
					Value uint64 `json:"value"`
				} `json:"seriesCountByMetricName"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &resp), body)
		require.Equal(t, "success", resp.Status)
		for _, s := range resp.Data {
			require.Equal(t, "team-s", s.Tenant, "node %d", i)
			require.Positive(t, s.HeadStats.NumSeries, "node %d", i)
			require.Equal(t, "status_probe", s.SeriesCountByMetricName[0].Name)
			require.Equal(t, s.HeadStats.NumSeries, s.SeriesCountByMetricName[0].Value)
			total += int(s.HeadStats.NumSeries)
			t.Logf("node %d holds %d of the %d series", i, s.HeadStats.NumSeries, n)
		}
	}
	require.Equal(t, n, total, "RF=1: every series on exactly one node")
}
