package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// startTool runs a third-party server in the background for the rest of the test.
func startTool(t *testing.T, name, bin string, args ...string) {
	t.Helper()
	work := t.TempDir()
	logPath := filepath.Join(work, name+".log")
	p, err := launch(logPath, work, bin, args...)
	require.NoError(t, err)
	cleanupProc(t, name, logPath, func() *proc { return p })
}

// startBucketQuery starts Thanos Store over the bucket of objCfgFile and Thanos Query in front of it
// (deduplicating by the replica label), for the rest of the test, and returns Query's HTTP address.
func startBucketQuery(t *testing.T, thanos, objCfgFile string) string {
	t.Helper()
	addrs := testutil.LoopbackAddrs(t, 4)
	startTool(t, "thanos-store", thanos, "store", "--data-dir="+t.TempDir(), "--objstore.config-file="+objCfgFile,
		"--grpc-address="+addrs[0], "--http-address="+addrs[1])
	startTool(t, "thanos-query", thanos, "query", "--endpoint="+addrs[0], "--query.replica-label=replica",
		"--grpc-address="+addrs[2], "--http-address="+addrs[3])
	return addrs[3]
}

// TestShipToS3ReadByThanos: blocks that Weir ships to a real S3 server are what Thanos expects.
//
//	test ──remote write (5h of old samples)──▶ weir ──blocks──▶ versitygw (S3, loopback)
//	                                                                 │
//	      thanos tools bucket verify/inspect ◀──────────────────────┤
//	      thanos query ──▶ thanos store ◀─────────────────────────────┘
//
// The samples span five hours, so the TSDB cuts blocks while weir runs (shipped by the background
// loop) and the rest is cut and shipped on shutdown. Then: every block in the bucket has Thanos'
// meta.json with the tenant and replica labels, reads back to exactly the samples written, passes
// `thanos tools bucket verify`, and PromQL through Thanos Store and Query returns the written values.
func TestShipToS3ReadByThanos(t *testing.T) {
	versitygw := testutil.RequireTool(t, "WEIR_VERSITYGW", "bin/versitygw", "make tools")
	thanos := testutil.RequireTool(t, "WEIR_THANOS", "bin/thanos", "make tools")

	// The S3 server: a directory under its root is a bucket, an object is a file under it.
	s3Root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(s3Root, "weir"), 0o755))
	s3Addr := testutil.LoopbackAddrs(t, 1)[0]
	startTool(t, "versitygw", versitygw, "--access", "testkey", "--secret", "testsecret", "--port", s3Addr, "posix", s3Root)
	waitFor(t, 30*time.Second, "versitygw listening", func() error {
		c, err := net.DialTimeout("tcp", s3Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	objCfg := filepath.Join(t.TempDir(), "objstore.yml")
	require.NoError(t, os.WriteFile(objCfg, fmt.Appendf(nil, `type: S3
config:
  bucket: weir
  endpoint: %s
  access_key: testkey
  secret_key: testsecret
  insecure: true
  region: us-east-1
  bucket_lookup_type: path
`, s3Addr), 0o644))

	// Five hours of one-minute samples for three series, ending ten minutes ago.
	const points = 300
	start := time.Now().Add(-5*time.Hour - 10*time.Minute).Truncate(time.Minute).UnixMilli()
	want := map[string][]sample{}
	req := writeReq()
	for s := range 3 {
		kv := lbls("__name__", "ship_test", "series", strconv.Itoa(s))
		ts := series(kv)
		for i := range points {
			p := smp(start+int64(i)*60_000, float64(s*1000+i))
			ts.Samples = append(ts.Samples, p)
			want[key(kv...)] = append(want[key(kv...)], sample{T: p.Timestamp, V: p.Value})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}

	n := startWeir(t, t.TempDir(), "--objstore.config-file="+objCfg, `--label=replica="r1"`, "--shipper.interval=1s")
	resp := n.Write(t, req, "THANOS-TENANT", "team-a")
	require.Equal(t, 204, resp.Code, resp.String())
	// Remote Write 2.0 with start timestamps, from 4h10m on (the TSDB may have cut the blocks of the
	// first 4h by now, not later ones): each start is stored as a zero sample, which must read back
	// from the shipped blocks like any sample, in chunks Thanos reads.
	v2Start := start + 250*60_000
	v2 := &writev2.Request{Symbols: []string{"", "__name__", "ship_v2_total", "series", "0"}}
	v2ts := writev2.TimeSeries{LabelsRefs: []uint32{1, 2, 3, 4}, Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER}}
	v2Key := key("__name__", "ship_v2_total", "series", "0")
	for i := range 40 {
		st := v2Start - 30_000 // the counter starts 30 s before its first sample…
		if i >= 20 {
			st = v2Start + 20*60_000 - 30_000 // …and restarts (a reset) 30 s before its 21st
		}
		p := writev2.Sample{Timestamp: v2Start + int64(i)*60_000, Value: float64(i%20 + 1), StartTimestamp: st}
		if i == 0 || i == 20 {
			want[v2Key] = append(want[v2Key], sample{T: st, V: 0})
		}
		want[v2Key] = append(want[v2Key], sample{T: p.Timestamp, V: p.Value})
		v2ts.Samples = append(v2ts.Samples, p)
	}
	v2.Timeseries = []writev2.TimeSeries{v2ts}
	resp = n.WriteV2(t, v2, "THANOS-TENANT", "team-a")
	require.Equal(t, 204, resp.Code, resp.String())
	// Blocks cut while running are shipped by the background loop, before any shutdown.
	waitFor(t, 60*time.Second, "a block shipped while weir runs", func() error {
		if len(bucketBlocks(t, s3Root)) == 0 {
			return fmt.Errorf("no meta.json in the bucket yet")
		}
		return nil
	})
	n.Stop() // flushes the head and ships it

	blocks := bucketBlocks(t, s3Root)
	require.GreaterOrEqual(t, len(blocks), 3, "five hours make at least three 2h blocks")
	got := map[string][]sample{}
	for _, dir := range blocks {
		meta := readThanosMeta(t, dir)
		require.Equal(t, map[string]string{"tenant_id": "team-a", "replica": "r1"}, meta.Thanos.Labels, dir)
		require.Equal(t, "receive", meta.Thanos.Source)
		require.Zero(t, meta.Thanos.Downsample.Resolution)
		require.Equal(t, 1, meta.Compaction.Level)
		require.LessOrEqual(t, meta.MaxTime-meta.MinTime, int64(2*time.Hour/time.Millisecond), "a block spans at most 2h")
		for k, v := range readBlock(t, dir) {
			got[k] = append(got[k], v...)
		}
	}
	for k := range got {
		sortSamples(got[k])
	}
	require.Equal(t, want, got, "the bucket holds exactly the samples written")

	out, err := exec.Command(thanos, "tools", "bucket", "verify", "--objstore.config-file="+objCfg).CombinedOutput()
	require.NoError(t, err, "thanos tools bucket verify:\n%s", out)
	require.NotContains(t, strings.ToLower(string(out)), "level=error", string(out))
	out, err = exec.Command(thanos, "tools", "bucket", "inspect", "--objstore.config-file="+objCfg).CombinedOutput()
	require.NoError(t, err, "thanos tools bucket inspect:\n%s", out)
	require.Contains(t, string(out), `tenant_id=team-a`, string(out))
	require.Contains(t, string(out), `replica=r1`, string(out))

	// Thanos Store serves the bucket; Thanos Query answers PromQL over it, deduplicating by replica.
	queryHTTP := startBucketQuery(t, thanos, objCfg)
	at := start + 123*60_000
	q := url.Values{"query": {`ship_test{series="2",tenant_id="team-a"}`}, "time": {strconv.FormatFloat(float64(at)/1000, 'f', 3, 64)}}
	waitFor(t, 90*time.Second, "Thanos Query answering from the shipped blocks", func() error {
		code, body, err := httpGet(n.client, "http://"+queryHTTP+"/api/v1/query?"+q.Encode())
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("status %d: %s", code, body)
		}
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return err
		}
		if len(r.Data.Result) != 1 {
			return fmt.Errorf("%d series in %s", len(r.Data.Result), body)
		}
		if v := r.Data.Result[0].Value[1]; v != "2123" {
			return fmt.Errorf("value %v, want 2123", v)
		}
		return nil
	})
	// The zero sample of the counter's reset, through Thanos Store: at its time the counter reads 0
	// (without it, the lookback would find 20, the sample before).
	q = url.Values{"query": {`ship_v2_total{tenant_id="team-a"}`}, "time": {strconv.FormatFloat(float64(v2Start+20*60_000-30_000)/1000, 'f', 3, 64)}}
	waitFor(t, 30*time.Second, "Thanos Query reading the zero sample of the counter's restart from the shipped blocks", func() error {
		code, body, err := httpGet(n.client, "http://"+queryHTTP+"/api/v1/query?"+q.Encode())
		if err != nil || code != 200 {
			return fmt.Errorf("status %d, %w: %s", code, err, body)
		}
		if !strings.Contains(body, `,"0"]`) {
			return fmt.Errorf("want the zero sample: %s", body)
		}
		return nil
	})
}

// bucketBlocks returns the directories of the complete blocks (meta.json present) in the S3 root.
func bucketBlocks(t *testing.T, s3Root string) []string {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(s3Root, "weir", "*", "meta.json"))
	require.NoError(t, err)
	dirs := make([]string, 0, len(metas))
	for _, m := range metas {
		dirs = append(dirs, filepath.Dir(m))
	}
	return dirs
}

type thanosMeta struct {
	MinTime    int64 `json:"minTime"`
	MaxTime    int64 `json:"maxTime"`
	Compaction struct {
		Level int `json:"level"`
	} `json:"compaction"`
	Thanos struct {
		Labels     map[string]string `json:"labels"`
		Source     string            `json:"source"`
		Downsample struct {
			Resolution int64 `json:"resolution"`
		} `json:"downsample"`
	} `json:"thanos"`
}

func readThanosMeta(t *testing.T, dir string) thanosMeta {
	t.Helper()
	m, err := loadThanosMeta(dir)
	require.NoError(t, err)
	return m
}

// loadThanosMeta is readThanosMeta for polls: a block may go away between listing and reading (a
// TSDB renames it to *.tmp-for-deletion, a compactor deletes it), so its error means "look again".
func loadThanosMeta(dir string) (thanosMeta, error) {
	var m thanosMeta
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", dir, err)
	}
	return m, nil
}

// readBlock returns every float sample of a block, by series.
func readBlock(t *testing.T, dir string) map[string][]sample {
	t.Helper()
	b, err := tsdb.OpenBlock(nil, dir, nil, nil)
	require.NoError(t, err)
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, b.MinTime(), b.MaxTime())
	require.NoError(t, err)
	defer q.Close()
	out := map[string][]sample{}
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for set.Next() {
		s := set.At()
		it := s.Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			out[s.Labels().String()] = append(out[s.Labels().String()], sample{T: ts, V: v})
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

func sortSamples(s []sample) {
	slices.SortFunc(s, func(a, b sample) int { return cmp.Compare(a.T, b.T) })
}
