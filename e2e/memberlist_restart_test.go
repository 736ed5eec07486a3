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

// TestMemberlistRestartWithoutLeaving: with --memberlist.leave-on-shutdown=false, a restarting
// ingester (a StatefulSet's rolling restart) moves no series: the ring keeps its hash from start to
// end, while the router sees the member dead, then active again.
//
//	weir bench ──► router weir-4 ──gRPC──► ingesters weir-0 … weir-3   (gossip, RF=3, quorum 2)
//	                                       weir-2: SIGTERM, exit 0, restart on its data directory
//
// Writes owned by the stopped member fail on it and the quorum covers them: the sender sees only
// 2xx, and after a clean stop every acknowledged sample is on at least two ingesters.
func TestMemberlistRestartWithoutLeaving(t *testing.T) {
	const (
		nIngesters = 4
		victim     = 2
	)
	addrs := testutil.LoopbackAddrs(t, 2*nIngesters+1)
	grpcAddrs, gossipAddrs := addrs[:nIngesters], addrs[nIngesters:]
	args := func(i int) []string {
		a := []string{
			"--ring.membership=memberlist",
			fmt.Sprintf("--memberlist.node-name=weir-%d", i),
			"--memberlist.bind-address=" + gossipAddrs[i],
			"--memberlist.join=" + gossipAddrs[0] + "," + gossipAddrs[1],
			"--memberlist.leave-on-shutdown=false",
			"--receive.replication-factor=3",
			"--receive.forward-timeout=5s",
		}
		if i < nIngesters {
			a = append(a, "--grpc-address="+grpcAddrs[i], "--receive.local-endpoint="+grpcAddrs[i])
		}
		return a
	}
	ingesters := make([]*weirNode, nIngesters)
	for i := range ingesters {
		ingesters[i] = startWeir(t, t.TempDir(), args(i)...)
	}
	router := startWeir(t, t.TempDir(), args(nIngesters)...)
	all := append([]*weirNode{router}, ingesters...)
	ring := slices.Sorted(slices.Values(grpcAddrs))
	hash := waitRingAgreement(t, 60*time.Second, "5 nodes to agree on 4 ingesters", all, ring)

	load := startSteadyLoad(t, router.RemoteWriteURL)
	load.waitMore(t, "writes before the restart", 30)

	// memberState waits until the router reports the victim in state, still in the ring of the same
	// hash.
	name := fmt.Sprintf("weir-%d", victim)
	memberState := func(what, state string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() error {
			st, err := fetchMemberlistStatus(router)
			if err != nil {
				return err
			}
			require.Equal(t, hash, st.ConfigHash, "the ring changed: series moved")
			if got, inRing, found := memberByName(st, name); !found || got != state || !inRing {
				return fmt.Errorf("member %s: found %t, state %q, in ring %t", name, found, got, inRing)
			}
			return nil
		})
	}
	stopped := time.Now()
	require.NoError(t, ingesters[victim].proc.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, ingesters[victim].proc.wait(stopTimeout), "the victim did not exit within %s", stopTimeout)
	require.Equal(t, 0, ingesters[victim].proc.exitCode())
	require.Contains(t, ingesters[victim].Log(), "stopping without leaving")
	memberState("the router to see the stopped member dead, still in the ring", "dead")
	deadSeen := time.Since(stopped)
	load.waitMore(t, "writes while the member is down", 30)

	ingesters[victim].Restart()
	memberState("the router to see the member active again", "active")
	require.Equal(t, hash, waitRingAgreement(t, 60*time.Second, "5 nodes on the same ring again", all, ring))
	load.waitMore(t, "writes after the restart", 30)
	rep := load.stop(t)

	stopAll(all...)
	require.Zero(t, rep.RequestsFailed, "failed requests: %v %v", rep.ErrorsByStatus, rep.FirstErrors)
	require.Zero(t, rep.TransportErrors)
	dirs := make([]string, 0, nIngesters)
	for _, n := range ingesters {
		dirs = append(dirs, n.Dir)
	}
	acked, held := requireAckedCopies(t, load.ackLog, dirs, 2)
	t.Logf("SIGTERM → exited and seen dead %s, ring hash %s unchanged throughout; %d requests, all 2xx; %d acknowledged samples on >= 2 ingesters (per ingester: %d %d %d %d)",
		deadSeen.Round(time.Millisecond), hash, rep.RequestsSent, acked, held[0].samples, held[1].samples, held[2].samples, held[3].samples)
}
