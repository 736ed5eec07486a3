//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// objstoreOutage is how long the S3 server is down in TestDockerObjectStoreDown.
const objstoreOutage = 2 * time.Minute

// TestDockerObjectStoreDown stops the S3 server of a shipping cluster for two minutes under load:
//
//	weir bench (host) ──▶ weir-ingester-0 ──▶ weir-ingester-1, -2     (RF=3, all ship to weir-s3)
//	                         │ blocks every second ─────────────────▶ weir-s3 (stopped for 2 min)
//
// While the server is down, writes must keep being acknowledged (ingestion never waits for the bucket),
// and a tenant written with five hours of old samples gets 2h blocks cut at once on every node, whose
// uploads fail (counted) and stay pending. Once the server is back the pending blocks ship without
// intervention (time measured). After a clean stop, which cuts every head into blocks and ships them:
// every acknowledged sample is on at least 2 nodes' TSDBs AND in the blocks of at least 2 replicas in
// the bucket, values identical; every block in the bucket is complete with Thanos' metadata, and no
// replica has two blocks of a tenant over the same time.
func TestDockerObjectStoreDown(t *testing.T) {
	c, s3 := startShippingCluster(t, 3)
	entry := c.nodes[0]
	_, entryOps := dockerPorts(t, entry.container)
	b := startBench(t, c.remoteWrite(entry), objstoreOutage+50*time.Second)
	fiveXX := monitor5xx(entryOps)
	b.waitAcked(t, 5, 30*time.Second)

	s3.stop()
	downAt := time.Now()
	ackedBefore := b.acked()

	// Five hours of old samples for another tenant: its TSDB cuts 2h blocks at once, which cannot ship.
	const oldTenant = "team-old"
	wantOld := map[string][]sample{}
	resp, err := post(http.DefaultClient, c.remoteWrite(entry),
		encodeWrite(t, spanRequest(wantOld, "objstore_down_old", 3, minutesAgo(5*time.Hour+10*time.Minute), 5*time.Hour)),
		rwHeaders("THANOS-TENANT", oldTenant))
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.Code, "a write while the bucket is down: %s", resp)
	waitFor(t, 60*time.Second, "failed uploads on every node", func() error {
		for _, nd := range c.nodes {
			if v := c.nodeMetric(nd, "weir_shipper_upload_failures_total", "tenant", oldTenant); v == 0 {
				return fmt.Errorf("%s counts no failed upload of %s", nd.host, oldTenant)
			}
			if v := c.nodeMetric(nd, "weir_shipper_blocks_pending", "tenant", oldTenant); v == 0 {
				return fmt.Errorf("%s has no block of %s pending", nd.host, oldTenant)
			}
		}
		return nil
	})
	b.waitAcked(t, 20, 30*time.Second) // writes go on
	if d := objstoreOutage - time.Since(downAt); d > 0 {
		time.Sleep(d) // the outage's length is the scenario, not a synchronisation
	}
	ackedDuring := b.acked() - ackedBefore
	pendingAtReturn := c.clusterMetric("weir_shipper_blocks_pending", "tenant", oldTenant)
	failuresAtReturn := c.clusterMetric("weir_shipper_upload_failures_total")
	for _, nd := range c.nodes {
		code, body, err := httpGet(http.DefaultClient, mustOps(t, nd)+"/-/ready")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s ready while the bucket is down: %s", nd.host, body)
	}

	s3.start()
	backAt := time.Now()
	t.Logf("weir-s3 down for %s", backAt.Sub(downAt).Round(time.Millisecond))
	waitFor(t, 2*time.Minute, "the pending blocks shipped", func() error {
		if v := c.clusterMetric("weir_shipper_blocks_pending"); v != 0 {
			return fmt.Errorf("%g blocks pending", v)
		}
		return nil
	})
	catchUp := time.Since(backAt)
	t.Logf("pending blocks shipped %s after weir-s3 was back", catchUp.Round(time.Millisecond))
	b.waitAcked(t, 10, 30*time.Second)

	rep := b.wait(t, 3*time.Minute)
	fiveXXSeconds, fiveXXTotal := fiveXX.finish()
	uploads := c.clusterMetric("weir_shipper_uploads_total")
	c.stopAll() // cuts every head into blocks and ships them
	res := verifyQuorum(t, c, b.ackLog, quorumRF3)
	data, blocks := verifyBucketBlocks(t, s3.bucketDir())
	inBucket := checkBucketQuorum(t, data, b.ackLog, quorumRF3)
	oldCopies := checkBucketSamples(t, data, oldTenant, wantOld, quorumRF3)
	require.Len(t, blocks.byReplica, len(c.nodes), "every replica shipped blocks: %v", blocks.byReplica)
	for _, nd := range c.nodes {
		require.Equal(t, localBlockCount(t, nd), blocks.byReplica[nd.host], "%s: local blocks vs. its blocks in the bucket", nd.host)
	}

	failed, byStatus := non2xx(rep)
	require.Zero(t, failed, "writes failed while the bucket was down: %s", byStatus)
	t.Logf("FIGURES objstore-down: outage %s; requests %d, acknowledged samples %d (%d requests during the outage), non-2xx requests %d [%s], "+
		"5xx seconds %d (5xx answers %g); upload failures %g, blocks pending when the store came back %g, caught up %s after it was back; "+
		"uploads %g before the stop, %d blocks in the bucket %v; acked samples on >=2 TSDBs: lost %d (copies %d of %d), in >=2 replicas' blocks: lost %d (copies %d); old tenant copies %d; latency p99 %.3fs max %.3fs",
		backAt.Sub(downAt).Round(time.Second), rep.RequestsSent, rep.SamplesAcked, ackedDuring, failed, byStatus,
		fiveXXSeconds, fiveXXTotal, failuresAtReturn, pendingAtReturn, catchUp.Round(100*time.Millisecond),
		uploads, blocks.blocks, blocks.byReplica, res.lost, res.replicas, 3*res.acked, inBucket.lost, inBucket.copies, oldCopies,
		rep.Latency.P99, rep.Latency.Max)
}

// mustOps is the node's published ops URL.
func mustOps(t *testing.T, nd *dockerNode) string {
	_, ops := dockerPorts(t, nd.container)
	return ops
}

// localBlockCount counts the complete blocks in the node's tenant directories.
func localBlockCount(t *testing.T, nd *dockerNode) int {
	t.Helper()
	n := 0
	for _, tenantID := range tenantDirs(t, nd.dataDir) {
		n += len(localBlocks(t, filepath.Join(nd.dataDir, tenantID)))
	}
	return n
}
