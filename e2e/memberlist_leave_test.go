package e2e

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestMemberlistLeaveAndJoinUnderLoad: a graceful stop and a new member, under a steady RF=3 load,
// with no failed write at all.
//
//	weir bench ──► router weir-4 ──gRPC──► ingesters weir-0 … weir-3   (gossip, RF=3, quorum 2)
//	                                  └──► weir-5 (joins later, new name, empty data directory)
//
// First weir-1 gets SIGTERM: it announces leaving and keeps taking writes until every member serves
// the ring of the three others, then drains, flushes, ships and exits 0. Then weir-5 starts: every
// node converges on the ring of four, and the router forwards series to it.
//
// The sender sees no answer other than 2xx over the whole run, and after a clean stop every
// acknowledged sample is on at least two ingesters (the stopped one included), with its exact value;
// weir-5 holds samples acknowledged after it joined. The convergence times are logged (gossip at
// memberlist's LAN defaults, the flags' defaults).
func TestMemberlistLeaveAndJoinUnderLoad(t *testing.T) {
	const (
		nIngesters = 4
		leaver     = 1
	)
	// gRPC addresses of the five ingesters (the fifth joins later), gossip addresses of six nodes.
	addrs := testutil.LoopbackAddrs(t, 11)
	grpcAddrs, gossipAddrs := addrs[:5], addrs[5:]
	args := func(i int, ingester bool) []string {
		a := []string{
			"--ring.membership=memberlist",
			fmt.Sprintf("--memberlist.node-name=weir-%d", i),
			"--memberlist.bind-address=" + gossipAddrs[i],
			"--memberlist.join=" + gossipAddrs[0] + "," + gossipAddrs[2],
			"--receive.replication-factor=3",
			"--receive.forward-timeout=5s",
		}
		if ingester {
			g := grpcAddrs[min(i, 4)]
			a = append(a, "--grpc-address="+g, "--receive.local-endpoint="+g)
		}
		return a
	}
	ingesters := make([]*weirNode, nIngesters)
	for i := range ingesters {
		ingesters[i] = startWeir(t, t.TempDir(), args(i, true)...)
	}
	router := startWeir(t, t.TempDir(), args(4, false)...)
	all := append([]*weirNode{router}, ingesters...)
	ring4 := slices.Sorted(slices.Values(grpcAddrs[:4]))
	start := time.Now()
	waitRingAgreement(t, 60*time.Second, "5 nodes to agree on 4 ingesters", all, ring4)
	formed := time.Since(start)

	load := startSteadyLoad(t, router.RemoteWriteURL)
	load.waitMore(t, "writes before the leave", 30)

	// 1. Graceful stop of an ingester.
	stopping := ingesters[leaver]
	live := slices.Delete(slices.Clone(all), 1+leaver, 2+leaver)
	ring3 := slices.DeleteFunc(slices.Clone(ring4), func(a string) bool { return a == grpcAddrs[leaver] })
	sigterm := time.Now()
	require.NoError(t, stopping.proc.cmd.Process.Signal(syscall.SIGTERM))
	waitRingAgreement(t, 30*time.Second, "the 4 others to drop the leaver", live, ring3)
	leaveConverged := time.Since(sigterm)
	require.True(t, stopping.proc.wait(stopTimeout), "the leaver did not exit within %s", stopTimeout)
	require.Equal(t, 0, stopping.proc.exitCode())
	exited := time.Since(sigterm)
	require.Contains(t, stopping.Log(), "left the ring: no router sends new writes here any more")
	load.waitMore(t, "writes on the ring of 3", 30)

	// 2. A brand-new member joins.
	joining := time.Now()
	joiner := startWeir(t, t.TempDir(), args(5, true)...)
	ready := time.Since(joining)
	joinerEP := grpcAddrs[4]
	live = append(live, joiner)
	ring4b := slices.Sorted(slices.Values(append(slices.Clone(ring3), joinerEP)))
	hash := waitRingAgreement(t, 60*time.Second, "5 nodes to agree on the ring with the new member", live, ring4b)
	joinConverged := time.Since(joining)
	joined := time.Now()
	forwarded := func() float64 {
		v, _ := router.Metric(t, "weir_forward_series_total", "endpoint", joinerEP, "result", "success")
		return v
	}
	waitFor(t, 30*time.Second, "the router to forward series to the new member", func() error {
		if v := forwarded(); v < 1000 {
			return fmt.Errorf("%v series forwarded to %s", v, joinerEP)
		}
		return nil
	})
	load.waitMore(t, "writes on the new ring", 30)
	rep := load.stop(t)
	// Not one forward to the leaver failed: the router had dropped it before it stopped taking writes.
	for _, result := range []string{"invalid", "unavailable", "timeout", "down", "overloaded", "error"} {
		v, _ := router.Metric(t, "weir_forward_requests_total", "endpoint", grpcAddrs[leaver], "result", result)
		require.Zero(t, v, "forwards to the leaver with result %s", result)
	}
	sent, _ := router.Metric(t, "weir_forward_requests_total", "endpoint", grpcAddrs[leaver], "result", "success")
	require.Positive(t, sent)

	// Stop cleanly: the router first, so that its forwards finish while the ingesters run.
	stopAll(live...)
	require.Zero(t, rep.RequestsFailed, "failed requests: %v %v", rep.ErrorsByStatus, rep.FirstErrors)
	require.Zero(t, rep.TransportErrors)
	require.Equal(t, rep.RequestsSent, rep.RequestsOK)

	dirs := []string{}
	for _, n := range append(slices.Clone(ingesters), joiner) {
		dirs = append(dirs, n.Dir)
	}
	acked, held := requireAckedCopies(t, load.ackLog, dirs, 2)
	joinerHeld := held[len(held)-1]
	require.Positive(t, joinerHeld.samples, "the new member holds no acknowledged sample")
	require.GreaterOrEqual(t, joinerHeld.newest, joined.UnixMilli(), "the new member holds nothing acknowledged after it joined")
	t.Logf("ring of 4 formed in %s; SIGTERM → every node dropped the leaver %s, leaver exited %s; new member start → ready %s, → every node on ring %s %s; "+
		"%d requests, all 2xx; %d acknowledged samples, each on >= 2 ingesters (per ingester: %d %d %d %d, new %d)",
		formed.Round(time.Millisecond), leaveConverged.Round(time.Millisecond), exited.Round(time.Millisecond), ready.Round(time.Millisecond), hash, joinConverged.Round(time.Millisecond),
		rep.RequestsSent, acked, held[0].samples, held[1].samples, held[2].samples, held[3].samples, joinerHeld.samples)
}
