package e2e

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
	"github.com/weir-metrics/weir/loadgen"
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
		if bin == "thanos" && !p.kill {
			// Thanos Receive v0.42.5 can lose a sample it acknowledged while its shutdown flush runs
			// (seen here twice under load: the one sample at the flushed block's maxt, on every node),
			// so its clean stop is not raced by writes; Weir's clean stop and Thanos' kill are.
			load.stop(t)
			stop(false)
		} else {
			stop(p.kill) // under load: the sender sees failures, which it does not count as acknowledged
			load.stop(t)
		}
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

	requireContinuousInQuery(t, thanos, objstore, ackLogs)
}

// requireContinuousInQuery reads one series back through Thanos Store (over the bucket) and Thanos
// Query: every sample the three rings acknowledged for it is there with its value across both
// switches, on at least two replicas (the write quorum); deduplicated, it is one series with each
// timestamp once. (The deduplicated series is not compared sample by sample: Thanos' penalty-based
// deduplication follows one replica and may skip a sample only the others hold — seen once here.)
func requireContinuousInQuery(t *testing.T, thanos, objstore string, ackLogs []string) {
	t.Helper()
	var (
		series labels.Labels
		tenant string
		want   = map[int64]float64{}
	)
	var newest int64 // the series' newest sample of the last phase
	for i, l := range ackLogs {
		spec, records, err := loadgen.ReadAckLog(l)
		require.NoError(t, err)
		for rec, err := range records {
			require.NoError(t, err)
			for smp := range rec.Samples(spec) {
				if series.IsEmpty() {
					series, tenant = smp.Labels, smp.Tenant
				}
				if labels.Equal(smp.Labels, series) && smp.Tenant == tenant {
					want[smp.Timestamp] = smp.Value
					if i == len(ackLogs)-1 {
						newest = max(newest, smp.Timestamp)
					}
				}
			}
		}
	}
	require.NotEmpty(t, want)
	// The last phase is Thanos Receive's clean stop, whose flush can leave the head's newest sample out
	// of the block it ships (seen in CI: that one sample on no replica in the bucket, while
	// requireAckedCopies found it on disk on two nodes or more). No later start ships it, so it is not
	// asked of the bucket here; every other sample, Weir's phase whole, is.
	delete(want, newest)
	minT, maxT := int64(math.MaxInt64), int64(math.MinInt64)
	for ts := range want {
		minT, maxT = min(minT, ts), max(maxT, ts)
	}

	cfgFile := filepath.Join(t.TempDir(), "objstore.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(objstore), 0o600))
	queryHTTP := startBucketQuery(t, thanos, cfgFile)

	var matchers []string
	series.Range(func(l labels.Label) { matchers = append(matchers, fmt.Sprintf("%s=%q", l.Name, l.Value)) })
	matchers = append(matchers, fmt.Sprintf("tenant_id=%q", tenant))
	window := (maxT-minT)/1000 + 60
	query := func(dedup bool) (map[string]map[int64]string, error) {
		q := url.Values{"query": {fmt.Sprintf("{%s}[%ds]", strings.Join(matchers, ","), window)},
			"time": {strconv.FormatFloat(float64(maxT)/1000+1, 'f', 3, 64)}, "dedup": {strconv.FormatBool(dedup)}}
		result, err := queryAPI(&http.Client{Timeout: 10 * time.Second}, "http://"+queryHTTP+"/api/v1/query?"+q.Encode())
		if err != nil {
			return nil, err
		}
		out := map[string]map[int64]string{} // replica → timestamp → value
		for _, res := range result {
			got := map[int64]string{}
			for _, v := range res.Values {
				ts := int64(math.Round(v[0].(float64) * 1000))
				if _, dup := got[ts]; dup {
					return nil, fmt.Errorf("replica %q: timestamp %d twice", res.Metric["replica"], ts)
				}
				got[ts] = v[1].(string)
			}
			out[res.Metric["replica"]] = got
		}
		return out, nil
	}
	waitFor(t, 90*time.Second, "Thanos Query returning every acknowledged sample of one series on a quorum of replicas", func() error {
		replicas, err := query(false)
		if err != nil {
			return err
		}
		var short []string
		for ts, v := range want {
			n := 0
			for _, got := range replicas {
				if got[ts] == strconv.FormatFloat(v, 'f', -1, 64) {
					n++
				}
			}
			if n < 2 {
				short = append(short, fmt.Sprintf("%d=%v on %d replicas", ts, v, n))
			}
		}
		if len(short) > 0 {
			slices.Sort(short)
			return fmt.Errorf("%d of %d acknowledged samples on fewer than 2 of %d replicas: %v", len(short), len(want), len(replicas), short)
		}
		return nil
	})
	deduped, err := query(true)
	require.NoError(t, err)
	require.Len(t, deduped, 1, "deduplicated: one series, without the replica label")
	require.Contains(t, deduped, "")
	t.Logf("Thanos Query: all %d acknowledged samples of %s, over the three rings, each on at least 2 replicas", len(want), series)
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
