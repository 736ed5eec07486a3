package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// Shipping under faults: object storage down, weir killed around an upload, a corrupted shipper state
// file. Blocks are made without waiting two hours: the tests write samples spanning more than 3h of old
// timestamps, and the TSDB cuts the older 2h blocks at once (the rest is cut on shutdown).

// s3Server is a versitygw serving a directory as S3 on a fixed loopback address, which a test can start
// late, kill and start again: the objects are files under root, so they survive.
type s3Server struct {
	t       *testing.T
	bin     string
	root    string // a directory per bucket; the bucket of these tests is "weir"
	addr    string
	logPath string
	proc    *proc
}

// newS3Server prepares a server (not started) with an empty bucket "weir".
func newS3Server(t *testing.T) *s3Server {
	t.Helper()
	s := &s3Server{
		t:    t,
		bin:  testutil.RequireTool(t, "WEIR_VERSITYGW", "bin/versitygw", "make tools"),
		root: t.TempDir(),
		addr: testutil.LoopbackAddrs(t, 1)[0],
	}
	s.logPath = filepath.Join(t.TempDir(), "versitygw.log")
	require.NoError(t, os.MkdirAll(s.bucketDir(), 0o755))
	cleanupProc(t, "versitygw", s.logPath, func() *proc { return s.proc })
	return s
}

func (s *s3Server) bucketDir() string { return filepath.Join(s.root, "weir") }

// Start runs the server and waits until it accepts connections.
func (s *s3Server) Start() {
	s.t.Helper()
	p, err := launch(s.logPath, filepath.Dir(s.logPath), s.bin, "--access", "testkey", "--secret", "testsecret", "--port", s.addr, "posix", s.root)
	require.NoError(s.t, err)
	s.proc = p
	waitFor(s.t, 30*time.Second, "versitygw listening on "+s.addr, func() error {
		if p.exited() {
			return fmt.Errorf("versitygw exited with code %d", p.exitCode())
		}
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// configFile writes the objstore YAML of the server. max_retries: 1 makes a request to a server that is
// down fail at once instead of after minio-go's ten retries with backoff, so that the failure shows in
// the metrics quickly; shipping retries on its own, every --shipper.interval.
func (s *s3Server) configFile() string {
	s.t.Helper()
	path := filepath.Join(s.t.TempDir(), "objstore.yml")
	require.NoError(s.t, os.WriteFile(path, fmt.Appendf(nil, `type: S3
config:
  bucket: weir
  endpoint: %s
  access_key: testkey
  secret_key: testsecret
  insecure: true
  region: us-east-1
  bucket_lookup_type: path
  max_retries: 1
`, s.addr), 0o644))
	return path
}

// spanRequest writes n series of one-minute samples over [from, from+span) and adds them to want.
func spanRequest(want map[string][]sample, name string, n int, from int64, span time.Duration) *prompb.WriteRequest {
	req := writeReq()
	for s := range n {
		kv := lbls("__name__", name, "series", strconv.Itoa(s))
		ts := series(kv)
		for i := int64(0); i < span.Milliseconds()/60_000; i++ {
			p := smp(from+i*60_000, float64(s*1_000_000)+float64(i))
			ts.Samples = append(ts.Samples, p)
			want[key(kv...)] = append(want[key(kv...)], sample{T: p.Timestamp, V: p.Value})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

// minutesAgo is a timestamp (ms) d before now, on a whole minute.
func minutesAgo(d time.Duration) int64 {
	return time.Now().Add(-d).Truncate(time.Minute).UnixMilli()
}

// blockObjects lists the blocks of a bucket directory (as versitygw or a FILESYSTEM bucket lays them
// out: one directory per block, one file per object) with each block's objects, relative to it.
// Entries that are not block directories (a server's temporary files) are left out.
func blockObjects(t *testing.T, bucketDir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	entries, err := os.ReadDir(bucketDir)
	require.NoError(t, err)
	for _, e := range entries {
		if _, err := ulid.Parse(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		out[e.Name()] = relFiles(t, filepath.Join(bucketDir, e.Name()))
	}
	return out
}

// shippedBlocks returns the sorted ULIDs of the blocks whose meta.json is in the bucket directory.
func shippedBlocks(t *testing.T, bucketDir string) []string {
	t.Helper()
	var ids []string
	for id, objs := range blockObjects(t, bucketDir) {
		if slices.Contains(objs, "meta.json") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// localBlocks returns the sorted ULIDs of the complete blocks in a tenant directory.
func localBlocks(t *testing.T, tenantDir string) []string {
	t.Helper()
	var ids []string
	entries, err := os.ReadDir(tenantDir)
	require.NoError(t, err)
	for _, e := range entries {
		if _, err := ulid.Parse(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(tenantDir, e.Name(), "meta.json")); err == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// relFiles lists the regular files under dir, relative and slash-separated, sorted.
func relFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	}))
	slices.Sort(files)
	return files
}

// shipperState reads the uploaded list of a tenant's thanos.shipper.json, sorted.
func shipperState(t *testing.T, tenantDir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tenantDir, "thanos.shipper.json"))
	require.NoError(t, err)
	var st struct {
		Version  int      `json:"version"`
		Uploaded []string `json:"uploaded"`
	}
	require.NoError(t, json.Unmarshal(b, &st), "thanos.shipper.json: %s", b)
	require.Equal(t, 1, st.Version)
	slices.Sort(st.Uploaded)
	return st.Uploaded
}

func writeShipperState(t *testing.T, tenantDir string, uploaded []string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"version": 1, "uploaded": uploaded})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(tenantDir, "thanos.shipper.json"), b, 0o644))
}

// metaPutRe matches versitygw's access log line of a successful upload of a block's meta.json.
var metaPutRe = regexp.MustCompile(`\|\s*200\s*\|.*\|\s*PUT\s*\|\s*/weir/([0-9A-HJKMNP-TV-Z]{26})/meta\.json\s*\|`)

// metaUploads counts, from the server's access log, the successful uploads of each block's meta.json:
// what the bucket saw, whether or not weir lived to log it.
func (s *s3Server) metaUploads() map[string]int {
	counts := map[string]int{}
	for line := range strings.Lines(readFrom(s.logPath, 0)) {
		if m := metaPutRe.FindStringSubmatch(line); m != nil {
			counts[m[1]]++
		}
	}
	return counts
}

// requireMetaUploads waits until the server's access log shows exactly want uploads of meta.json per block
// (it logs a request once answered, so the last line may trail the answer a little).
func (s *s3Server) requireMetaUploads(want map[string]int) {
	s.t.Helper()
	waitFor(s.t, 10*time.Second, "meta.json uploads as expected", func() error {
		if got := s.metaUploads(); !maps.Equal(got, want) {
			return fmt.Errorf("meta.json uploads per block: got %v, want %v", got, want)
		}
		return nil
	})
}

var uploadedRe = regexp.MustCompile(`msg="uploaded block".*\bblock=([0-9A-HJKMNP-TV-Z]{26})\b`)

// uploadCounts counts the "uploaded block" log lines of every block in a node's log (all its starts).
func uploadCounts(log string) map[string]int {
	counts := map[string]int{}
	for line := range strings.Lines(log) {
		if m := uploadedRe.FindStringSubmatch(line); m != nil {
			counts[m[1]]++
		}
	}
	return counts
}

// requireShippedExactly checks the end state after a clean stop: every local block of the tenant is
// in the bucket, complete (its chunk segments, index and meta.json, nothing else), the bucket holds no
// other block, the state file lists exactly those blocks, and the blocks read back to exactly want.
func requireShippedExactly(t *testing.T, bucketDir, tenantDir string, want map[string][]sample) {
	t.Helper()
	local := localBlocks(t, tenantDir)
	require.NotEmpty(t, local)
	objects := blockObjects(t, bucketDir)
	require.ElementsMatch(t, local, slices.Collect(maps.Keys(objects)), "blocks in the bucket vs. on disk")
	for _, id := range local {
		var wantObjs []string
		for _, f := range relFiles(t, filepath.Join(tenantDir, id)) {
			if strings.HasPrefix(f, "chunks/") || f == "index" || f == "meta.json" {
				wantObjs = append(wantObjs, f)
			}
		}
		require.Equal(t, wantObjs, objects[id], "objects of block %s", id)
	}
	require.Equal(t, local, shipperState(t, tenantDir), "thanos.shipper.json")

	got := map[string][]sample{}
	for _, id := range local {
		for k, v := range readBlock(t, filepath.Join(bucketDir, id)) {
			got[k] = append(got[k], v...)
		}
	}
	for k := range got {
		sortSamples(got[k])
	}
	require.Equal(t, want, got, "the bucket holds exactly the samples written")
}

// TestShipWhileObjectStorageDown: weir starts and ingests while its S3 server is down — remote write
// answers 204, /-/ready 200, failed uploads are counted — and once the server is up the blocks go up
// without intervention; after a clean stop the bucket holds exactly what was written, each block
// uploaded once.
func TestShipWhileObjectStorageDown(t *testing.T) {
	s3 := newS3Server(t) // not started
	dir := t.TempDir()
	n := startWeir(t, dir, "--objstore.config-file="+s3.configFile(), "--shipper.interval=200ms") // ready without the bucket
	tenantDir := filepath.Join(dir, "team-a")

	want := map[string][]sample{}
	resp := n.Write(t, spanRequest(want, "down_test", 3, minutesAgo(5*time.Hour+10*time.Minute), 5*time.Hour), "THANOS-TENANT", "team-a")
	require.Equal(t, 204, resp.Code, resp.String())
	waitFor(t, 30*time.Second, "blocks cut while the bucket is down", func() error {
		if len(localBlocks(t, tenantDir)) == 0 {
			return fmt.Errorf("no block in %s", tenantDir)
		}
		return nil
	})
	var firstFailures float64
	waitFor(t, 30*time.Second, "failed uploads counted", func() error {
		v, _ := n.Metric(t, "weir_shipper_upload_failures_total", "tenant", "team-a")
		if firstFailures == 0 {
			firstFailures = v
		}
		if firstFailures == 0 || v <= firstFailures {
			return fmt.Errorf("weir_shipper_upload_failures_total is %g (first seen %g): not growing", v, firstFailures)
		}
		return nil
	})
	// Ingestion and readiness do not care.
	resp = n.Write(t, spanRequest(want, "down_test_late", 1, minutesAgo(9*time.Minute), 5*time.Minute), "THANOS-TENANT", "team-a")
	require.Equal(t, 204, resp.Code, resp.String())
	code, body := n.Get(t, "/-/ready")
	require.Equal(t, 200, code, body)
	pending, _ := n.Metric(t, "weir_shipper_blocks_pending", "tenant", "team-a")
	require.Positive(t, pending)
	require.Empty(t, shippedBlocks(t, s3.bucketDir()))

	// The server comes up: the shipping loop catches up on its own.
	s3.Start()
	waitFor(t, 30*time.Second, "the blocks cut meanwhile shipped", func() error {
		local, shipped := localBlocks(t, tenantDir), shippedBlocks(t, s3.bucketDir())
		if len(shipped) == 0 || !slices.Equal(local, shipped) {
			return fmt.Errorf("%d local blocks, %d in the bucket", len(local), len(shipped))
		}
		return nil
	})
	n.Stop() // cuts the head and ships it

	requireShippedExactly(t, s3.bucketDir(), tenantDir, want)
	once := map[string]int{}
	for _, id := range localBlocks(t, tenantDir) {
		once[id] = 1
	}
	s3.requireMetaUploads(once)
	require.Equal(t, once, uploadCounts(n.Log()))
}

// TestShipAcrossSIGKILL: weir is SIGKILLed while it ships (at least one block is in the bucket) and
// restarted on the same directory. A kill can land between any two steps of an upload; beyond the real
// kill, the test rewinds the state to the two worst moments so that the restart surely meets them:
// block A was completely uploaded but not yet recorded (killed before the state write), and block B
// had its files but not its meta.json uploaded (killed mid-upload). After the restart and a clean stop
// every block is in the bucket exactly once: A is recognised and not uploaded again, B is completed,
// no other block is uploaded twice, and thanos.shipper.json lists exactly the local blocks.
func TestShipAcrossSIGKILL(t *testing.T) {
	s3 := newS3Server(t)
	s3.Start()
	dir := t.TempDir()
	n := startWeir(t, dir, "--objstore.config-file="+s3.configFile(), "--shipper.interval=200ms")
	tenantDir := filepath.Join(dir, "team-a")

	// Seven hours: the TSDB cuts two or three blocks at once; the last hours stay in the head (WAL).
	want := map[string][]sample{}
	resp := n.Write(t, spanRequest(want, "kill_test", 3, minutesAgo(7*time.Hour+10*time.Minute), 7*time.Hour), "THANOS-TENANT", "team-a")
	require.Equal(t, 204, resp.Code, resp.String())
	waitFor(t, 30*time.Second, "two blocks in the bucket", func() error {
		if got := len(shippedBlocks(t, s3.bucketDir())); got < 2 {
			return fmt.Errorf("%d blocks in the bucket", got)
		}
		return nil
	})
	n.Kill()

	shipped := shippedBlocks(t, s3.bucketDir())
	recorded := shipperState(t, tenantDir)
	t.Logf("at the kill: %d blocks local, %d in the bucket, %d recorded", len(localBlocks(t, tenantDir)), len(shipped), len(recorded))
	blockA, blockB := shipped[0], shipped[1]
	writeShipperState(t, tenantDir, slices.DeleteFunc(recorded, func(id string) bool { return id == blockA || id == blockB }))
	require.NoError(t, os.Remove(filepath.Join(s3.bucketDir(), blockB, "meta.json")))

	n.Restart()
	waitFor(t, 30*time.Second, "the interrupted upload completed", func() error {
		if !slices.Contains(shippedBlocks(t, s3.bucketDir()), blockB) {
			return fmt.Errorf("no meta.json for block %s", blockB)
		}
		return nil
	})
	n.Stop()

	requireShippedExactly(t, s3.bucketDir(), tenantDir, want)
	// Counted by the server: weir may have been killed after an upload and before logging it.
	wantUploads := map[string]int{}
	for _, id := range localBlocks(t, tenantDir) {
		wantUploads[id] = 1
	}
	wantUploads[blockB] = 2 // once before the kill (its meta.json then removed), once after
	s3.requireMetaUploads(wantUploads)
	require.Contains(t, n.Log(), "block already in bucket; recording it as uploaded")
}

// TestShipWithCorruptedState: a thanos.shipper.json that cannot be read does not stop weir: it starts,
// rebuilds the state from the bucket (the blocks already there are not uploaded again) and ships the
// new blocks. FILESYSTEM bucket of the embedded default.
func TestShipWithCorruptedState(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"garbage", `{"version":1,"uploaded":["01J`},
		{"empty", ``},
		{"unknown version", `{"version":7,"uploaded":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tenantDir, bucketDir := filepath.Join(dir, "team-a"), filepath.Join(dir, "bucket")
			want := map[string][]sample{}
			n := startWeir(t, dir, "--shipper.interval=200ms")
			resp := n.Write(t, spanRequest(want, "corrupt_test", 2, minutesAgo(12*time.Hour), 5*time.Hour), "THANOS-TENANT", "team-a")
			require.Equal(t, 204, resp.Code, resp.String())
			n.Stop()
			first := shippedBlocks(t, bucketDir)
			require.NotEmpty(t, first)
			require.Equal(t, first, shipperState(t, tenantDir))

			require.NoError(t, os.WriteFile(filepath.Join(tenantDir, "thanos.shipper.json"), []byte(tc.content), 0o644))
			n.Restart() // ready: not a crash loop
			resp = n.Write(t, spanRequest(want, "corrupt_test", 2, minutesAgo(6*time.Hour), 5*time.Hour), "THANOS-TENANT", "team-a")
			require.Equal(t, 204, resp.Code, resp.String())
			n.Stop()

			require.Contains(t, n.Log(), "shipper state file unreadable; it will be rebuilt from the bucket")
			requireShippedExactly(t, bucketDir, tenantDir, want)
			require.Greater(t, len(localBlocks(t, tenantDir)), len(first), "the second run shipped new blocks")
			for id, c := range uploadCounts(n.Log()) {
				require.Equal(t, 1, c, "block %s uploaded %d times", id, c)
			}
		})
	}
}

// TestPruneIdleTenantProcess: with --tsdb.tenant-idle-timeout, an idle tenant's head is cut, shipped
// and its TSDB closed by the running process (its metrics go away); a restart leaves it closed; its
// next write reopens it, and in the end the bucket holds everything, each block uploaded once.
func TestPruneIdleTenantProcess(t *testing.T) {
	dir := t.TempDir()
	tenantDir, bucketDir := filepath.Join(dir, "team-a"), filepath.Join(dir, "bucket")
	n := startWeir(t, dir, "--tsdb.tenant-idle-timeout=1s", "--shipper.interval=200ms")
	want := map[string][]sample{}
	resp := n.Write(t, spanRequest(want, "prune_test", 2, minutesAgo(70*time.Minute), time.Hour), "THANOS-TENANT", "team-a")
	require.Equal(t, 204, resp.Code, resp.String())

	waitFor(t, 30*time.Second, "the idle tenant pruned", func() error {
		if v, _ := n.Metric(t, "weir_tenants_pruned_total"); v < 1 {
			return fmt.Errorf("weir_tenants_pruned_total is %g", v)
		}
		return nil
	})
	open, _ := n.Metric(t, "weir_tenants_open")
	require.Zero(t, open)
	_, ok := n.Metric(t, "prometheus_tsdb_head_series", "tenant", "team-a")
	require.False(t, ok, "a pruned tenant's TSDB metrics are unregistered")
	require.Equal(t, localBlocks(t, tenantDir), shippedBlocks(t, bucketDir), "pruning shipped the flushed head")

	// A restart leaves the pruned tenant closed: it has nothing to replay.
	n.Stop()
	n.Restart()
	startup, _ := n.Metric(t, "weir_startup_tenants")
	require.Zero(t, startup, "the pruned tenant is not opened at start")
	open, _ = n.Metric(t, "weir_tenants_open")
	require.Zero(t, open)

	resp = n.Write(t, spanRequest(want, "prune_test", 2, minutesAgo(5*time.Minute), 3*time.Minute), "THANOS-TENANT", "team-a")
	require.Equal(t, 204, resp.Code, "a write reopens a pruned tenant: %s", resp)
	n.Stop()

	requireShippedExactly(t, bucketDir, tenantDir, want)
	for id, c := range uploadCounts(n.Log()) {
		require.Equal(t, 1, c, "block %s uploaded %d times", id, c)
	}
}

// TestExpiredTenantRemoved: with --tsdb.retention=2h, a tenant whose newest sample is 3h old (a
// tenant that stopped writing long ago, or a backfill) is pruned, shipped, and its directory removed
// from local disk, as Thanos Receive removes such a tenant; a pruned tenant with recent samples stays
// on disk. The bucket holds every sample of both.
func TestExpiredTenantRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bucketDir := filepath.Join(dir, "bucket")
	n := startWeir(t, dir, "--tsdb.tenant-idle-timeout=1s", "--shipper.interval=200ms", "--tsdb.retention=2h")
	want := map[string][]sample{}
	resp := n.Write(t, spanRequest(want, "expire_old", 2, minutesAgo(4*time.Hour), time.Hour), "THANOS-TENANT", "old")
	require.Equal(t, 204, resp.Code, resp.String())
	resp = n.Write(t, spanRequest(want, "expire_recent", 2, minutesAgo(30*time.Minute), 10*time.Minute), "THANOS-TENANT", "recent")
	require.Equal(t, 204, resp.Code, resp.String())

	waitFor(t, time.Minute, "the expired tenant's directory removed", func() error {
		if v, _ := n.Metric(t, "weir_tenants_expired_total"); v < 1 {
			return fmt.Errorf("weir_tenants_expired_total is %g", v)
		}
		return nil
	})
	require.NoDirExists(t, filepath.Join(dir, "old"))
	waitFor(t, 30*time.Second, "the recent tenant pruned", func() error {
		if v, _ := n.Metric(t, "weir_tenants_pruned_total"); v < 2 {
			return fmt.Errorf("weir_tenants_pruned_total is %g", v)
		}
		return nil
	})
	expired, _ := n.Metric(t, "weir_tenants_expired_total")
	require.Equal(t, 1.0, expired, "the recent tenant is within retention")
	require.DirExists(t, filepath.Join(dir, "recent"))
	n.Stop()

	got := map[string][]sample{}
	for _, id := range shippedBlocks(t, bucketDir) {
		for k, s := range readBlock(t, filepath.Join(bucketDir, id)) {
			got[k] = append(got[k], s...)
		}
	}
	for k := range got {
		slices.SortFunc(got[k], func(a, b sample) int { return cmp.Compare(a.T, b.T) })
	}
	require.Equal(t, want, got, "every sample of both tenants in the bucket")
}
