//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// A real S3 server in the cluster's network (versitygw, static, FROM scratch: `make docker-s3`) and a
// cluster of Weir containers shipping to it. The server keeps its objects as plain files under a host
// directory (bucket "weir" = <dataDir>/weir, object <ULID>/meta.json = a file), so the verifier reads the
// bucket from the host after the cluster stopped, with the TSDB library, as it reads the TSDBs.

// s3Host is the S3 server's name in the cluster network; s3Port its port.
const (
	s3Host = "weir-s3"
	s3Port = "7070"
)

// s3Image returns the S3 image under test, skipping loudly (failing on CI) when it is missing.
func s3Image(t *testing.T) string {
	t.Helper()
	image := os.Getenv("WEIR_S3_IMAGE")
	if image == "" {
		image = "weir-s3:dev"
	}
	testutil.RequireDocker(t, "make docker-s3 (or make docker-test)", image)
	return image
}

// s3Container is the S3 server: its container and its data directory on the host.
type s3Container struct {
	t         *testing.T
	container string
	dataDir   string
}

func (s *s3Container) bucketDir() string { return filepath.Join(s.dataDir, "weir") }

// start runs (or, after stop, starts again) the server and waits until it accepts connections on its
// published port.
func (s *s3Container) start() {
	s.t.Helper()
	dockerCmd(s.t, "start", s.container)
	s.waitListening()
}

func (s *s3Container) stop() { dockerCmd(s.t, "stop", "-t", "10", s.container) }

func (s *s3Container) waitListening() {
	s.t.Helper()
	addr := strings.TrimSpace(strings.Split(dockerCmd(s.t, "port", s.container, s3Port), "\n")[0])
	waitFor(s.t, 30*time.Second, "the S3 container listening", func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// startS3Container runs the server in network under the name weir-s3 with an empty bucket "weir".
func startS3Container(t *testing.T, network, prefix string) *s3Container {
	t.Helper()
	s := &s3Container{t: t, container: prefix + "-" + s3Host, dataDir: t.TempDir()}
	require.NoError(t, os.Chmod(s.dataDir, 0o777)) // the image runs as nobody (65534)
	require.NoError(t, os.Mkdir(s.bucketDir(), 0o777))
	require.NoError(t, os.Chmod(s.bucketDir(), 0o777))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", "--tail", "100", s.container).CombinedOutput()
			t.Logf("logs of %s (last 100 lines):\n%s", s.container, out)
		}
		_ = exec.Command("docker", "rm", "-f", s.container).Run()
	})
	dockerCmd(t, "run", "-d", "--name", s.container, "--network", network, "--network-alias", s3Host,
		"-v", s.dataDir+":/data", "-p", "127.0.0.1::"+s3Port, s3Image(t),
		"--access", "testkey", "--secret", "testsecret", "--port", ":"+s3Port, "posix", "/data")
	s.waitListening()
	return s
}

// s3ObjstoreYAML is the objstore configuration of the nodes. max_retries: 1 makes a request to a server
// that is gone fail at once rather than after minio-go's backoff; the shipper retries every round.
const s3ObjstoreYAML = `type: S3
config:
  bucket: weir
  endpoint: ` + s3Host + `:` + s3Port + `
  access_key: testkey
  secret_key: testsecret
  insecure: true
  region: us-east-1
  bucket_lookup_type: path
  max_retries: 1
`

// startShippingCluster is startDockerCluster plus the S3 server: a network with weir-s3 and n
// router+ingester nodes (RF=3) that ship to it every second, each with the external label
// replica="weir-ingester-N" so that the bucket tells the replicas' blocks apart.
func startShippingCluster(t *testing.T, n int) (*dockerCluster, *s3Container) {
	t.Helper()
	image := dockerImage(t)
	s3Image(t)
	id := fmt.Sprintf("%s-%d", strings.ToLower(strings.TrimPrefix(t.Name(), "TestDocker")), time.Now().UnixNano())
	c := &dockerCluster{t: t, image: image, network: "weir-e2e-" + id, ringDir: t.TempDir()}
	endpoints := make([]string, n)
	for i := range n {
		host := fmt.Sprintf("weir-ingester-%d", i)
		dir := t.TempDir()
		require.NoError(t, os.Chmod(dir, 0o777))
		c.nodes = append(c.nodes, &dockerNode{host: host, container: "weir-e2e-" + id + "-" + host, dataDir: dir})
		endpoints[i] = c.nodes[i].endpoint()
	}
	t.Cleanup(c.cleanup) // registered first, so it runs after the S3 server's cleanup (the network goes last)
	require.NoError(t, os.Chmod(c.ringDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(c.ringDir, "hashrings.json"), hashringsJSON(t, endpoints...), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(c.ringDir, "objstore.yml"), []byte(s3ObjstoreYAML), 0o644))

	dockerCmd(t, "network", "create", c.network)
	s3 := startS3Container(t, c.network, "weir-e2e-"+id)
	for _, nd := range c.nodes {
		dockerCmd(t, "run", "-d", "--name", nd.container, "--hostname", nd.host,
			"--network", c.network, "--network-alias", nd.host,
			"-v", nd.dataDir+":/data", "-v", c.ringDir+":/etc/weir:ro",
			"-p", "127.0.0.1::19291", "-p", "127.0.0.1::10902",
			c.image, "receive", "--tsdb.path=/data",
			"--receive.hashrings-file=/etc/weir/hashrings.json",
			"--receive.local-endpoint="+nd.endpoint(),
			"--receive.replication-factor=3",
			"--receive.forward-timeout=3s",
			"--objstore.config-file=/etc/weir/objstore.yml",
			"--shipper.interval=1s",
			fmt.Sprintf("--label=replica=%q", nd.host))
	}
	for _, nd := range c.nodes {
		c.waitReady(nd)
	}
	return c, s3
}

// nodeMetric is the sum of a node's samples of name whose labels include kv (0 when absent).
func (c *dockerCluster) nodeMetric(nd *dockerNode, name string, kv ...string) float64 {
	c.t.Helper()
	_, ops := dockerPorts(c.t, nd.container)
	v, _, err := scrapeMetric(http.DefaultClient, ops+"/metrics", name, kv...)
	require.NoError(c.t, err)
	return v
}

// clusterMetric is nodeMetric summed over every node.
func (c *dockerCluster) clusterMetric(name string, kv ...string) float64 {
	var sum float64
	for _, nd := range c.nodes {
		sum += c.nodeMetric(nd, name, kv...)
	}
	return sum
}

// fiveXXMonitor samples a node's 5xx answers on the remote-write port once a second and counts the
// seconds in which there were some ("5xx seconds").
type fiveXXMonitor struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	seconds int
	total   float64
}

// monitor5xx starts sampling the node at ops (its published ops URL, fixed while it runs).
func monitor5xx(ops string) *fiveXXMonitor {
	m := &fiveXXMonitor{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	go func() {
		defer close(m.done)
		defer client.CloseIdleConnections()
		tick := time.NewTicker(time.Second) // the resolution of the figure
		defer tick.Stop()
		last := -1.0
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			v, err := count5xx(client, ops+"/metrics")
			if err != nil {
				continue
			}
			m.mu.Lock()
			if last >= 0 && v > last {
				m.seconds++
			}
			m.total = v
			m.mu.Unlock()
			last = v
		}
	}()
	return m
}

// finish stops the monitor and returns the 5xx seconds and the node's 5xx answers in all.
func (m *fiveXXMonitor) finish() (seconds int, total float64) {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seconds, m.total
}

// count5xx sums weir_http_requests_total over the 5xx codes.
func count5xx(c *http.Client, url string) (float64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, m := range fams["weir_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "code" && strings.HasPrefix(l.GetValue(), "5") {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum, nil
}
