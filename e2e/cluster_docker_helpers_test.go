//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
	"github.com/weir-metrics/weir/loadgen"
)

// Helpers of the container cluster tests (cluster_docker_test.go): a private Docker network with three
// router+ingester containers named like StatefulSet pods, `weir bench` on the host as the sender, and a
// verifier that reads every node's TSDB back from the host after a clean stop.

// dockerImage returns the image under test, skipping (loudly; failing on CI) when Docker or the image
// is missing.
func dockerImage(t *testing.T) string {
	t.Helper()
	image := os.Getenv("WEIR_IMAGE")
	if image == "" {
		image = "weir:dev"
	}
	testutil.RequireDocker(t, "make docker-test", image)
	requireBinary(t)
	return image
}

// dockerNode is one container: its stable host name in the network (weir-ingester-N or
// weir-router-N), the container's unique name on the Docker host, and its data directory on the host
// (kept across restarts; empty for a router, which stores nothing).
type dockerNode struct {
	host      string
	container string
	dataDir   string
	router    bool
	ops       string // loopback URL of the published ops port, set by waitReady (changes with every start)
}

// endpoint is the node's address in the hashrings file.
func (n *dockerNode) endpoint() string { return n.host + ":10901" }

// dockerCluster is a private network with ingesters that also route (RF=3, quorum 2), and optionally
// router-only nodes in front of them (clusterOptions).
type dockerCluster struct {
	t       *testing.T
	image   string
	id      string
	network string
	ringDir string
	opts    clusterOptions
	nodes   []*dockerNode // the ingesters, in ring order; the verifier reads their data directories
	routers []*dockerNode // router-only nodes (clusterOptions.routers)
}

// startDockerCluster creates a network and n ingesters over a hashrings file, waits until all are
// ready, and registers the cleanup (container logs on failure, then containers and network removed).
func startDockerCluster(t *testing.T, n int) *dockerCluster {
	t.Helper()
	return startDockerClusterWith(t, clusterOptions{ingesters: n})
}

func (c *dockerCluster) cleanup() {
	for _, nd := range c.all() {
		if c.t.Failed() {
			out, _ := exec.Command("docker", "logs", nd.container).CombinedOutput()
			c.t.Logf("logs of %s (%s):\n%s", nd.host, nd.container, out)
		}
		_ = exec.Command("docker", "rm", "-f", nd.container).Run()
	}
	_ = exec.Command("docker", "network", "rm", c.network).Run()
}

// all is every node of the cluster: routers first, then ingesters.
func (c *dockerCluster) all() []*dockerNode {
	return append(append([]*dockerNode{}, c.routers...), c.nodes...)
}

// remoteWrite is the loopback URL of a node's published remote-write port.
func (c *dockerCluster) remoteWrite(nd *dockerNode) string {
	rw, _ := dockerPorts(c.t, nd.container)
	return rw
}

// waitReady waits until the node answers /-/ready on its published ops port (which changes with
// every start of the container).
func (c *dockerCluster) waitReady(nd *dockerNode) {
	c.t.Helper()
	_, ops := dockerPorts(c.t, nd.container)
	dockerWaitReady(c.t, ops)
	nd.ops = ops
}

// forwardSuccesses is from's count of successful writes to to's endpoint
// (weir_forward_requests_total{result="success"}).
func (c *dockerCluster) forwardSuccesses(from, to *dockerNode) float64 {
	c.t.Helper()
	ops := from.ops
	if ops == "" {
		_, ops = dockerPorts(c.t, from.container)
	}
	v, _, err := scrapeMetric(http.DefaultClient, ops+"/metrics", "weir_forward_requests_total", "endpoint", to.endpoint(), "result", "success")
	require.NoError(c.t, err)
	return v
}

// waitForwarding waits until from has written successfully to to again (after a restart or a
// partition): the moment to has rejoined the write path.
func (c *dockerCluster) waitForwarding(from, to *dockerNode, timeout time.Duration) {
	c.t.Helper()
	before := c.forwardSuccesses(from, to)
	testutil.EventuallyTrue(c.t, timeout, 100*time.Millisecond, fmt.Sprintf("%s to write successfully to %s", from.host, to.host),
		func() bool { return c.forwardSuccesses(from, to) > before })
}

// disconnect takes the node off the network (its peers' packets go nowhere); connect puts it back
// under the same name.
func (c *dockerCluster) disconnect(nd *dockerNode) {
	dockerCmd(c.t, "network", "disconnect", c.network, nd.container)
}

func (c *dockerCluster) connect(nd *dockerNode) {
	dockerCmd(c.t, "network", "connect", "--alias", nd.host, c.network, nd.container)
}

// stopAll stops every container with SIGTERM (60 s grace), in parallel, and requires a clean exit
// (also of a node stopped before).
func (c *dockerCluster) stopAll() {
	c.t.Helper()
	c.stopNodes(c.all()...)
}

// stopNodes stops the given containers with SIGTERM (60 s grace), in parallel, and requires a clean
// exit.
func (c *dockerCluster) stopNodes(nodes ...*dockerNode) {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, nd := range nodes {
		wg.Go(func() {
			if out, err := exec.Command("docker", "stop", "-t", "60", nd.container).CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("docker stop %s: %w: %s", nd.container, err, out)
			}
		})
	}
	wg.Wait()
	for i, nd := range nodes {
		require.NoError(c.t, errs[i])
		code := strings.TrimSpace(dockerCmd(c.t, "inspect", "-f", "{{.State.ExitCode}}", nd.container))
		require.Equal(c.t, "0", code, "exit code of %s after SIGTERM", nd.host)
	}
}

// benchRun is `weir bench` running on the host against one node's published remote-write port.
type benchRun struct {
	cmd    *exec.Cmd
	ackLog string
	report string
	stderr string
	done   chan error
}

// startBench starts a small steady load (2 workers, 300 series, rate-limited) for duration.
func startBench(t *testing.T, url string, duration time.Duration) *benchRun {
	t.Helper()
	return startBenchWith(t, url, benchOptions{duration: duration})
}

// benchOptions vary the load of startBenchWith; the zero value is startBench's load.
type benchOptions struct {
	// duration of the run; 0 runs until stop.
	duration time.Duration
	// rate in samples/s over both workers (0: 3000).
	rate float64
	// labelsPerSeries (0: 6). Two runs with different values send disjoint series, so that two
	// senders never write the same series (which would make each other's samples out of order).
	labelsPerSeries int
}

// startBenchWith starts `weir bench` with an ack log (2 workers, 300 series, 100 samples per request).
func startBenchWith(t *testing.T, url string, o benchOptions) *benchRun {
	t.Helper()
	if o.rate == 0 {
		o.rate = 3000
	}
	if o.labelsPerSeries == 0 {
		o.labelsPerSeries = 6
	}
	dir := t.TempDir()
	b := &benchRun{ackLog: filepath.Join(dir, "ack.log"), report: filepath.Join(dir, "report.json"),
		stderr: filepath.Join(dir, "bench.stderr"), done: make(chan error, 1)}
	out, err := os.Create(b.report)
	require.NoError(t, err)
	errf, err := os.Create(b.stderr)
	require.NoError(t, err)
	b.cmd = exec.Command(weirBinary, "bench", "--url="+url,
		"--series=300", "--samples-per-request=100", fmt.Sprintf("--labels-per-series=%d", o.labelsPerSeries),
		"--concurrency=2", fmt.Sprintf("--rate=%g", o.rate), "--timeout=15s",
		fmt.Sprintf("--duration=%dms", o.duration.Milliseconds()),
		"--ack-log="+b.ackLog, "--output=json")
	b.cmd.Stdout, b.cmd.Stderr = out, errf
	require.NoError(t, b.cmd.Start())
	go func() {
		err := b.cmd.Wait()
		_ = out.Close()
		_ = errf.Close()
		b.done <- err
	}()
	t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// stop ends a run (SIGINT: requests in flight finish, the ack log is flushed) and returns its report.
func (b *benchRun) stop(t *testing.T) loadgen.Report {
	t.Helper()
	require.NoError(t, b.cmd.Process.Signal(os.Interrupt))
	return b.wait(t, 60*time.Second)
}

// acked counts the acknowledged requests in the ack log so far (it is flushed once a second).
func (b *benchRun) acked() int {
	data, err := os.ReadFile(b.ackLog)
	if err != nil {
		return 0
	}
	n := strings.Count(string(data), "\n")
	return max(n-1, 0) // the header
}

// waitAcked waits until at least n more requests than now are acknowledged, or fails after timeout.
func (b *benchRun) waitAcked(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	want := b.acked() + n
	testutil.Eventually(t, timeout, 100*time.Millisecond, fmt.Sprintf("%d requests of the load to be acknowledged", want), func() error {
		if got := b.acked(); got < want {
			return fmt.Errorf("%d acknowledged", got)
		}
		return nil
	})
}

// wait waits for the end of the run and returns its report. Exit code 1 (some requests failed) is
// expected under faults; anything else is not.
func (b *benchRun) wait(t *testing.T, timeout time.Duration) loadgen.Report {
	t.Helper()
	select {
	case err := <-b.done:
		stderr, _ := os.ReadFile(b.stderr)
		var ee *exec.ExitError
		if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
			t.Fatalf("weir bench: %v\n%s", err, stderr)
		}
	case <-time.After(timeout):
		t.Fatalf("weir bench still running after %s", timeout)
	}
	data, err := os.ReadFile(b.report)
	require.NoError(t, err)
	var r loadgen.Report
	require.NoError(t, json.Unmarshal(data, &r), "report: %s", data)
	return r
}

// quorumResult is what the verifier found.
type quorumResult struct {
	acked     int     // acknowledged samples in the ack log
	lost      int     // acknowledged samples on fewer than quorum nodes
	diverging int     // acknowledged samples stored with another value on some node
	replicas  int     // copies found over all nodes
	newest    []int64 // per node, the newest acknowledged sample's timestamp it holds (ms)
	held      []int   // per node, the acknowledged samples it holds
}

// verifyQuorum checks that every sample in the ack log is stored, with its value, on at least quorum
// of the nodes' TSDBs (read from the host data directories; the cluster must be stopped).
func verifyQuorum(t *testing.T, c *dockerCluster, ackLog string, quorum int) quorumResult {
	t.Helper()
	return verifyQuorumLogs(t, c, quorum, ackLog)
}

// nodeStore is what one node holds: tenant → series → timestamp → value bits.
type nodeStore map[string]map[string]map[int64]uint64

// storeDir is one ingester's data directory on this machine and the name failures report it by.
type storeDir struct{ name, dir string }

// storeDirs are the data directories of every node of c.
func (c *dockerCluster) storeDirs() []storeDir {
	dirs := make([]storeDir, len(c.nodes))
	for i, nd := range c.nodes {
		dirs[i] = storeDir{name: nd.host, dir: nd.dataDir}
	}
	return dirs
}

// readNodeStores reads the TSDBs of every data directory (their nodes must be stopped).
func readNodeStores(t *testing.T, dirs []storeDir) []nodeStore {
	t.Helper()
	nodes := make([]nodeStore, len(dirs))
	for i, d := range dirs {
		nodes[i] = nodeStore{}
		for _, tenant := range tenantDirs(t, d.dir) {
			series := map[string]map[int64]uint64{}
			for k, samples := range readTenant(t, d.dir, tenant) {
				m := make(map[int64]uint64, len(samples))
				for _, s := range samples {
					m[s.T] = math.Float64bits(s.V)
				}
				series[k] = m
			}
			nodes[i][tenant] = series
		}
	}
	return nodes
}

// verifyQuorumLogs checks that every sample in the ack logs is stored, with its value, on at least
// quorum of all the nodes' TSDBs, wherever the ring put it: after a ring change a series' replicas
// move, so the copies are counted over every node that ever was an ingester.
func verifyQuorumLogs(t *testing.T, c *dockerCluster, quorum int, ackLogs ...string) quorumResult {
	t.Helper()
	return verifyQuorumDirs(t, c.storeDirs(), quorum, ackLogs...)
}

// verifyQuorumDirs is verifyQuorumLogs over data directories (whose nodes must be stopped).
func verifyQuorumDirs(t *testing.T, dirs []storeDir, quorum int, ackLogs ...string) quorumResult {
	t.Helper()
	nodes := readNodeStores(t, dirs)
	res := quorumResult{newest: make([]int64, len(dirs)), held: make([]int, len(dirs))}
	var examples []string
	for _, ackLog := range ackLogs {
		spec, records, err := loadgen.ReadAckLog(ackLog)
		require.NoError(t, err)
		for rec, err := range records {
			require.NoError(t, err)
			for s := range rec.Samples(spec) {
				res.acked++
				k := s.Labels.String()
				want := math.Float64bits(s.Value)
				found := 0
				for i := range nodes {
					v, ok := nodes[i][s.Tenant][k][s.Timestamp]
					if !ok {
						continue
					}
					if v != want {
						res.diverging++
						if len(examples) < 5 {
							examples = append(examples, fmt.Sprintf("%s %s@%d on %s: %v, acknowledged %v",
								s.Tenant, k, s.Timestamp, dirs[i].name, math.Float64frombits(v), s.Value))
						}
						continue
					}
					found++
					res.held[i]++
					res.newest[i] = max(res.newest[i], s.Timestamp)
				}
				res.replicas += found
				if found < quorum {
					res.lost++
					if len(examples) < 5 {
						examples = append(examples, fmt.Sprintf("%s %s@%d on %d node(s)", s.Tenant, k, s.Timestamp, found))
					}
				}
			}
		}
	}
	require.Positive(t, res.acked, "no acknowledged sample to verify")
	require.Zero(t, res.lost+res.diverging, "acknowledged samples lost (%d) or diverging (%d); first: %s",
		res.lost, res.diverging, strings.Join(examples, "; "))
	return res
}

// non2xx counts the requests of a run that were not acknowledged (by status, and transport errors).
func non2xx(r loadgen.Report) (total int64, byStatus string) {
	var parts []string
	for code, n := range r.ErrorsByStatus {
		total += n
		parts = append(parts, fmt.Sprintf("%s:%d", code, n))
	}
	if r.TransportErrors > 0 {
		total += r.TransportErrors
		parts = append(parts, fmt.Sprintf("transport:%d", r.TransportErrors))
	}
	return total, strings.Join(parts, " ")
}
