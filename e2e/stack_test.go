package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// stackEnv is the environment docs/stack.md gives deploy/local/stack.sh to watch compaction at once
// rather than after Thanos' production delays: the Compactor leaves blocks younger than 30s alone
// (--consistency-delay, Thanos' default 30m; longer than the ingesters' 5s shipping interval, so all
// three replicas of a block are in the bucket before it is considered) and runs a pass every 5s
// (--wait-interval; the stack's compactor keeps running with --wait, as in production: it is the
// bucket's one compactor, and a second one for a single pass would race it), and Store stops serving
// a block the Compactor replaced as soon as it sees the deletion mark (--ignore-deletion-marks-delay,
// Thanos' default 24h), so the queries below read the compacted blocks only.
var stackEnv = []string{"CONSISTENCY_DELAY=30s", "COMPACT_INTERVAL=5s", "IGNORE_DELETION_MARKS_DELAY=0s"}

// stackBackfillWindow is the Compactor's largest default compaction range, to which its blocks align.
const stackBackfillWindow = 48 * time.Hour

// TestLocalStack runs the walkthrough of docs/stack.md as written: deploy/local/stack.sh (`make
// run-stack`), then deploy/local/backfill.sh, with the pinned Prometheus, Thanos and versitygw.
//
//	prometheus a ─┐                       ┌▶ ingester 1 ─┐
//	prometheus b ─┴▶ router ── RF=3 ──────┼▶ ingester 2 ─┼── blocks ──▶ versitygw ◀── thanos compact
//	backfill.sh ──▶ (promtool push)       └▶ ingester 3 ─┘                  ▲
//	test ──PromQL──▶ thanos query ◀── StoreAPI ── ingesters, thanos store ───┘
//
// Asserted: one query returns both clusters' series from the ingesters' StoreAPI, each once with
// deduplication and three times (one per replica) without; after the backfill the Compactor makes a
// 2-day block holding exactly the samples written, once (its three replicas merged), and a 5m
// downsampled one, and never halts; once the ingesters have dropped their old local blocks, a query
// over the whole backfill returns every minute's value exactly once, from Store for the old part and
// from the ingesters for the fresh one; max_source_resolution=5m reads the downsampled block; SIGTERM
// stops the stack cleanly.
func TestLocalStack(t *testing.T) {
	thanos := testutil.RequireTool(t, "WEIR_THANOS", "bin/thanos", "make tools")
	env := append([]string{
		"WEIR_PROMETHEUS=" + prometheusBinary(t),
		"WEIR_THANOS=" + thanos,
		"WEIR_VERSITYGW=" + testutil.RequireTool(t, "WEIR_VERSITYGW", "bin/versitygw", "make tools"),
	}, stackEnv...)
	promtool := testutil.RequireTool(t, "WEIR_PROMTOOL", "bin/promtool", "make tools")
	began := time.Now()
	// Every port of the script: router and ingesters (node i at +100·i), the bucket, both Prometheus
	// servers, Thanos Query, Store and Compactor.
	s := startLocalScript(t, "stack.sh", []int{19291, 10901, 10902, 19591, 11201, 11202, 7070, 9090, 10903, 10904, 10905, 10906, 10907}, false, env...)
	query := s.url(10904, 0)

	requireBothClusters(t, s, query)
	t.Logf("both clusters in Thanos Query %s after the start", time.Since(began).Round(time.Second))

	root, err := testutil.RepoRoot()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "deploy", "local", "backfill.sh"))
	cmd.Env = append(os.Environ(), "PORT_OFFSET="+strconv.Itoa(s.offset), "WEIR_PROMTOOL="+promtool)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "backfill.sh:\n%s", out)
	m := regexp.MustCompile(`start=(\d+) end=(\d+)`).FindStringSubmatch(string(out))
	require.NotNil(t, m, "backfill.sh printed no range:\n%s", out)
	start, _ := strconv.ParseInt(m[1], 10, 64)
	end, _ := strconv.ParseInt(m[2], 10, 64)
	start, end = start*1000, end*1000
	window := stackBackfillWindow.Milliseconds()
	require.Zero(t, start%window, "the backfill starts on a 2-day boundary")
	require.LessOrEqual(t, start+window, end, "the backfill covers a whole 2-day window")

	raw, _ := waitCompacted(t, s.data, start, start+window)
	t.Logf("2-day block and its 5m downsampling in the bucket %s after the start", time.Since(began).Round(time.Second))
	require.Equal(t, stackBackfill(start, start+window-1), readBlock(t, raw), "the 2-day block holds every sample written, once")
	// docs/stack.md lists the bucket with thanos tools bucket inspect.
	inspectCtx, cancelInspect := context.WithTimeout(t.Context(), time.Minute)
	defer cancelInspect()
	out, err = exec.CommandContext(inspectCtx, thanos, "tools", "bucket", "inspect", "--objstore.config-file="+filepath.Join(s.data, "bucket.yml")).CombinedOutput()
	require.NoError(t, err, "thanos tools bucket inspect:\n%s", out)
	require.Regexp(t, `(?m)^.*tenant_id=history.*5m0s.*$`, string(out), "no 5m block of history in thanos tools bucket inspect")
	halted, ok, err := scrapeMetric(s.client, s.url(10907, 0)+"/metrics", "thanos_compact_halted")
	require.NoError(t, err)
	require.True(t, ok)
	require.Zero(t, halted, "the compactor halted")

	waitLocalBlocksDropped(t, s.data, start)
	requireWholeRange(t, s.client, query, start, end)
	requireDownsampled(t, s.client, query, start+window/2)
	t.Logf("whole range and downsampled reads checked %s after the start", time.Since(began).Round(time.Second))

	require.NoError(t, s.p.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, s.p.wait(2*time.Minute), "stack.sh did not stop within 2 minutes of SIGTERM")
	require.Zero(t, s.p.exitCode(), "stack.sh exit code")
	for i := 1; i <= 3; i++ {
		log, err := os.ReadFile(filepath.Join(s.data, fmt.Sprintf("ingester%d.log", i)))
		require.NoError(t, err)
		require.Contains(t, string(log), "msg=stopped", "ingester %d did not stop cleanly", i)
	}
}

// stackBackfill is what backfill.sh writes in [from, to] (ms), by series.
func stackBackfill(from, to int64) map[string][]sample {
	out := map[string][]sample{}
	for s := range 2 {
		k := key("__name__", "stack_backfill_minutes", "job", "promtool", "series", strconv.Itoa(s))
		for ts := from; ts <= to; ts += 60_000 {
			out[k] = append(out[k], sample{T: ts, V: float64(ts/60_000 + int64(s)*10_000_000)})
		}
	}
	return out
}

// instantQuery runs an instant PromQL query with extra parameters (dedup, max_source_resolution…).
func instantQuery(c *http.Client, base, query string, at time.Time, extra url.Values) ([]promResult, error) {
	q := url.Values{"query": {query}, "time": {seconds(at.UnixMilli())}}
	for k, v := range extra {
		q[k] = v
	}
	return queryAPI(c, base+"/api/v1/query?"+q.Encode())
}

// requireBothClusters waits until `up` in Thanos Query has, for both clusters, the Prometheus server
// itself and the four Weir nodes, each up: once with deduplication, and once per ingester (replica)
// without — the fresh data comes from the ingesters' StoreAPI.
func requireBothClusters(t *testing.T, s *localScript, query string) {
	t.Helper()
	var want, wantReplicas []string
	for i, c := range []string{"a", "b"} {
		targets := []string{"prometheus " + strings.TrimPrefix(s.url(9090, i), "http://")}
		for n := range 4 {
			targets = append(targets, "weir "+strings.TrimPrefix(s.url(10902, n), "http://"))
		}
		for _, target := range targets {
			k := "cluster-" + c + " " + c + " " + target
			want = append(want, k)
			for r := 1; r <= 3; r++ {
				wantReplicas = append(wantReplicas, k+" ingester"+strconv.Itoa(r))
			}
		}
	}
	slices.Sort(want)
	slices.Sort(wantReplicas)
	for _, dedup := range []bool{true, false} {
		expect := want
		if !dedup {
			expect = wantReplicas
		}
		waitFor(t, 90*time.Second, fmt.Sprintf("both clusters' targets up in Thanos Query (dedup=%t)", dedup), func() error {
			res, err := instantQuery(s.client, query, "up", time.Now(), url.Values{"dedup": {strconv.FormatBool(dedup)}})
			if err != nil {
				return err
			}
			var got []string
			for _, r := range res {
				if r.Value[1] != "1" {
					return fmt.Errorf("%v is %v", r.Metric, r.Value[1])
				}
				k := strings.Join([]string{r.Metric["tenant_id"], r.Metric["cluster"], r.Metric["job"], r.Metric["instance"]}, " ")
				if replica, ok := r.Metric["replica"]; ok {
					k += " " + replica
				}
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, expect) {
				return fmt.Errorf("series %q, want %q", got, expect)
			}
			return nil
		})
	}
}

// waitCompacted waits until the bucket (the S3 server's posix root under data) holds, for the tenant
// history without a replica label and not marked for deletion, a raw block spanning [from, to] (ms)
// and its 5m downsampling, and returns their directories.
func waitCompacted(t *testing.T, data string, from, to int64) (raw, down string) {
	t.Helper()
	waitFor(t, 4*time.Minute, "a 2-day block of the tenant history and its 5m downsampling in the bucket", func() error {
		raw, down = "", ""
		var seen []string
		for _, dir := range bucketBlocks(t, filepath.Join(data, "s3")) {
			if _, err := os.Stat(filepath.Join(dir, "deletion-mark.json")); err == nil {
				continue
			}
			m, err := loadThanosMeta(dir)
			if err != nil {
				return err
			}
			if m.Thanos.Labels["tenant_id"] != "history" {
				continue
			}
			seen = append(seen, fmt.Sprintf("%v %s..%s res=%d level=%d", m.Thanos.Labels, time.UnixMilli(m.MinTime).UTC().Format(time.DateTime),
				time.UnixMilli(m.MaxTime).UTC().Format(time.DateTime), m.Thanos.Downsample.Resolution, m.Compaction.Level))
			if len(m.Thanos.Labels) != 1 || m.MinTime != from || m.MaxTime != to {
				continue
			}
			switch m.Thanos.Downsample.Resolution {
			case 0:
				raw = dir
			case (5 * time.Minute).Milliseconds():
				down = dir
			}
		}
		if raw == "" || down == "" {
			return fmt.Errorf("blocks of history: %q", seen)
		}
		return nil
	})
	return raw, down
}

// waitLocalBlocksDropped waits until no ingester keeps a local block of the tenant history starting
// at from (ms): their retention dropped it once it was in the bucket, and only Store still has it.
func waitLocalBlocksDropped(t *testing.T, data string, from int64) {
	t.Helper()
	waitFor(t, 3*time.Minute, "the ingesters dropping their oldest blocks of history (--tsdb.retention)", func() error {
		for i := 1; i <= 3; i++ {
			metas, err := filepath.Glob(filepath.Join(data, fmt.Sprintf("ingester%d", i), "history", "*", "meta.json"))
			if err != nil {
				return err
			}
			for _, m := range metas {
				meta, err := loadThanosMeta(filepath.Dir(m))
				if err != nil {
					return err
				}
				if meta.MinTime == from {
					return fmt.Errorf("ingester %d still has %s", i, filepath.Dir(m))
				}
			}
		}
		return nil
	})
}

// requireWholeRange reads the whole backfill through Thanos Query at the samples' one-minute step:
// every step has its own sample's value, once per series (deduplicated), old and fresh alike.
func requireWholeRange(t *testing.T, c *http.Client, query string, start, end int64) {
	t.Helper()
	want := map[string][]string{}
	for k, samples := range stackBackfill(start, end) {
		s := "0"
		if strings.Contains(k, `series="1"`) {
			s = "1"
		}
		for _, smp := range samples {
			want["history/"+s] = append(want["history/"+s], strconv.FormatFloat(smp.V, 'f', -1, 64))
		}
	}
	waitFor(t, 90*time.Second, "the whole backfill, gapless and once, through Thanos Query", func() error {
		got, err := thanosRangeQuery(c, query, "stack_backfill_minutes", start, end, time.Minute, true)
		if err != nil {
			return err
		}
		for k, vals := range want {
			if len(got[k]) != len(vals) {
				return fmt.Errorf("%s: %d steps, want %d", k, len(got[k]), len(vals))
			}
			for i := range vals {
				if got[k][i] != vals[i] {
					return fmt.Errorf("%s: step %d is %s, want %s", k, i, got[k][i], vals[i])
				}
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("%d series, want %d", len(got), len(want))
		}
		return nil
	})
}

// requireDownsampled reads the hour before at with max_source_resolution=5m: one point every five
// minutes, the average of the five one-minute samples before it (the compactor's 5m block; without
// the parameter the raw samples, one a minute).
func requireDownsampled(t *testing.T, c *http.Client, query string, at int64) {
	t.Helper()
	points := func(res string) ([][2]any, error) {
		r, err := instantQuery(c, query, `stack_backfill_minutes{series="0"}[1h]`, time.UnixMilli(at), url.Values{"max_source_resolution": {res}})
		if err != nil {
			return nil, err
		}
		if len(r) != 1 {
			return nil, fmt.Errorf("%d series, want 1: %v", len(r), r)
		}
		return r[0].Values, nil
	}
	waitFor(t, 60*time.Second, "max_source_resolution=5m reading the 5m block", func() error {
		got, err := points("5m")
		if err != nil {
			return err
		}
		if len(got) != 12 {
			return fmt.Errorf("%d points in an hour, want 12: %v", len(got), got)
		}
		for _, p := range got {
			ts := int64(p[0].(float64) * 1000)
			// The window of five samples at minutes m-4..m averages to m-2.
			if want := strconv.FormatInt(ts/60_000-2, 10); p[1] != want {
				return fmt.Errorf("point at %d is %v, want %s (the 5m average)", ts, p[1], want)
			}
		}
		return nil
	})
	got, err := points("0s")
	require.NoError(t, err)
	require.Len(t, got, 60, "raw resolution: one sample a minute")
}
