//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// Helpers of TestDockerRouterKilledPrometheusRetries: a router-only container published on a fixed
// loopback port (so that a restarted container keeps the address the sender writes to), and a real
// Prometheus on the host scraping itself and the ingesters and remote-writing to that router.

// routerContainer is a router-only node (a hashrings file, no local endpoint) in the cluster's network.
type routerContainer struct {
	t         *testing.T
	container string
	rwAddr    string // fixed 127.0.0.1:port of its remote-write port on the host
}

// startRouterContainer runs a router over the cluster's ring with its remote-write port published on a
// fixed loopback port (chosen free now), waits until it is ready, and removes it at the end.
func startRouterContainer(t *testing.T, c *dockerCluster) *routerContainer {
	t.Helper()
	r := &routerContainer{t: t, container: c.network + "-weir-router", rwAddr: testutil.LoopbackAddrs(t, 1)[0]}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", r.container).CombinedOutput()
			t.Logf("logs of the router (%s):\n%s", r.container, out)
		}
		_ = exec.Command("docker", "rm", "-f", r.container).Run()
	})
	dockerCmd(t, "run", "-d", "--name", r.container, "--hostname", "weir-router",
		"--network", c.network, "-v", c.ringDir+":/etc/weir:ro",
		"-p", r.rwAddr+":19291", "-p", "127.0.0.1::10902",
		c.image, "receive",
		"--receive.hashrings-file=/etc/weir/hashrings.json",
		"--receive.replication-factor=3",
		"--receive.forward-timeout=20s") // long: a forward to a paused ingester hangs until the kill
	r.waitReady()
	return r
}

func (r *routerContainer) url() string { return "http://" + r.rwAddr + "/api/v1/receive" }

// ops is the router's ops URL (its host port changes with every start; the remote-write one does not).
func (r *routerContainer) ops() string {
	r.t.Helper()
	return "http://" + strings.TrimSpace(strings.Split(dockerCmd(r.t, "port", r.container, "10902"), "\n")[0])
}

func (r *routerContainer) waitReady() { r.t.Helper(); dockerWaitReady(r.t, r.ops()) }

// acked is the number of remote-write requests the router answered 204 since it (re)started.
func (r *routerContainer) acked() float64 {
	v, _, err := scrapeMetric(http.DefaultClient, r.ops()+"/metrics", "weir_http_requests_total", "code", "204")
	require.NoError(r.t, err)
	return v
}

// inFlight is the number of forwards the router has in flight.
func (r *routerContainer) inFlight() float64 {
	v, _, err := scrapeMetric(http.DefaultClient, r.ops()+"/metrics", "weir_forward_inflight_requests")
	require.NoError(r.t, err)
	return v
}

// senderPrometheus is a Prometheus process on the host, its TSDB directory, and its web URL.
type senderPrometheus struct {
	proc    *proc
	url     string
	dataDir string // the parent of its TSDB directory "tsdb"
	logPath string
}

// startSenderPrometheus runs Prometheus scraping itself and targets every second and remote-writing to
// rwURL as tenantID with one shard (batches leave in WAL order, so once the highest sent timestamp
// passes a mark, everything scraped a few seconds before it was acknowledged) and a short backoff.
func startSenderPrometheus(t *testing.T, rwURL, tenantID string, targets []string) *senderPrometheus {
	t.Helper()
	bin := prometheusBinary(t)
	work := t.TempDir()
	logPath := filepath.Join(work, "prometheus.log")
	p := &senderPrometheus{dataDir: work, logPath: logPath}
	cleanupProc(t, "prometheus", logPath, func() *proc { return p.proc })
	for attempt := 1; ; attempt++ {
		addr := testutil.LoopbackAddrs(t, 1)[0]
		p.url = "http://" + addr
		cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [%q]
  - job_name: weir
    static_configs:
      - targets: [%s]
remote_write:
  - url: %q
    name: weir
    headers:
      THANOS-TENANT: %s
    queue_config:
      batch_send_deadline: 200ms
      max_samples_per_send: 2000
      min_shards: 1
      max_shards: 1
      min_backoff: 50ms
      max_backoff: 1s
`, addr, `"`+strings.Join(targets, `", "`)+`"`, rwURL, tenantID)
		cfgPath := filepath.Join(work, "prometheus.yml")
		require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
		offset := fileSize(logPath)
		var err error
		p.proc, err = launch(logPath, work, bin, "--config.file="+cfgPath,
			"--storage.tsdb.path="+filepath.Join(work, "tsdb"), "--web.listen-address="+addr, "--log.level=info")
		require.NoError(t, err)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
		err = waitProcReady(p.proc, client, p.url+"/-/ready", readyTimeout)
		client.CloseIdleConnections()
		if err == nil {
			return p
		}
		if p.proc.exited() && attempt < 5 && strings.Contains(readFrom(logPath, offset), "address already in use") {
			continue
		}
		require.NoError(t, err, "prometheus did not become ready")
	}
}

// metric is a remote-write metric of Prometheus for the queue "weir".
func (p *senderPrometheus) metric(t *testing.T, name string) float64 {
	t.Helper()
	v, _, err := scrapeMetric(http.DefaultClient, p.url+"/metrics", name, "remote_name", "weir")
	require.NoError(t, err)
	return v
}

// stop stops Prometheus with SIGINT (it flushes its queue) and requires a clean exit.
func (p *senderPrometheus) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.proc.cmd.Process.Signal(os.Interrupt))
	require.True(t, p.proc.wait(stopTimeout), "prometheus did not stop")
	require.Equal(t, 0, p.proc.exitCode(), "prometheus exit code")
}

// cutRequests counts the sends that Prometheus logged as failed because the connection broke in the
// middle of the request (reset or EOF, as opposed to refused): requests in flight when the router died.
func (p *senderPrometheus) cutRequests() int {
	n := 0
	for line := range strings.Lines(readFrom(p.logPath, 0)) {
		if strings.Contains(line, "retrying") && (strings.Contains(line, "connection reset") || strings.Contains(line, "EOF")) {
			n++
		}
	}
	return n
}
