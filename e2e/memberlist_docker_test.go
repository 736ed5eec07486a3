//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDockerMemberlistGrowShrink grows a gossip ring (--ring.membership=memberlist, no hashrings
// file) from 3 to 4 ingesters by starting one more, and shrinks it back by stopping that one
// gracefully (SIGTERM: it announces "leaving" and leaves), under load through two routers. The new
// ingester must receive series; every node must agree on each ring (watched while the leaver shuts
// down). The requests that failed during the shrink and the routers' failed forwards to the leaver
// are reported (figures), not asserted: the quorum covers them; the verifier's verdict (nothing
// acknowledged lost) is asserted.
func TestDockerMemberlistGrowShrink(t *testing.T) {
	c := startDockerClusterWith(t, clusterOptions{ingesters: 3, routers: 2, memberlist: true})
	old := c.nodes
	l := startDockerLoad(t, c, 3000)
	l.waitAcked(t, 5, 30*time.Second)

	joinAt := time.Now()
	added := c.addIngester()
	c.waitRing(c.all(), c.endpoints(c.nodes), 60*time.Second)
	growConverged := time.Since(joinAt)
	c.waitInWritePath(added, 60*time.Second)
	growRecovery := time.Since(joinAt)
	grown := time.Now().UnixMilli()
	t.Logf("grow: %s started, every node serves the 4-node ring %s later, in the write path after %s",
		added.host, growConverged.Round(time.Millisecond), growRecovery.Round(time.Millisecond))
	l.waitAcked(t, 50, 30*time.Second)

	stopAt := time.Now()
	stopped := c.stopAsync(added) // SIGTERM: graceful leave
	shrunk := c.waitRing(append(append([]*dockerNode{}, c.routers...), old...), c.endpoints(old), 60*time.Second)
	stopTook := stopped()
	l.waitAcked(t, 30, 30*time.Second)
	shrinkFailed := l.failedBetween(stopAt, time.Now())
	failedForwards := c.forwardFailures(added)
	t.Logf("shrink: every other node serves the 3-node ring %s after the SIGTERM to %s, which exited after %s; failed requests meanwhile: %v; failed forwards to it: %d",
		shrunk.Round(time.Millisecond), added.host, stopTook.Round(time.Millisecond), shrinkFailed, failedForwards)

	f := l.stop(t)
	c.stopAll()
	res := verifyQuorumLogs(t, c, quorumRF3, l.ackLogs()...)
	addedIndex := len(c.nodes) - 1
	require.Positive(t, res.held[addedIndex], "%s received no series", added.host)
	require.GreaterOrEqual(t, res.newest[addedIndex], grown, "%s holds no sample acknowledged after it joined", added.host)
	t.Logf("FIGURES memberlist-grow-shrink: %s, grow: 4-node ring on every node %s, recovery %s (start to %s in the write path), shrink: SIGTERM to exit %s, ring without it on every node %s after the SIGTERM, failed requests during the shrink %v, failed forwards to %s %d (covered by the quorum), %s held %d acknowledged samples, ack logs %d samples, replicas found %d, samples lost %d",
		f, growConverged.Round(time.Millisecond), growRecovery.Round(time.Millisecond), added.host, stopTook.Round(time.Millisecond), shrunk.Round(time.Millisecond), shrinkFailed,
		added.host, failedForwards, added.host, res.held[addedIndex], res.acked, res.replicas, res.lost)
}
