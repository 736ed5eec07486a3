//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// deadTimeoutE2E is --memberlist.dead-timeout in TestDockerMemberlistDeadDropped: short, so that the
// scenario ends in seconds, yet longer than memberlist's dead detection (about 6 s), so that a node
// dropped at once (not kept for the timeout) is told apart from one kept for it.
const deadTimeoutE2E = 15 * time.Second

// TestDockerMemberlistDeadDropped: four ingesters (gossip, RF=3) behind two routers under steady load;
// weir-ingester-3 is SIGKILLed and not started again, as a pod whose node is gone. The rule of the
// README: a member declared dead stays in the ring for --memberlist.dead-timeout (its writes fail,
// the quorum covers them, a restart within it would move no series), then every node drops it
// without anybody's help. Asserted: the 4-node ring serves until at least the dead timeout after the
// kill, then every router and remaining ingester serves the same 3-node ring; no write fails once
// the ring has shrunk; nothing acknowledged is lost (the killed node's TSDB, replayed from its WAL,
// counts for what it took before the kill). The failed requests while the dead member was in the ring
// are figures: the quorum should cover them all.
func TestDockerMemberlistDeadDropped(t *testing.T) {
	c := startDockerClusterWith(t, clusterOptions{ingesters: 4, routers: 2, memberlist: true,
		args: []string{"--memberlist.dead-timeout=" + deadTimeoutE2E.String()}})
	victim := c.nodes[3]
	live := c.nodes[:3]
	watchers := append(append([]*dockerNode{}, c.routers...), live...)
	l := startDockerLoad(t, c, 3000)
	l.waitAcked(t, 20, 30*time.Second)

	killAt := time.Now()
	dockerCmd(t, "kill", "-s", "KILL", victim.container)
	c.waitRing(watchers, c.endpoints(live), deadTimeoutE2E+60*time.Second)
	droppedAt := time.Now()
	dropped := droppedAt.Sub(killAt)
	require.GreaterOrEqual(t, dropped, deadTimeoutE2E, "%s left the ring %s after its SIGKILL, before the dead timeout", victim.host, dropped)
	duringDead := l.failedBetween(killAt, droppedAt)
	failedForwards := c.forwardFailures(victim)

	l.waitAcked(t, 30, 30*time.Second)
	settled := droppedAt.Add(time.Second) // answers to requests already in flight at the drop
	afterDrop := l.failedBetween(settled, time.Now())

	f := l.stop(t)
	c.stopNodes(watchers...)
	res := verifyQuorumLogs(t, c, quorumRF3, l.ackLogs()...)
	t.Logf("FIGURES memberlist-dead-dropped: %s, %s SIGKILLed, out of every ring %s later (dead timeout %s), failed requests while it was in the ring %v, failed forwards to it %d (covered by the quorum), failed requests after the drop %v, ack logs %d samples, replicas found %d, samples lost %d",
		f, victim.host, dropped.Round(time.Millisecond), deadTimeoutE2E, duringDead, failedForwards, afterDrop, res.acked, res.replicas, res.lost)
	require.Empty(t, afterDrop, "writes failed after the dead member was dropped")
}
