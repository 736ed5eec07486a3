package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/deploy/dashboards"
	"github.com/weir-metrics/weir/internal/testutil"
)

// TestDashboardMetricsExist: every metric that Weir's Grafana dashboard (deploy/dashboards) selects is
// in the /metrics of running Weir nodes that did what the dashboard shows: two nodes in a gossip ring
// (each routes and ingests, RF=2, so writes are forwarded to a peer) take writes of five hours of
// samples, whose completed blocks they cut and ship to a FILESYSTEM bucket. A histogram's _bucket,
// _sum and _count count as its name. A renamed or removed metric fails here, not on someone's
// screen.
func TestDashboardMetricsExist(t *testing.T) {
	requireBinary(t)
	want, err := dashboards.MetricNames()
	require.NoError(t, err)

	addrs := testutil.LoopbackAddrs(t, 4)
	grpcAddrs, gossipAddrs := addrs[:2], addrs[2:]
	bucket := t.TempDir()
	nodes := make([]*weirNode, 2)
	for i := range nodes {
		nodes[i] = startWeir(t, t.TempDir(), append(memberlistIngesterArgs(i, grpcAddrs[i], gossipAddrs[i], gossipAddrs[0], 2),
			fmt.Sprintf(`--label=replica="r%d"`, i),
			"--objstore.config="+fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", bucket),
			"--shipper.interval=1s")...)
	}
	waitFor(t, 30*time.Second, "both nodes in one ring of 2", func() error {
		for i, n := range nodes {
			if eps := getMemberlistStatus(t, n).endpoints(); len(eps) != 2 {
				return fmt.Errorf("node %d: ring %v", i, eps)
			}
		}
		return nil
	})

	// Five hours of one-minute samples: the heads cut and ship blocks while the nodes run.
	start := time.Now().Add(-5*time.Hour - 10*time.Minute).Truncate(time.Minute).UnixMilli()
	ts := series(lbls("__name__", "dashboard_test", "series", "0"))
	for i := range 300 {
		ts.Samples = append(ts.Samples, smp(start+int64(i)*60_000, float64(i)))
	}
	resp := nodes[0].Write(t, writeReq(ts), "THANOS-TENANT", "team-a")
	require.Equal(t, http.StatusNoContent, resp.Code, resp.String())
	waitFor(t, 60*time.Second, "blocks shipped by both nodes", func() error {
		metas, err := filepath.Glob(filepath.Join(bucket, "*", "meta.json"))
		if err != nil {
			return err
		}
		replicas := map[string]bool{}
		for _, m := range metas {
			meta, err := loadThanosMeta(filepath.Dir(m))
			if err != nil {
				return err
			}
			replicas[meta.Thanos.Labels["replica"]] = true
		}
		if len(replicas) != 2 {
			return fmt.Errorf("blocks of replicas %v in the bucket", replicas)
		}
		return nil
	})

	have := map[string]bool{}
	for _, n := range nodes {
		for name := range metricNames(t, n.client, n.OpsURL+"/metrics") {
			have[name] = true
		}
	}
	var missing []string
	for _, name := range want {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	require.Empty(t, missing, "metrics of the dashboard that no Weir node exposes")
	t.Logf("all %d metrics of the dashboard exposed: %s", len(want), strings.Join(want, " "))
}

// metricNames scrapes a /metrics endpoint and returns the names of its samples: a family's name, and
// for histograms and summaries also name_bucket (histograms), name_sum and name_count.
func metricNames(t *testing.T, c *http.Client, url string) map[string]bool {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, url)
	names := map[string]bool{}
	for name, f := range fams {
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"] = true
			fallthrough
		case dto.MetricType_SUMMARY:
			names[name+"_sum"], names[name+"_count"] = true, true
		default:
		}
	}
	return names
}
