//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Failure scenarios of issue 8 on a cluster of containers (helpers in cluster_docker_helpers_test.go):
//
//	weir bench (host) ──remote write──▶ weir-ingester-0 ──gRPC──▶ weir-ingester-1, weir-ingester-2
//	                                    (every node routes and ingests; RF=3, write quorum 2)
//
// Each scenario runs under a steady load with an ack log, then stops the cluster cleanly and checks
// that every acknowledged sample is stored, with its value, on at least 2 of the 3 nodes. The figures
// are logged (`make docker-test` prints them) and recorded in docs/reliability.md.

// quorumRF3 is the write quorum of RF=3: floor(3/2)+1.
const quorumRF3 = 2

// TestDockerClusterSIGKILLIngester kills one ingester with SIGKILL under load and starts it again
// (same name, same data directory) while the load goes on.
func TestDockerClusterSIGKILLIngester(t *testing.T) {
	c := startDockerCluster(t, 3)
	victimIndex := 1
	entry, victim := c.nodes[0], c.nodes[victimIndex]
	b := startBench(t, c.remoteWrite(entry), 20*time.Second)

	b.waitAcked(t, 5, 30*time.Second)
	dockerCmd(t, "kill", "-s", "KILL", victim.container)
	killedAt := time.Now()
	b.waitAcked(t, 10, 30*time.Second) // writes are acknowledged by the 2 nodes left

	dockerCmd(t, "start", victim.container)
	c.waitReady(victim)
	t.Logf("%s down (SIGKILL to ready again) for %s", victim.host, time.Since(killedAt).Round(time.Millisecond))
	c.waitForwarding(entry, victim, 30*time.Second)
	rejoined := time.Now().UnixMilli()
	t.Logf("%s back in the write path %s after SIGKILL", victim.host, time.Since(killedAt).Round(time.Millisecond))
	b.waitAcked(t, 10, 30*time.Second)

	rep := b.wait(t, 90*time.Second)
	c.stopAll()
	res := verifyQuorum(t, c, b.ackLog, quorumRF3)
	require.GreaterOrEqual(t, res.newest[victimIndex], rejoined, "%s holds no sample acknowledged after it rejoined", victim.host)
	failed, byStatus := non2xx(rep)
	t.Logf("FIGURES sigkill: requests %d, acknowledged samples %d (ack log: %d, replicas found %d), non-2xx requests %d [%s], latency p99 %.3fs max %.3fs, samples lost %d",
		rep.RequestsSent, rep.SamplesAcked, res.acked, res.replicas, failed, byStatus, rep.Latency.P99, rep.Latency.Max, res.lost)
}

// TestDockerClusterPartitionIngester takes one ingester off the network (docker network disconnect)
// for 10 s under load, then puts it back under the same name.
func TestDockerClusterPartitionIngester(t *testing.T) {
	c := startDockerCluster(t, 3)
	victimIndex := 2
	entry, victim := c.nodes[0], c.nodes[victimIndex]
	b := startBench(t, c.remoteWrite(entry), 25*time.Second)

	b.waitAcked(t, 5, 30*time.Second)
	c.disconnect(victim)
	cutAt := time.Now()
	b.waitAcked(t, 10, 30*time.Second) // writes are acknowledged by the 2 nodes left
	if d := 10*time.Second - time.Since(cutAt); d > 0 {
		time.Sleep(d) // the partition's length is the scenario, not a synchronisation
	}
	c.connect(victim)
	t.Logf("%s partitioned for %s", victim.host, time.Since(cutAt).Round(time.Millisecond))
	c.waitForwarding(entry, victim, 30*time.Second)
	rejoined := time.Now().UnixMilli()
	t.Logf("%s back in the write path %s after the disconnect", victim.host, time.Since(cutAt).Round(time.Millisecond))
	b.waitAcked(t, 10, 30*time.Second)

	rep := b.wait(t, 90*time.Second)
	c.stopAll()
	res := verifyQuorum(t, c, b.ackLog, quorumRF3)
	require.GreaterOrEqual(t, res.newest[victimIndex], rejoined, "%s holds no sample acknowledged after it rejoined", victim.host)
	failed, byStatus := non2xx(rep)
	t.Logf("FIGURES partition: requests %d, acknowledged samples %d (ack log: %d, replicas found %d), non-2xx requests %d [%s], latency p99 %.3fs max %.3fs, samples lost %d",
		rep.RequestsSent, rep.SamplesAcked, res.acked, res.replicas, failed, byStatus, rep.Latency.P99, rep.Latency.Max, res.lost)
}
