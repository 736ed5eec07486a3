package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestRingPrometheusRemoteWrite2: a real Prometheus 3 sends Remote Write 2.0 (protobuf_message:
// io.prometheus.write.v2.Request, with its metadata WAL records on) to a router in front of three
// ingesters, RF=3. Prometheus fails no sample (it counts a 2xx without the *-Written headers as a
// failure, so this also checks them), the router counts no quorum failure, and every ingester holds
// the scraped series and serves their metadata on /api/v1/metadata, and Thanos Query lists it over
// the ingesters' Metadata gRPC API: what Remote Write 1.0 cannot carry crossed the ring.
func TestRingPrometheusRemoteWrite2(t *testing.T) {
	t.Parallel()
	requireBinary(t)
	bin := prometheusBinary(t)
	thanos := testutil.RequireTool(t, "WEIR_THANOS", "bin/thanos", "make tools")
	grpcAddrs := testutil.LoopbackAddrs(t, 3)
	file := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, file, grpcAddrs...)
	ingesters := startIngesters(t, grpcAddrs)
	router := startWeir(t, t.TempDir(), routerArgs(file, 3, "ketama")...)

	prom := startPrometheusWith(t, bin, fmt.Sprintf(`  - url: %q
    name: weir
    protobuf_message: io.prometheus.write.v2.Request
    headers:
      THANOS-TENANT: team-v2
    queue_config:
      batch_send_deadline: 200ms
      min_shards: 1
      max_shards: 1
      min_backoff: 50ms
      max_backoff: 1s
`, router.RemoteWriteURL), "--enable-feature=metadata-wal-records")

	// Metadata reaches Prometheus' WAL once per series and change: wait until every ingester has the
	// metadata of a family Prometheus exposes from its first scrape.
	for i, n := range ingesters {
		waitFor(t, 90*time.Second, fmt.Sprintf("ingester %d to serve the metadata of prometheus_build_info", i), func() error {
			if prom.proc.exited() {
				t.Fatalf("prometheus exited with code %d", prom.proc.exitCode())
			}
			md, err := metadataOf(n, "team-v2", "prometheus_build_info")
			if err != nil {
				return err
			}
			if len(md) == 0 || md[0].Type != "gauge" || md[0].Help == "" {
				return fmt.Errorf("metadata of prometheus_build_info: %+v", md)
			}
			return nil
		})
	}
	md, err := metadataOf(ingesters[0], "team-v2", "prometheus_http_requests_total")
	require.NoError(t, err)
	require.NotEmpty(t, md)
	require.Equal(t, "counter", md[0].Type)

	// Thanos Query finds the metadata over the ingesters' Metadata gRPC API.
	queryAddrs := testutil.LoopbackAddrs(t, 2)
	args := []string{"query", "--grpc-address=" + queryAddrs[0], "--http-address=" + queryAddrs[1]}
	for _, addr := range grpcAddrs {
		args = append(args, "--endpoint="+addr)
	}
	startTool(t, "thanos-query", thanos, args...)
	waitFor(t, 60*time.Second, "Thanos Query to list the metadata of prometheus_build_info", func() error {
		code, body, err := httpGet(router.client, "http://"+queryAddrs[1]+"/api/v1/metadata?metric=prometheus_build_info")
		if err != nil {
			return err
		}
		var r struct {
			Data map[string][]metricMetadata `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK {
			return fmt.Errorf("status %d, %w: %s", code, err, body)
		}
		if got := r.Data["prometheus_build_info"]; len(got) == 0 || got[0].Type != "gauge" {
			return fmt.Errorf("metadata: %s", body)
		}
		return nil
	})

	sent, _, err := scrapeMetric(router.client, prom.url+"/metrics", "prometheus_remote_storage_samples_total", "remote_name", "weir")
	require.NoError(t, err)
	require.Positive(t, sent, "samples Prometheus sent")
	failed, _, err := scrapeMetric(router.client, prom.url+"/metrics", "prometheus_remote_storage_samples_failed_total", "remote_name", "weir")
	require.NoError(t, err)
	require.Zero(t, failed, "samples Prometheus failed to send (a 2xx without the *-Written headers counts as failed)")
	failures, _ := router.Metric(t, "weir_quorum_failures_total")
	require.Zero(t, failures)

	require.NoError(t, prom.proc.cmd.Process.Signal(os.Interrupt))
	require.True(t, prom.proc.wait(stopTimeout), "prometheus did not stop")
	stopAll(append([]*weirNode{router}, ingesters...)...)
	for i, n := range ingesters {
		got := readTenant(t, n.Dir, "team-v2")
		var up int
		for s := range got {
			if strings.HasPrefix(s, `{__name__="up",`) {
				up++
			}
		}
		require.Equal(t, 1, up, "ingester %d: series of up among %d", i, len(got))
	}
}

// metricMetadata is one entry of /api/v1/metadata.
type metricMetadata struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// metadataOf asks node n's /api/v1/metadata for metric as tenant.
func metadataOf(n *weirNode, tenant, metric string) ([]metricMetadata, error) {
	req, err := http.NewRequest(http.MethodGet, n.OpsURL+"/api/v1/metadata?metric="+metric, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("THANOS-TENANT", tenant)
	resp, err := n.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string                      `json:"status"`
		Data   map[string][]metricMetadata `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("/api/v1/metadata answered %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || body.Status != "success" {
		return nil, fmt.Errorf("/api/v1/metadata answered %d %s", resp.StatusCode, body.Status)
	}
	return body.Data[metric], nil
}
