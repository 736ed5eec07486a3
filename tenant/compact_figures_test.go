package tenant

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// The head compaction figures for the docs: the memory and time of cutting the heads of
// WEIR_COMPACTION_TENANTS tenants (100 series of 10 labels each, a sample a minute over 4h) that are all
// due at once, as after a restart or at the first 2h boundary of tenants started together. Opt-in:
//
//	WEIR_COMPACTION_TENANTS=2000 go test -run='^TestHeadCompactionFigures$' -v -count=1 -timeout=60m ./tenant/
//
// WEIR_COMPACTION_CONCURRENCY is --tsdb.head-compaction-concurrency (default 1), or "tsdb": each TSDB
// compacts itself when a commit finds its head due, what every tenant did before the Manager took
// compactions over. The peak RSS (VmHWM) is reset after the writes, so it is the compactions'.
const (
	compactionTenantsEnv     = "WEIR_COMPACTION_TENANTS"
	compactionConcurrencyEnv = "WEIR_COMPACTION_CONCURRENCY"
)

func TestHeadCompactionFigures(t *testing.T) {
	tenants, _ := strconv.Atoi(os.Getenv(compactionTenantsEnv))
	if tenants <= 0 {
		t.Skipf("set %s to the number of tenants to measure head compaction", compactionTenantsEnv)
	}
	mode := os.Getenv(compactionConcurrencyEnv)
	concurrency := 1
	if mode != "" && mode != "tsdb" {
		var err error
		concurrency, err = strconv.Atoi(mode)
		require.NoError(t, err, "%s: a number or tsdb", compactionConcurrencyEnv)
	}
	cfg := testConfig(t.TempDir())
	cfg.OpenConcurrency = runtime.GOMAXPROCS(0)
	cfg.HeadCompactionConcurrency = concurrency
	cfg.StripeSize = StripeSizeAuto
	m, _ := newManagerAt(t, cfg)

	const series, span, step = 100, 4 * time.Hour, int64(60_000)
	start := time.Now()
	req := make([]prompb.TimeSeries, series)
	for i := range tenants {
		id := fmt.Sprintf("tenant-%05d", i)
		for s := range req {
			req[s].Labels = lbls("__name__", "compaction_figures_total", "job", "app", "instance", fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250),
				"cluster", "eu-1", "namespace", "team", "pod", "pod-"+strconv.Itoa(s), "container", "app", "node", "node-1",
				"region", "eu", "series", strconv.Itoa(s))
			req[s].Samples = req[s].Samples[:0]
			for ts := t0; ts < t0+span.Milliseconds(); ts += step {
				req[s].Samples = append(req[s].Samples, prompb.Sample{Timestamp: ts, Value: float64(ts)})
			}
		}
		mustWrite(t, m, id, req...)
	}
	t.Logf("wrote %d tenants × %d series in %s", tenants, series, time.Since(start).Round(time.Millisecond))

	runtime.GC()
	debug.FreeOSMemory()
	require.NoError(t, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0), "resetting the peak RSS (VmHWM)")
	rssBefore := procStatus(t, "VmRSS")
	cpuBefore := cpuTime(t)
	start = time.Now()
	dbs := m.openDBs()
	require.Len(t, dbs, tenants)
	if mode == "tsdb" {
		for _, d := range dbs {
			d.tsdb.EnableCompactions()
		}
		// The next write of each tenant finds its head due and asks its TSDB to compact, as when
		// tenants that started together cross the boundary within one scrape interval.
		for _, d := range dbs {
			mustWrite(t, m, d.id, prompb.TimeSeries{Labels: req[0].Labels, Samples: []prompb.Sample{{Timestamp: t0 + span.Milliseconds(), Value: 1}}})
		}
		deadline := time.Now().Add(30 * time.Minute)
		for _, d := range dbs {
			for d.headCompactable() {
				require.True(t, time.Now().Before(deadline), "tenant %s not compacted in 30 minutes", d.id)
				time.Sleep(10 * time.Millisecond) // a figure, not a test: the TSDBs give no completion signal
			}
		}
	} else {
		m.compactHeads(context.Background())
	}
	elapsed, cpu := time.Since(start), cpuTime(t)-cpuBefore
	for _, d := range dbs {
		require.False(t, d.headCompactable(), "tenant %s not compacted", d.id)
	}
	peak := procStatus(t, "VmHWM")
	t.Logf("head compaction of %d tenants (concurrency %s): %s, %.1f CPU-s; RSS before %d MB, peak %d MB (+%d MB)",
		tenants, orTSDB(mode), elapsed.Round(time.Millisecond), cpu.Seconds(), rssBefore>>20, peak>>20, (peak-min(peak, rssBefore))>>20)
}

func orTSDB(mode string) string {
	if mode == "" {
		return "1"
	}
	return mode
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
