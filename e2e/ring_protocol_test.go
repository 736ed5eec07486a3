package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestRingTwoProtocolBuilds: a rolling upgrade of the node-to-node protocol (receive/codec.go) in a
// ring of three nodes that are router and ingester at once, RF=3, hashmod. Node 1 runs as the
// previous release (--debug.ingest-protocol=v1: it serves and writes only protocol v1). Requests go
// to the nodes in turn and are all answered 204, with every point on all three nodes: nodes 0 and 2
// fall back to v1 for node 1 and remember it, node 1 writes v1 to them, and they write v2 to each
// other. Then node 1 is upgraded (restarted without the flag); nodes 0 and 2 find it down while it
// restarts, and once it is back they write v2 to it. After a clean stop nodes 0 and 2 hold every
// point sent, and every point is on at least two nodes (node 1 misses what was sent while it was
// down).
//
//	client: request k of tenant j to node (j+k) mod 3 (to nodes 0 and 2 while node 1 restarts)
//
//	node 0 (v2) ◀───v1───▶ node 1 (v1, then v2) ◀───v1───▶ node 2 (v2)
//	   ▲──────────────────────────v2──────────────────────────▲
func TestRingTwoProtocolBuilds(t *testing.T) {
	t.Parallel()
	grpcAddrs := testutil.LoopbackAddrs(t, 3)
	file := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, file, grpcAddrs...)
	const oldFlag = "--debug.ingest-protocol=v1"
	nodes := make([]*weirNode, 3)
	for i, addr := range grpcAddrs {
		args := []string{"--grpc-address=" + addr, "--receive.local-endpoint=" + addr}
		if i == 1 {
			args = append(args, oldFlag)
		}
		nodes[i] = startWeir(t, t.TempDir(), routerArgs(file, 3, "hashmod", args...)...)
	}
	metric := func(n *weirNode, name string, kv ...string) float64 {
		t.Helper()
		v, _ := n.Metric(t, name, kv...)
		return v
	}
	legacy := func(i int) float64 {
		return metric(nodes[i], "weir_forward_endpoint_legacy_protocol", "endpoint", grpcAddrs[1])
	}

	l := newRingLoad(50)
	tenants := []string{"mixed-a", "mixed-b"}
	require.NoError(t, sendAll(l, tenants, 12, func(j, k int) *weirNode { return nodes[(j+k)%3] }))
	for _, i := range []int{0, 2} {
		require.Equal(t, 1.0, legacy(i), "node %d writes v1 to node 1", i)
		require.Positive(t, metric(nodes[i], "weir_ingest_requests_total", "protocol", "v1", "code", "OK"), "node %d serves node 1's v1 writes", i)
		require.Positive(t, metric(nodes[i], "weir_ingest_requests_total", "protocol", "v2", "code", "OK"), "node %d serves v2 writes", i)
	}
	require.Zero(t, metric(nodes[1], "weir_ingest_requests_total", "protocol", "v2"), "node 1 serves no v2")
	require.Positive(t, metric(nodes[1], "weir_ingest_requests_total", "protocol", "v1", "code", "OK"))
	for i, n := range nodes {
		require.Zero(t, metric(n, "weir_quorum_failures_total"), "node %d", i)
	}

	// Upgrade node 1. Writes meanwhile (to nodes 0 and 2) reach their quorum of two and find node 1
	// down.
	nodes[1].Stop()
	nodes[1].args = slices.DeleteFunc(slices.Clone(nodes[1].args), func(a string) bool { return a == oldFlag })
	for k := range 4 {
		for _, tn := range tenants {
			l.mustSend(t, nodes[2*(k%2)], tn, http.StatusNoContent)
		}
	}
	nodes[1].Restart()
	// Once the down period is over, a probe finds node 1 up and the next write tries v2.
	testutil.Eventually(t, 30*time.Second, testutil.DefaultInterval, "nodes 0 and 2 write v2 to the upgraded node 1", func() error {
		for _, i := range []int{0, 2} {
			for _, tn := range tenants {
				if _, r, err := l.send(nodes[i], tn); err != nil || r.Code != http.StatusNoContent {
					return testutil.Permanent(fmt.Errorf("write to node %d: %v: %w", i, r, err))
				}
			}
		}
		var errs []error
		for _, i := range []int{0, 2} {
			if v := legacy(i); v != 0 {
				errs = append(errs, fmt.Errorf("node %d: weir_forward_endpoint_legacy_protocol %v", i, v))
			}
		}
		return errors.Join(errs...)
	})
	require.NoError(t, sendAll(l, tenants, 6, func(j, k int) *weirNode { return nodes[(j+k)%3] }))
	require.Positive(t, metric(nodes[1], "weir_ingest_requests_total", "protocol", "v2", "code", "OK"), "the upgraded node 1 serves v2")
	require.Zero(t, metric(nodes[1], "weir_forward_endpoint_legacy_protocol"), "the upgraded node 1 writes v2")

	stopAll(nodes...)
	for _, tn := range tenants {
		acked, sent := l.ackedRequests(tn)
		require.Len(t, acked, sent, "every request was answered 204")
		stored := l.readAll(t, nodes, tn)
		l.requireCopies(t, tn, stored, 2)
		want := l.want(acked)
		for _, j := range []int{0, 2} {
			requireSameSeries(t, fmt.Sprintf("node %d, tenant %s", j, tn), want, stored[j])
		}
	}
}
