package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// memberlistStatus is the part of /api/v1/status/ring that memberlist mode adds.
type memberlistStatus struct {
	ringStatus
	Membership string `json:"membership"`
	Members    []struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Endpoint string `json:"endpoint"`
		State    string `json:"state"`
		InRing   bool   `json:"in_ring"`
	} `json:"members"`
}

func getMemberlistStatus(t testing.TB, n *weirNode) memberlistStatus {
	t.Helper()
	code, body := n.Get(t, "/api/v1/status/ring")
	require.Equal(t, http.StatusOK, code, "/api/v1/status/ring: %s", body)
	var st memberlistStatus
	require.NoError(t, json.Unmarshal([]byte(body), &st), "/api/v1/status/ring: %s", body)
	return st
}

// TestMemberlistRing: three weir processes that find each other by gossip (no hashrings file) build
// the same ketama ring over the three of them; with RF=3 a write is acknowledged and lands on all
// three.
// memberlistIngesterArgs are the flags of node i of a gossip ring that routes and ingests: named
// weir-<i>, gossiping on gossip, joining through join, replication factor rf.
func memberlistIngesterArgs(i int, grpcAddr, gossip, join string, rf int) []string {
	return []string{
		"--ring.membership=memberlist",
		"--memberlist.node-name=" + fmt.Sprintf("weir-%d", i),
		"--memberlist.bind-address=" + gossip,
		"--memberlist.join=" + join,
		"--receive.replication-factor=" + strconv.Itoa(rf),
		"--receive.forward-timeout=3s",
		"--grpc-address=" + grpcAddr,
		"--receive.local-endpoint=" + grpcAddr,
	}
}

func TestMemberlistRing(t *testing.T) {
	addrs := testutil.LoopbackAddrs(t, 7)
	grpcAddrs, gossipAddrs := addrs[:3], addrs[3:6]
	nodes := make([]*weirNode, 3)
	for i := range nodes {
		nodes[i] = startWeir(t, t.TempDir(), memberlistIngesterArgs(i, grpcAddrs[i], gossipAddrs[i], gossipAddrs[0], 3)...)
	}

	start := time.Now()
	var sts []memberlistStatus
	waitFor(t, 30*time.Second, "the 3 nodes to converge on one ring of 3", func() error {
		sts = make([]memberlistStatus, len(nodes))
		for i, n := range nodes {
			sts[i] = getMemberlistStatus(t, n)
			if len(sts[i].endpoints()) != 3 || sts[i].ConfigHash != sts[0].ConfigHash {
				return fmt.Errorf("not converged: %+v", sts[:i+1])
			}
		}
		return nil
	})
	for i, st := range sts {
		require.Equal(t, "memberlist", st.Membership, "node %d", i)
		require.ElementsMatch(t, grpcAddrs, st.endpoints(), "node %d", i)
		require.Len(t, st.Members, 3, "node %d", i)
		for _, m := range st.Members {
			require.Equal(t, "ingester", m.Role)
			require.Equal(t, "active", m.State)
			require.True(t, m.InRing)
		}
	}
	t.Logf("3 nodes converged on ring %s in %s", sts[0].ConfigHash, time.Since(start).Round(time.Millisecond))

	// A router joining now is ready only once gossip gave it a ring: its very first write, sent the
	// moment /-/ready answers 200, is acknowledged (not 503 for want of a ring).
	router := startWeir(t, t.TempDir(),
		"--ring.membership=memberlist",
		"--memberlist.node-name=weir-router",
		"--memberlist.bind-address="+addrs[6],
		"--memberlist.join="+gossipAddrs[1],
		"--receive.replication-factor=3",
		"--receive.forward-timeout=3s")
	l := newRingLoad(50)
	const tn = "gossip"
	l.mustSend(t, router, tn, http.StatusNoContent)
	for k := range 5 {
		l.mustSend(t, nodes[k%3], tn, http.StatusNoContent)
	}
	stopAll(append([]*weirNode{router}, nodes...)...)
	acked, _ := l.ackedRequests(tn)
	require.Len(t, acked, 6)
	stored := l.readAll(t, nodes, tn)
	want := l.want(acked)
	for j := range nodes {
		requireSameSeries(t, fmt.Sprintf("node %d", j), want, stored[j])
	}
}
