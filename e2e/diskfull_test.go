package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestDiskFull: one node on a small tmpfs volume under `weir bench` load, the volume filled by a
// ballast file as a cardinality burst or a stalled shipper would fill it; twice: with a free-space
// reserve, and without one (--tsdb.min-free-space=0), where WAL writes run out of space for real.
//  1. Below the reserve, writes are refused with 503; once the ballast is gone they are acknowledged
//     again, without a restart.
//  2. The volume is filled to the last byte and the node is SIGKILLed there. Without a reserve, WAL
//     writes fail first, which may tear the WAL: those writes and every later one are refused (503), so
//     that nothing acknowledged is behind a torn record. The node restarts on the still-full volume: it
//     comes up, its tenant stays closed (no room to repair the WAL; 503) and nothing is touched.
//  3. The volume grows: the next write opens the tenant (repairing a torn WAL) and writes are
//     acknowledged again. After a clean stop and another restart, every acknowledged sample is on
//     disk with its exact value; no answer was other than 204 or 503.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		reserve string
	}{
		{"reserve", "8MiB"},
		{"no reserve", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			diskFull(t, tc.reserve)
		})
	}
}

func diskFull(t *testing.T, reserve string) {
	vol := testutil.MountTmpfs(t, 64<<20)
	data := filepath.Join(vol, "data")
	ballast := filepath.Join(vol, "ballast")
	// A fixed remote-write address, so that the sender reaches the node across restarts.
	n := startWeir(t, data, "--tsdb.min-free-space="+reserve, "--remote-write.address="+testutil.LoopbackAddrs(t, 1)[0])
	load := startSteadyLoad(t, n.RemoteWriteURL)
	load.waitMore(t, "acknowledged writes on an empty volume", 30)

	if reserve != "0" { // 1. Below the reserve.
		testutil.FillVolume(t, ballast, 4<<20)
		waitMetricAbove(t, n, "weir_storage_writes_refused_total", 0, "reason", "disk_low")
		require.NoError(t, os.Remove(ballast))
		load.waitMore(t, "acknowledged writes once the ballast is gone", 20)
	}

	// 2. Full to the last byte, and a crash.
	before, _ := n.Metric(t, "weir_storage_writes_refused_total", "reason", "disk_low")
	testutil.FillVolume(t, ballast, 0)
	waitFor(t, 30*time.Second, "writes refused on the full volume", func() error {
		low, _ := n.Metric(t, "weir_storage_writes_refused_total", "reason", "disk_low")
		wal, _ := n.Metric(t, "weir_storage_writes_refused_total", "reason", "wal_failed")
		if low <= before && wal == 0 {
			return fmt.Errorf("refused: %v disk_low (%v before), %v wal_failed", low, before, wal)
		}
		return nil
	})
	walFailed, _ := n.Metric(t, "weir_storage_writes_refused_total", "reason", "wal_failed")
	t.Logf("on the full volume: %v writes refused because a WAL write failed", walFailed)
	if reserve == "0" {
		require.Positive(t, walFailed, "without a reserve the WAL runs out of space")
	}
	n.Kill()
	n.Restart()
	r := n.Write(t, writeReq(series(lbls("__name__", "probe"), smp(baseTime(), 1))), "THANOS-TENANT", "tenant-0")
	require.Equal(t, 503, r.Code, "a write on the full volume: %s", r)

	// 3. The volume grows.
	testutil.ResizeTmpfs(t, vol, 160<<20)
	load.waitMore(t, "acknowledged writes once the volume grew", 30)
	n.Stop()
	n.Restart()
	n.Stop()
	rep := load.stop(t)
	t.Logf("load: %d requests acknowledged, refused by status %v, %d transport errors", rep.RequestsOK, rep.ErrorsByStatus, rep.TransportErrors)
	for code := range rep.ErrorsByStatus {
		require.Equal(t, "503", code, "every refusal is a 503 (first error: %s)", rep.FirstErrors[code])
	}
	// A WAL write that fails on a full volume may have written part of its record (a torn WAL, which
	// the next open repairs) or nothing (ENOSPC on its first byte: nothing to repair). Whichever it
	// was, a repair that started must have finished.
	torn := strings.Contains(n.Log(), "Encountered WAL read error, attempting repair")
	repaired := strings.Contains(n.Log(), "Successfully repaired WAL")
	t.Logf("WAL torn by the failed write: %v; repaired once there was room: %v", torn, repaired)
	require.Equal(t, torn, repaired, "a repair of the torn WAL that started must finish")
	acked, _ := requireAckedCopies(t, load.ackLog, []string{data}, 1)
	t.Logf("%d acknowledged samples, all on disk", acked)
}

// TestDiskFullRing: a 3-node ring (RF=3) whose one ingester's volume fills up. Its writes are refused
// (503 to the router, a failed replica) and the ring keeps acknowledging through the other two: no
// answer is other than 204, and every acknowledged sample is on at least two nodes.
func TestDiskFullRing(t *testing.T) {
	t.Parallel()
	vol := testutil.MountTmpfs(t, 64<<20)
	dirs := []string{filepath.Join(vol, "data"), t.TempDir(), t.TempDir()}
	nodes := startRouterIngesters(t, 3, dirs, "--tsdb.min-free-space=8MiB")
	load := startSteadyLoad(t, nodes[1].RemoteWriteURL)
	load.waitMore(t, "acknowledged writes", 20)

	ballast := filepath.Join(vol, "ballast")
	testutil.FillVolume(t, ballast, 4<<20)
	waitMetricAbove(t, nodes[0], "weir_storage_writes_refused_total", 0, "reason", "disk_low")
	load.waitMore(t, "acknowledged writes while one replica's volume is full", 30)
	require.NoError(t, os.Remove(ballast))
	load.waitMore(t, "acknowledged writes after space came back", 10)

	rep := load.stop(t)
	require.Empty(t, rep.ErrorsByStatus, "the quorum covers the full replica: first errors %v", rep.FirstErrors)
	stopAll(nodes...)
	acked, held := requireAckedCopies(t, load.ackLog, dirs, 2)
	t.Logf("%d acknowledged samples, held by the nodes: %v", acked, held)
	require.Less(t, held[0].samples, acked, "the full node missed the writes it refused")
}

// waitMetricAbove waits until the node's metric (with the given labels) is above v.
func waitMetricAbove(t *testing.T, n *weirNode, name string, v float64, kv ...string) {
	t.Helper()
	waitFor(t, 30*time.Second, name+" above "+fmt.Sprint(v), func() error {
		got, ok := n.Metric(t, name, kv...)
		if !ok || got <= v {
			return fmt.Errorf("%s{%s} = %v", name, strings.Join(kv, ","), got)
		}
		return nil
	})
}
