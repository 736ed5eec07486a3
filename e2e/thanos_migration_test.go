package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestThanosReceiveMigration: a 3-node Thanos Receive ring (RF=3, v0.42.5) under load is stopped and
// Weir starts on the same data directories with the same arguments; then the way back, Weir →
// Thanos. Each ring takes load through its first node and is stopped with the sender still running:
// the first Thanos ring is killed (SIGKILL: its acknowledged samples are only in its WALs, which Weir
// replays), the others stop cleanly (SIGTERM: each flushes its heads into blocks and the next one
// finds them, shipped or not).
//
// Asserted at the end: every sample any ring acknowledged is on at least a quorum (2) of the data
// directories, with its exact value (the WAL of one, replayed by the other; the blocks one flushed);
// every block a ring shipped is still the bucket's same object when the next ring stopped (nothing is
// uploaded twice: each honours the other's thanos.shipper.json); and every block on local disk
// reached the bucket.
func TestThanosReceiveMigration(t *testing.T) {
	thanos := testutil.RequireTool(t, "WEIR_THANOS", "bin/thanos", "make tools")
	requireBinary(t)

	const nodes = 3
	grpcAddrs := testutil.LoopbackAddrs(t, nodes)
	httpAddrs := testutil.LoopbackAddrs(t, nodes)
	rwAddrs := testutil.LoopbackAddrs(t, nodes)
	capnpAddrs := testutil.LoopbackAddrs(t, nodes) // Thanos listens there even when it replicates over gRPC
	hashrings := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, hashrings, grpcAddrs...)
	bucket := t.TempDir()
	objstore := fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", bucket)

	dirs := make([]string, nodes)
	args := make([][]string, nodes)
	for i := range nodes {
		dirs[i] = t.TempDir()
		// What kube-thanos passes, less what needs Kubernetes.
		args[i] = []string{
			"--tsdb.path=" + dirs[i], "--tsdb.retention=15d",
			"--grpc-address=" + grpcAddrs[i], "--http-address=" + httpAddrs[i], "--remote-write.address=" + rwAddrs[i],
			"--receive.local-endpoint=" + grpcAddrs[i], "--receive.hashrings-file=" + hashrings,
			"--receive.replication-factor=3", "--receive.tenant-label-name=tenant_id",
			fmt.Sprintf(`--label=replica="r%d"`, i), `--label=receive="true"`,
			"--objstore.config=" + objstore, "--log.level=debug", "--receive.capnproto-address=" + capnpAddrs[i],
		}
	}

	var ackLogs []string
	var shipped map[string]time.Time // block → modification time of its meta.json in the bucket
	for phase, p := range []struct {
		bin  string
		kill bool
	}{{"thanos", true}, {"weir", false}, {"thanos", false}} {
		bin := p.bin
		t.Logf("phase %d: %s receive on the data directories", phase, bin)
		stop := startReceiveRing(t, bin, thanos, dirs, args, httpAddrs)
		load := startSteadyLoad(t, "http://"+rwAddrs[0]+"/api/v1/receive")
		load.waitMore(t, bin+" ring acknowledging writes", 30)
		stop(p.kill) // under load: the sender sees failures, which it does not count as acknowledged
		load.stop(t)
		ackLogs = append(ackLogs, load.ackLog)

		now := bucketMetas(t, bucket)
		for id, mtime := range shipped {
			require.Contains(t, now, id, "block %s left the bucket", id)
			require.Equal(t, mtime, now[id], "block %s was uploaded again in phase %d (%s)", id, phase, bin)
		}
		shipped = now
	}

	for i, l := range ackLogs {
		acked, _ := requireAckedCopies(t, l, dirs, 2)
		t.Logf("phase %d: %d acknowledged samples, each on at least 2 of 3 nodes", i, acked)
	}
	local := 0
	for _, dir := range dirs {
		for _, tn := range tenantDirs(t, dir) {
			metas, err := filepath.Glob(filepath.Join(dir, tn, "*", "meta.json"))
			require.NoError(t, err)
			for _, m := range metas {
				id := filepath.Base(filepath.Dir(m))
				require.Contains(t, shipped, id, "block %s of %s/%s never reached the bucket", id, dir, tn)
				local++
			}
		}
	}
	require.Positive(t, local, "no block on local disk: the rings flushed nothing")
	t.Logf("%d blocks on local disk, %d in the bucket, each uploaded once", local, len(shipped))
}

// startReceiveRing starts one receive process per data directory, Thanos' or Weir's with the same
// arguments, waits until all are ready, and returns the function that stops them all: SIGKILL, or
// SIGTERM and the exit within a minute, with code 0.
func startReceiveRing(t *testing.T, which, thanosBin string, dirs []string, args [][]string, httpAddrs []string) (stop func(kill bool)) {
	t.Helper()
	if which == "weir" {
		nodes := make([]*weirNode, len(dirs))
		for i := range dirs {
			nodes[i] = startWeir(t, dirs[i], args[i]...)
		}
		return func(kill bool) {
			for _, n := range nodes {
				if kill {
					n.Kill()
				} else {
					n.Stop()
				}
			}
		}
	}
	procs := make([]*proc, len(dirs))
	for i := range dirs {
		logPath := filepath.Join(t.TempDir(), "thanos.log")
		p, err := launch(logPath, filepath.Dir(logPath), thanosBin, append([]string{"receive"}, args[i]...)...)
		require.NoError(t, err)
		procs[i] = p
		cleanupProc(t, fmt.Sprintf("thanos receive %d", i), logPath, func() *proc { return p })
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for i, addr := range httpAddrs {
		waitFor(t, 60*time.Second, fmt.Sprintf("thanos receive %d ready", i), func() error {
			if procs[i].exited() {
				return fmt.Errorf("exited with code %d", procs[i].exitCode())
			}
			resp, err := client.Get("http://" + addr + "/-/ready")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/-/ready: %s", resp.Status)
			}
			return nil
		})
	}
	return func(kill bool) {
		for _, p := range procs {
			if kill {
				p.killGroup()
			} else {
				require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			}
		}
		for i, p := range procs {
			require.True(t, p.wait(time.Minute), "thanos receive %d did not stop within a minute", i)
			if !kill {
				require.Zero(t, p.exitCode(), "thanos receive %d exit code", i)
			}
		}
	}
}

// bucketMetas maps every block of a FILESYSTEM bucket to the modification time of its meta.json
// (uploaded last, so a block uploaded again has a new one).
func bucketMetas(t *testing.T, root string) map[string]time.Time {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(root, "*", "meta.json"))
	require.NoError(t, err)
	out := make(map[string]time.Time, len(metas))
	for _, m := range metas {
		fi, err := os.Stat(m)
		require.NoError(t, err)
		out[filepath.Base(filepath.Dir(m))] = fi.ModTime()
	}
	return out
}
