//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Ring scenarios of issue 8 on containers, with two router-only nodes in front of the ingesters:
//
//	weir bench ─▶ weir-router-0 ─┐            ┌─▶ weir-ingester-0
//	weir bench ─▶ weir-router-1 ─┴─ gRPC, RF=3 ┼─▶ weir-ingester-1   (ingesters route too, unused here)
//	                                           └─▶ weir-ingester-2   (+ weir-ingester-3 when grown)
//
// Each bench sends its own series through its router, so each series' samples reach the ingesters in
// order. After the scenario the cluster stops cleanly and every acknowledged sample of both ack logs
// must be on at least 2 ingesters (counted over every node that ever held data: a ring change moves
// replicas).

// TestDockerClusterRollingRestart restarts the three ingesters one after the other, from the highest
// ordinal down, like a StatefulSet's rolling update: SIGTERM (docker stop), start, wait until ready and
// back in the write path of both routers, then the next.
func TestDockerClusterRollingRestart(t *testing.T) {
	c := startDockerClusterWith(t, clusterOptions{ingesters: 3, routers: 2})
	l := startDockerLoad(t, c, 3000)
	l.waitAcked(t, 5, 30*time.Second)

	rejoined := make([]int64, len(c.nodes))
	var steps []string
	var worst time.Duration
	for i := len(c.nodes) - 1; i >= 0; i-- {
		nd := c.nodes[i]
		startedAt, down := c.restart(nd)
		c.waitInWritePath(nd, 60*time.Second)
		recovery := time.Since(startedAt)
		rejoined[i] = time.Now().UnixMilli()
		worst = max(worst, recovery)
		steps = append(steps, fmt.Sprintf("%s down %s, recovery %s", nd.host, down.Round(time.Millisecond), recovery.Round(time.Millisecond)))
		t.Logf("%s restarted: stop to ready %s, start to back in the write path %s", nd.host, down.Round(time.Millisecond), recovery.Round(time.Millisecond))
		l.waitAcked(t, 5, 30*time.Second) // the load goes on before the next pod
	}
	l.waitAcked(t, 5, 30*time.Second)

	f := l.stop(t)
	failedForwards := 0
	for _, nd := range c.nodes {
		failedForwards += c.forwardFailures(nd)
	}
	c.stopAll()
	res := verifyQuorumLogs(t, c, quorumRF3, l.ackLogs()...)
	for i, nd := range c.nodes {
		require.GreaterOrEqual(t, res.newest[i], rejoined[i], "%s holds no sample acknowledged after it rejoined", nd.host)
	}
	t.Logf("FIGURES rolling-restart: %s, %s, recovery max %s (start to back in the write path), failed forwards to the ingesters %d (covered by the quorum), ack logs %d samples, replicas found %d, samples lost %d",
		f, strings.Join(steps, "; "), worst.Round(time.Millisecond), failedForwards, res.acked, res.replicas, res.lost)
}

// TestDockerRingFileGrowShrink grows the ring from 3 to 4 ingesters and shrinks it back by replacing
// the hashrings file (a temporary file renamed over it, in the directory every container mounts):
// every node must reload it promptly (the file watcher sees the rename through the bind mount), the
// new ingester must receive series, and on shrink the removed ingester is stopped only once every
// node serves the ring without it.
func TestDockerRingFileGrowShrink(t *testing.T) {
	c := startDockerClusterWith(t, clusterOptions{ingesters: 3, routers: 2, algorithm: "ketama"})
	old := c.nodes
	l := startDockerLoad(t, c, 3000)
	l.waitAcked(t, 5, 30*time.Second)

	added := c.addIngester()
	grownAt := time.Now()
	c.setRing(c.nodes...)
	growReload := c.waitRing(c.all(), c.endpoints(c.nodes), 60*time.Second)
	c.waitInWritePath(added, 60*time.Second)
	growRecovery := time.Since(grownAt)
	grown := time.Now().UnixMilli()
	t.Logf("grow: every node serves the 4-node ring %s after the rename, %s in the write path after %s",
		growReload.Round(time.Millisecond), added.host, growRecovery.Round(time.Millisecond))
	l.waitAcked(t, 50, 30*time.Second) // the grown ring under load for a few seconds

	shrunkAt := time.Now()
	c.setRing(old...)
	shrinkReload := c.waitRing(c.all(), c.endpoints(old), 60*time.Second)
	c.stopNodes(added) // only now: no node routes to it any more
	shrinkTook := time.Since(shrunkAt)
	t.Logf("shrink: every node serves the 3-node ring %s after the rename; %s stopped %s after it",
		shrinkReload.Round(time.Millisecond), added.host, shrinkTook.Round(time.Millisecond))
	l.waitAcked(t, 30, 30*time.Second)

	f := l.stop(t)
	failedForwards := c.forwardFailures(added)
	c.stopAll()
	res := verifyQuorumLogs(t, c, quorumRF3, l.ackLogs()...)
	addedIndex := len(c.nodes) - 1
	require.Positive(t, res.held[addedIndex], "%s received no series", added.host)
	require.GreaterOrEqual(t, res.newest[addedIndex], grown, "%s holds no sample acknowledged after it joined", added.host)
	t.Logf("FIGURES ring-file-grow-shrink: %s, grow: reload on every node %s, recovery %s (rename to %s in the write path), shrink: reload on every node %s, failed forwards to %s %d, %s held %d acknowledged samples, ack logs %d samples, replicas found %d, samples lost %d",
		f, growReload.Round(time.Millisecond), growRecovery.Round(time.Millisecond), added.host, shrinkReload.Round(time.Millisecond),
		added.host, failedForwards, added.host, res.held[addedIndex], res.acked, res.replicas, res.lost)
}
