//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The shapes of container cluster the ring scenarios need beyond the default one of
// startDockerCluster: router-only nodes in front of the ingesters (as issue 8 asks: "two routers"),
// ketama placement, membership by gossip, and an ingester added to (or taken from) a running cluster.

// clusterOptions shape a container cluster. The zero value but ingesters is startDockerCluster's:
// ingesters that route, over a hashrings file with the default algorithm.
type clusterOptions struct {
	// ingesters are weir-ingester-0…N-1, each router and ingester (--receive.local-endpoint).
	ingesters int
	// routers are weir-router-0…N-1: nodes without --receive.local-endpoint, which only route.
	routers int
	// memberlist: the nodes find each other by gossip (--ring.membership=memberlist) instead of the
	// hashrings file.
	memberlist bool
	// algorithm is --receive.hashrings-algorithm (file mode; empty: the default, hashmod).
	algorithm string
	// args are more flags of `weir receive` on every node.
	args []string
}

// gossipJoin is the join list of every node in memberlist mode: the first two ingesters, by the names
// the network resolves (as a headless Service's pod names would be).
const gossipJoin = "weir-ingester-0:7946,weir-ingester-1:7946"

// startDockerClusterWith creates a network and the nodes of o, waits until all are ready and agree on
// one ring over the ingesters, and registers the cleanup (container logs on failure, then containers
// and network removed).
func startDockerClusterWith(t *testing.T, o clusterOptions) *dockerCluster {
	t.Helper()
	image := dockerImage(t)
	id := fmt.Sprintf("%s-%d", strings.ToLower(strings.TrimPrefix(t.Name(), "TestDocker")), time.Now().UnixNano())
	id = strings.NewReplacer("/", "-", "_", "-").Replace(id)
	c := &dockerCluster{t: t, image: image, id: id, network: "weir-e2e-" + id, ringDir: t.TempDir(), opts: o}
	for range o.ingesters {
		c.nodes = append(c.nodes, c.newNode(false))
	}
	for range o.routers {
		c.routers = append(c.routers, c.newNode(true))
	}
	t.Cleanup(c.cleanup)

	require.NoError(t, os.Chmod(c.ringDir, 0o755))
	if !o.memberlist {
		require.NoError(t, os.WriteFile(c.ringPath(), hashringsJSON(t, c.endpoints(c.nodes)...), 0o644))
	}
	dockerCmd(t, "network", "create", c.network)
	for _, nd := range c.all() {
		c.run(nd)
	}
	for _, nd := range c.all() {
		c.waitReady(nd)
	}
	if o.memberlist {
		c.waitRing(c.all(), c.endpoints(c.nodes), 60*time.Second)
	}
	return c
}

// newNode names the next ingester (with a data directory on the host) or router.
func (c *dockerCluster) newNode(router bool) *dockerNode {
	nd := &dockerNode{router: router}
	if router {
		nd.host = fmt.Sprintf("weir-router-%d", len(c.routers))
	} else {
		nd.host = fmt.Sprintf("weir-ingester-%d", len(c.nodes))
		nd.dataDir = c.t.TempDir()
		require.NoError(c.t, os.Chmod(nd.dataDir, 0o777)) // the image runs as nobody (65534)
	}
	nd.container = "weir-e2e-" + c.id + "-" + nd.host
	return nd
}

// run creates and starts the node's container (docker run -d).
func (c *dockerCluster) run(nd *dockerNode) {
	c.t.Helper()
	args := []string{"run", "-d", "--name", nd.container, "--hostname", nd.host,
		"--network", c.network, "--network-alias", nd.host}
	if nd.dataDir != "" {
		args = append(args, "-v", nd.dataDir+":/data")
	}
	if !c.opts.memberlist {
		args = append(args, "-v", c.ringDir+":/etc/weir:ro")
	}
	args = append(args, "-p", "127.0.0.1::19291", "-p", "127.0.0.1::10902",
		c.image, "receive", "--tsdb.path=/data",
		"--receive.replication-factor=3",
		"--receive.forward-timeout=3s")
	if c.opts.memberlist {
		args = append(args, "--ring.membership=memberlist", "--memberlist.join="+gossipJoin)
	} else {
		args = append(args, "--receive.hashrings-file=/etc/weir/hashrings.json")
		if c.opts.algorithm != "" {
			args = append(args, "--receive.hashrings-algorithm="+c.opts.algorithm)
		}
	}
	if !nd.router {
		args = append(args, "--receive.local-endpoint="+nd.endpoint())
	}
	args = append(args, c.opts.args...)
	dockerCmd(c.t, args...)
}

// addIngester starts one more ingester (weir-ingester-N) and waits until it is ready. In file mode
// it is in nobody's ring until setRing names it; with memberlist it announces itself.
func (c *dockerCluster) addIngester() *dockerNode {
	c.t.Helper()
	nd := c.newNode(false)
	c.nodes = append(c.nodes, nd)
	c.run(nd)
	c.waitReady(nd)
	return nd
}

// ringPath is the hashrings file on the host; the containers see its directory at /etc/weir.
func (c *dockerCluster) ringPath() string { return filepath.Join(c.ringDir, "hashrings.json") }

// endpoints are the ring endpoints of nodes, sorted.
func (c *dockerCluster) endpoints(nodes []*dockerNode) []string {
	eps := make([]string, len(nodes))
	for i, nd := range nodes {
		eps[i] = nd.endpoint()
	}
	slices.Sort(eps)
	return eps
}

// setRing replaces the hashrings file with a ring over nodes the way Kubernetes and operators do it:
// a temporary file in the same directory renamed over the old one. The containers see the directory
// through a read-only bind mount, so the rename reaches their inotify watch on it. The temporary file
// is made world-readable before the rename: the containers run as nobody, and a file they cannot read
// is refused (the last good ring keeps serving).
func (c *dockerCluster) setRing(nodes ...*dockerNode) {
	c.t.Helper()
	tmp, err := os.CreateTemp(c.ringDir, ".hashrings.json.tmp-")
	require.NoError(c.t, err)
	_, err = tmp.Write(hashringsJSON(c.t, c.endpoints(nodes)...))
	require.NoError(c.t, err)
	require.NoError(c.t, tmp.Chmod(0o644))
	require.NoError(c.t, tmp.Close())
	require.NoError(c.t, os.Rename(tmp.Name(), c.ringPath()))
}

// ringOf fetches a node's /api/v1/status/ring.
func ringOf(nd *dockerNode) (ringStatus, error) {
	var st ringStatus
	code, body, err := httpGet(http.DefaultClient, nd.ops+"/api/v1/status/ring")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("%s: /api/v1/status/ring answered %d: %s", nd.host, code, body)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return st, fmt.Errorf("%s: /api/v1/status/ring: %w: %s", nd.host, err, body)
	}
	return st, nil
}

// waitRing waits until every node of nodes serves a ring over exactly endpoints, all with the same
// config hash, and returns how long that took.
func (c *dockerCluster) waitRing(nodes []*dockerNode, endpoints []string, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	waitFor(c.t, timeout, fmt.Sprintf("%d nodes to serve a ring over %v", len(nodes), endpoints), func() error {
		var first string
		for i, nd := range nodes {
			st, err := ringOf(nd)
			if err != nil {
				return err
			}
			if got := slices.Sorted(slices.Values(st.endpoints())); !slices.Equal(got, endpoints) {
				return fmt.Errorf("%s serves %v (version %d, error %q)", nd.host, got, st.Version, st.Error)
			}
			if i == 0 {
				first = st.ConfigHash
			} else if st.ConfigHash != first {
				return fmt.Errorf("%s serves config hash %s, %s serves %s", nd.host, st.ConfigHash, nodes[0].host, first)
			}
		}
		return nil
	})
	return time.Since(start)
}

// entries are the nodes that take the load: the routers, or the first ingester without routers.
func (c *dockerCluster) entries() []*dockerNode {
	if len(c.routers) > 0 {
		return c.routers
	}
	return c.nodes[:1]
}

// waitInWritePath waits until every entry node has written successfully to nd (again), and returns
// how long that took: the moment nd is back in (or new in) the write path.
func (c *dockerCluster) waitInWritePath(nd *dockerNode, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for _, e := range c.entries() {
		c.waitForwarding(e, nd, timeout)
	}
	return time.Since(start)
}

// restart stops an ingester like a StatefulSet update does (SIGTERM, 60 s grace, exit code 0), starts
// it again with the same name and data, and waits until it is ready. It returns when the new start
// was issued (the end of the fault) and how long the node was down (stop issued → ready).
func (c *dockerCluster) restart(nd *dockerNode) (startedAt time.Time, down time.Duration) {
	c.t.Helper()
	stopAt := time.Now()
	c.stopNodes(nd)
	startedAt = time.Now()
	dockerCmd(c.t, "start", nd.container)
	c.waitReady(nd)
	return startedAt, time.Since(stopAt)
}

// forwardFailures is how many writes the entry nodes sent to nd failed (weir_forward_requests_total
// for nd's endpoint, every result but success): the replica writes the write quorum had to cover.
// The entry nodes must be running.
func (c *dockerCluster) forwardFailures(nd *dockerNode) int {
	c.t.Helper()
	total := 0.0
	for _, e := range c.entries() {
		all, _, err := scrapeMetric(http.DefaultClient, e.ops+"/metrics", "weir_forward_requests_total", "endpoint", nd.endpoint())
		require.NoError(c.t, err)
		total += all - c.forwardSuccesses(e, nd)
	}
	return int(total)
}

// stopAsync sends SIGTERM to nd (docker stop, 60 s grace) without waiting; the function it returns
// waits for the exit, requires exit code 0, and returns how long the stop took. It lets a test watch
// the cluster while the node shuts down.
func (c *dockerCluster) stopAsync(nd *dockerNode) (wait func() time.Duration) {
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		out, err := exec.Command("docker", "stop", "-t", "60", nd.container).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("docker stop %s: %w: %s", nd.container, err, out)
		}
		done <- err
	}()
	return func() time.Duration {
		c.t.Helper()
		require.NoError(c.t, <-done)
		took := time.Since(start)
		code := strings.TrimSpace(dockerCmd(c.t, "inspect", "-f", "{{.State.ExitCode}}", nd.container))
		require.Equal(c.t, "0", code, "exit code of %s after SIGTERM", nd.host)
		return took
	}
}
