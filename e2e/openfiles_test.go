package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestOpenFileLimit: a flood of new tenants against a node whose open-file limit (lowered with
// prlimit once it is ready, as a small container runtime limit would have it) cannot hold them all.
//  1. New tenants are opened while there is room and then refused with 503, saying why; no answer is
//     other than 204 or 503.
//  2. The node keeps a reserve: it accepts new connections and the tenants it opened keep taking
//     writes, over a new connection too; it stays healthy.
//  3. It stops cleanly (flushing every open tenant), and every acknowledged sample is on disk.
func TestOpenFileLimit(t *testing.T) {
	t.Parallel()
	n := startWeir(t, t.TempDir())
	ts := baseTime()
	r := n.Write(t, writeReq(series(lbls("__name__", "probe"), smp(ts, 1))), "THANOS-TENANT", "first")
	require.Equal(t, 204, r.Code, "%s", r)

	const limit = 256
	rl := unix.Rlimit{Cur: limit, Max: limit}
	require.NoError(t, unix.Prlimit(n.proc.cmd.Process.Pid, unix.RLIMIT_NOFILE, &rl, nil))

	// 1. The flood, over the connection opened before the limit.
	acked := []string{"first"}
	first := map[string]float64{"first": 1} // the first sample of each acknowledged tenant
	refused := 0
	for i := range 150 {
		tenant := fmt.Sprintf("flood-%d", i)
		r := n.Write(t, writeReq(series(lbls("__name__", "probe"), smp(ts, float64(i)))), "THANOS-TENANT", tenant)
		switch r.Code {
		case 204:
			acked = append(acked, tenant)
			first[tenant] = float64(i)
		case 503:
			refused++
			require.Contains(t, r.Body, "open files are in use", "a refusal says why")
		default:
			t.Fatalf("tenant %s: %s", tenant, r)
		}
	}
	t.Logf("limit %d: %d new tenants opened, %d refused", limit, len(acked)-1, refused)
	require.Positive(t, refused, "the limit cannot hold 150 more tenants")
	require.Greater(t, len(acked), 2, "tenants open while there is room")
	v, _ := n.Metric(t, "weir_tenant_opens_refused_total")
	require.Equal(t, float64(refused), v)

	// 2. New connections, and the open tenants' writes.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i, tenant := range acked {
		resp, err := post(fresh, n.RemoteWriteURL, encodeWrite(t, writeReq(series(lbls("__name__", "probe"), smp(ts+1000, float64(i))))), rwHeaders("THANOS-TENANT", tenant))
		require.NoError(t, err, "a new connection to the node")
		require.Equal(t, 204, resp.Code, "tenant %s: %s", tenant, resp)
	}
	code, body := n.Get(t, "/-/healthy")
	require.Equal(t, 200, code, body)

	// 3. A clean stop, and every acknowledged sample on disk.
	n.Stop()
	require.NotContains(t, n.Log(), "panic", "no panic on the way")
	for i, tenant := range acked {
		want := []sample{{T: ts, V: first[tenant]}, {T: ts + 1000, V: float64(i)}}
		require.Equal(t, want, readTenant(t, n.Dir, tenant)[key("__name__", "probe")], "tenant %s", tenant)
	}
}

// TestOpenFileLimitRing: the same flood through a 3-node RF=3 ring whose node 0 runs short of
// descriptors. Node 0 refuses the tenants it has no room for; the other two replicas make the quorum,
// so every write is acknowledged, node 0 stays up, and every acknowledged sample is on two nodes or
// more after a clean stop.
func TestOpenFileLimitRing(t *testing.T) {
	t.Parallel()
	nodes := startRouterIngesters(t, 3, []string{t.TempDir(), t.TempDir(), t.TempDir()})
	// Room for the connections of the ring and a few dozen tenants, as in TestOpenFileLimit.
	rl := unix.Rlimit{Cur: 256, Max: 256}
	require.NoError(t, unix.Prlimit(nodes[0].proc.cmd.Process.Pid, unix.RLIMIT_NOFILE, &rl, nil))

	ts := baseTime()
	const tenants = 150
	for i := range tenants {
		tenant := fmt.Sprintf("flood-%d", i)
		r := nodes[1].Write(t, writeReq(series(lbls("__name__", "probe"), smp(ts, float64(i)))), "THANOS-TENANT", tenant)
		require.Equal(t, 204, r.Code, "tenant %s: the two other replicas make the quorum: %s", tenant, r)
	}
	// Every tenant's write reaches node 0 once, and the router does not ask again for a tenant node 0
	// refused (it answers ResourceExhausted): each tenant is opened or refused, once. Node 0 may still
	// be answering the last writes after the quorum of the two others answered the sender.
	var refused, open float64
	waitFor(t, 30*time.Second, "node 0 answering every tenant's write", func() error {
		refused, _ = nodes[0].Metric(t, "weir_tenant_opens_refused_total")
		open, _ = nodes[0].Metric(t, "weir_tenants_open")
		if refused+open < tenants {
			return fmt.Errorf("%v refused, %v open", refused, open)
		}
		return nil
	})
	t.Logf("node 0 opened %v tenants and refused %v", open, refused)
	require.Positive(t, refused)
	require.Equal(t, float64(tenants), refused+open, "a refused open is not retried")
	code, body := nodes[0].Get(t, "/-/healthy")
	require.Equal(t, 200, code, body)

	stopAll(nodes...)
	for i := range tenants {
		tenant := fmt.Sprintf("flood-%d", i)
		copies := 0
		for _, n := range nodes {
			if _, err := os.Stat(filepath.Join(n.Dir, tenant)); err != nil {
				continue
			}
			if got := readTenant(t, n.Dir, tenant)[key("__name__", "probe")]; len(got) > 0 {
				require.Equal(t, []sample{{T: ts, V: float64(i)}}, got, "tenant %s on %s", tenant, n.Dir)
				copies++
			}
		}
		require.GreaterOrEqual(t, copies, 2, "tenant %s", tenant)
	}
}

// TestOpenFileLimitRestart: a node killed with more tenants on disk than its limit lets it open at
// the next start. It starts anyway and is ready with the tenants it has room for; the others wait
// (weir_startup_tenants_waiting) and are opened, flushed, shipped and closed one by one as pruning
// idle tenants makes room. In the end every acknowledged sample is in the bucket, none of them
// waiting for a write that may never come.
func TestOpenFileLimitRestart(t *testing.T) {
	t.Parallel()
	bucket := t.TempDir()
	n := startWeir(t, t.TempDir(), "--objstore.config="+fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", bucket))
	ts := baseTime()
	const tenants = 100
	for i := range tenants {
		r := n.Write(t, writeReq(series(lbls("__name__", "probe"), smp(ts, float64(i)))), "THANOS-TENANT", fmt.Sprintf("t-%d", i))
		require.Equal(t, 204, r.Code, "%s", r)
	}
	n.Kill() // every sample in the WALs only

	n.nofile = 256
	n.args = append(n.args, "--tsdb.tenant-idle-timeout=1s")
	n.Restart()
	// The drain may have started by now: the start's own figures are the gauge it set and its log.
	opened, _ := n.Metric(t, "weir_startup_tenants_opened")
	t.Logf("at 256 open files: %v tenants opened at start, the others waiting", opened)
	require.Positive(t, opened)
	require.Less(t, opened, float64(tenants), "the limit cannot hold %d tenants", tenants)
	require.Contains(t, n.Log(), fmt.Sprintf("waiting=%d", tenants-int(opened)), "the start says how many wait")

	waitFor(t, 2*time.Minute, "every tenant drained", func() error {
		if v, _ := n.Metric(t, "weir_startup_tenants_waiting"); v > 0 {
			return fmt.Errorf("%v tenants waiting", v)
		}
		return nil
	})
	n.Stop()
	require.NotContains(t, n.Log(), "panic")

	metas, err := filepath.Glob(filepath.Join(bucket, "*", "meta.json"))
	require.NoError(t, err)
	got := map[string][]sample{}
	for _, m := range metas {
		id := readThanosMeta(t, filepath.Dir(m)).Thanos.Labels["tenant_id"]
		got[id] = append(got[id], readBlock(t, filepath.Dir(m))[key("__name__", "probe")]...)
	}
	for i := range tenants {
		id := fmt.Sprintf("t-%d", i)
		require.Equal(t, []sample{{T: ts, V: float64(i)}}, got[id], "tenant %s in the bucket", id)
	}
}
