package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

const installPrometheus = "GOBIN=$PWD/bin go install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0"

// prometheusBinary finds a Prometheus to send with: $WEIR_PROMETHEUS, else <repo>/bin/prometheus. When
// there is none the test is skipped, loudly — or fails when CI=true.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	return testutil.RequireTool(t, "WEIR_PROMETHEUS", "bin/prometheus", installPrometheus)
}

// prometheusNode is a Prometheus process that scrapes itself and remote-writes to weir.
type prometheusNode struct {
	proc *proc
	addr string // web listen address, also the scrape target
	url  string
}

// startPrometheus runs Prometheus scraping itself every second on a free loopback port and
// remote-writing to rwURL as tenant, and waits until it is ready.
func startPrometheus(t *testing.T, bin, rwURL, tenant string) *prometheusNode {
	t.Helper()
	// One shard, so batches leave in WAL order: once a sample is sent, everything scraped before
	// it was sent too.
	return startPrometheusWith(t, bin, fmt.Sprintf(`  - url: %q
    name: weir
    headers:
      THANOS-TENANT: %s
    queue_config:
      batch_send_deadline: 200ms
      min_shards: 1
      max_shards: 1
      min_backoff: 50ms
      max_backoff: 1s
`, rwURL, tenant))
}

// startPrometheusWith runs Prometheus scraping itself every second on a free loopback port with
// remoteWrite as the entries of its remote_write list (YAML, indented by two), and waits until it is
// ready.
func startPrometheusWith(t *testing.T, bin, remoteWrite string, extraArgs ...string) *prometheusNode {
	t.Helper()
	work := t.TempDir()
	logPath := filepath.Join(work, "prometheus.log")
	p := &prometheusNode{}
	cleanupProc(t, "prometheus", logPath, func() *proc { return p.proc })
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	for attempt := 1; ; attempt++ {
		p.addr = testutil.LoopbackAddrs(t, 1)[0]
		p.url = "http://" + p.addr
		cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [%q]
remote_write:
%s`, p.addr, remoteWrite)
		cfgPath := filepath.Join(work, "prometheus.yml")
		require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
		offset := fileSize(logPath)
		var err error
		p.proc, err = launch(logPath, work, bin, append([]string{
			"--config.file=" + cfgPath,
			"--storage.tsdb.path=" + filepath.Join(work, "tsdb"),
			"--web.listen-address=" + p.addr,
			"--log.level=info",
		}, extraArgs...)...)
		require.NoError(t, err)

		err = waitProcReady(p.proc, client, p.url+"/-/ready", readyTimeout)
		if err == nil {
			return p
		}
		if p.proc.exited() && attempt < 5 && strings.Contains(readFrom(logPath, offset), "address already in use") {
			t.Logf("prometheus could not bind %s (attempt %d), retrying", p.addr, attempt)
			continue
		}
		require.NoError(t, err, "prometheus did not become ready")
	}
}

// waitProcReady polls url until it answers 200, failing early if p exits.
func waitProcReady(p *proc, c *http.Client, url string, timeout time.Duration) error {
	return testutil.Poll(timeout, pollInterval, func() error {
		if p.exited() {
			return testutil.Permanent(fmt.Errorf("exited with code %d before it was ready", p.exitCode()))
		}
		code, _, err := httpGet(c, url)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%s answered %d", url, code)
		}
		return nil
	})
}

// TestPrometheusSender: a real Prometheus (v3, Remote Write 1.0) scrapes itself every second and
// remote-writes to one weir node with THANOS-TENANT: team-a. Once weir counts appended samples for
// team-a and Prometheus has sent samples scraped after that point (so the first scrape, `up` included,
// is through), both stop cleanly; team-a's TSDB on disk holds `up` and `prometheus_build_info` for the
// scrape target with timestamps from this run, Prometheus saw no failed samples, and no other tenant
// was created.
func TestPrometheusSender(t *testing.T) {
	t.Parallel()
	requireBinary(t)
	bin := prometheusBinary(t)
	dir := t.TempDir()
	n := startWeir(t, dir)
	start := time.Now()
	prom := startPrometheus(t, bin, n.RemoteWriteURL, "team-a")

	var firstAppended time.Time
	waitFor(t, 60*time.Second, "weir to append samples for team-a", func() error {
		if prom.proc.exited() {
			t.Fatalf("prometheus exited with code %d", prom.proc.exitCode())
		}
		v, _ := n.Metric(t, "weir_receive_appended_total", "tenant", "team-a", "kind", "sample")
		if v <= 0 {
			return fmt.Errorf("weir_receive_appended_total{tenant=\"team-a\",kind=\"sample\"} = %g", v)
		}
		firstAppended = time.Now()
		return nil
	})
	// Samples scraped a few seconds after the first ones arrived were sent: with one shard, everything
	// before them — the first scrapes with their `up` — was sent and acknowledged.
	mark := float64(firstAppended.Unix() + 2)
	waitFor(t, 60*time.Second, "prometheus to send samples scraped after the first ones arrived", func() error {
		if prom.proc.exited() {
			t.Fatalf("prometheus exited with code %d", prom.proc.exitCode())
		}
		v, ok, err := scrapeMetric(n.client, prom.url+"/metrics", "prometheus_remote_storage_queue_highest_sent_timestamp_seconds", "remote_name", "weir")
		if err != nil {
			return err
		}
		if !ok || v < mark {
			return fmt.Errorf("highest sent timestamp %g (found: %t), waiting for %g", v, ok, mark)
		}
		return nil
	})
	failed, _, err := scrapeMetric(n.client, prom.url+"/metrics", "prometheus_remote_storage_samples_failed_total", "remote_name", "weir")
	require.NoError(t, err)
	require.Zero(t, failed, "samples Prometheus failed to send")
	v, _ := n.Metric(t, "weir_receive_rejected_total", "tenant", "team-a")
	require.Zero(t, v, "points weir rejected")

	// Prometheus first (it flushes its queue to weir on shutdown), then weir.
	require.NoError(t, prom.proc.cmd.Process.Signal(os.Interrupt))
	require.True(t, prom.proc.wait(stopTimeout), "prometheus did not stop")
	require.Equal(t, 0, prom.proc.exitCode(), "prometheus exit code")
	n.Stop()
	end := time.Now()

	require.Equal(t, []string{"team-a"}, tenantDirs(t, dir))
	got := readTenant(t, dir, "team-a")
	for _, name := range []string{"up", "prometheus_build_info"} {
		// prometheus_build_info has more labels (version, revision, …): match on name and target.
		var k string
		for s := range got {
			if strings.HasPrefix(s, `{__name__="`+name+`",`) && strings.Contains(s, fmt.Sprintf(`instance=%q`, prom.addr)) && strings.Contains(s, `job="prometheus"`) {
				require.Empty(t, k, "two series of %s for the target: %s and %s", name, k, s)
				k = s
			}
		}
		require.NotEmpty(t, k, "no series %s{job=\"prometheus\",instance=%q} among the %d stored", name, prom.addr, len(got))
		var pts []sample
		for _, s := range got[k] {
			if !value.IsStaleNaN(s.V) {
				pts = append(pts, s)
			}
		}
		if name == "up" {
			require.GreaterOrEqual(t, len(pts), 2, "samples of %s", k) // one per scrape, failed ones too
		}
		// up is 0 for a scrape that timed out (a loaded machine), else 1, as is prometheus_build_info.
		require.True(t, slices.ContainsFunc(pts, func(s sample) bool { return s.V == 1 }), "%s: no successful scrape", k)
		for i, s := range pts {
			if name == "up" {
				require.Contains(t, []float64{0, 1}, s.V, "%s at %d", k, s.T)
			} else {
				require.Equal(t, 1.0, s.V, "%s at %d", k, s.T)
			}
			require.GreaterOrEqual(t, s.T, start.Add(-time.Minute).UnixMilli(), "%s: timestamp %s before the test", k, time.UnixMilli(s.T))
			require.LessOrEqual(t, s.T, end.Add(time.Minute).UnixMilli(), "%s: timestamp %s after the test", k, time.UnixMilli(s.T))
			if i > 0 {
				require.Greater(t, s.T, pts[i-1].T, "%s: timestamps must increase", k)
			}
		}
	}
	for k := range got {
		require.NotContains(t, k, "tenant_id", "tenant label stored inside a series")
	}
	t.Logf("team-a holds %d series from Prometheus", len(got))
}
