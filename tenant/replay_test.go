package tenant

import (
	"bufio"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/write"
)

// The WAL replay figures for the docs: how long a restart takes, and how much memory it needs, for a
// tenant with WEIR_REPLAY_SERIES active series. Opt-in, as it takes minutes at a million series:
//
//	WEIR_REPLAY_SERIES=1000000 go test -run='^TestReplayFigures$' -v -count=1 -timeout=60m ./tenant/
//
// WEIR_REPLAY_SAMPLES sets the samples per series (default 4), WEIR_REPLAY_CPUPROFILE a file for a CPU
// profile of the replay. With WEIR_REPLAY_SNAPSHOT=1 both phases run with
// --tsdb.memory-snapshot-on-shutdown: the close writes a head snapshot and the open reads it.
//
// The parent writes the series (10 labels each, replayN samples each, in requests of 2,000 series) and
// closes without compacting, so that everything is in the WAL; then it runs the test binary again for
// the replay alone, so that the peak RSS measured (VmHWM) is the replay's, not the writer's.
const (
	replaySeriesEnv  = "WEIR_REPLAY_SERIES"
	replayPhaseEnv   = "WEIR_REPLAY_PHASE" // "open" in the child
	replayDirEnv     = "WEIR_REPLAY_DIR"
	replaySnapEnv    = "WEIR_REPLAY_SNAPSHOT"
	replayResultTag  = "REPLAY_RESULT "
	replaySamplesEnv = "WEIR_REPLAY_SAMPLES"
	replayProfileEnv = "WEIR_REPLAY_CPUPROFILE" // a file for the CPU profile of the replay alone
	replayTenant     = "replay"
)

type replayResult struct {
	Series          uint64  `json:"series"`
	Seconds         float64 `json:"seconds"`
	CPUSeconds      float64 `json:"cpu_seconds"` // user + system of the replay: less sensitive to a loaded machine
	GCCycles        uint32  `json:"gc_cycles"`
	VMHWMBytes      uint64  `json:"vm_hwm_bytes"`       // peak RSS of the whole process
	VMRSSBeforeOpen uint64  `json:"vm_rss_before_open"` // the process before replay: runtime, binary
	VMRSSAfterOpen  uint64  `json:"vm_rss_after_open"`
	HeapInuse       uint64  `json:"heap_inuse_bytes"` // after replay and a GC
	HeapInuseBefore uint64  `json:"heap_inuse_before_bytes"`
}

func TestReplayFigures(t *testing.T) {
	if os.Getenv(replayPhaseEnv) == "open" {
		replayOpen(t, os.Getenv(replayDirEnv))
		return
	}
	n, _ := strconv.Atoi(os.Getenv(replaySeriesEnv))
	if n <= 0 {
		t.Skipf("set %s to the number of series to measure WAL replay", replaySeriesEnv)
	}
	replayN := 4 // samples per series, 15 s apart
	if v, _ := strconv.Atoi(os.Getenv(replaySamplesEnv)); v > 0 {
		replayN = v
	}
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.WALCompression = true // the default of --tsdb.wal-compression
	cfg.MemorySnapshotOnShutdown = os.Getenv(replaySnapEnv) == "1"
	m, err := NewManager(cfg, nil, discardLogger(), prometheus.NewRegistry())
	require.NoError(t, err)

	start := time.Now()
	const batch = 2000
	series := benchSeries(batch, "")
	ctx := context.Background()
	for r := range replayN {
		for first := 0; first < n; first += batch {
			size := min(batch, n-first)
			for i := range size {
				// The pod label makes each series distinct, as benchSeries does with its seed.
				series[i].Labels[8].Value = "api-7d9f8b6c5-" + strconv.Itoa(first+i)
				series[i].Samples[0] = prompb.Sample{Timestamp: t0 + int64(r)*15_000, Value: float64(first + i + r)}
			}
			st, err := m.Write(ctx, replayTenant, series[:size], nil, nil)
			require.NoError(t, err)
			require.Equal(t, size, st.Appended[write.KindFloat], "%+v", st.Rejected)
		}
	}
	require.NoError(t, m.Close())
	t.Logf("wrote %d series × %d samples in %s; WAL %s", n, replayN, time.Since(start).Round(time.Millisecond), dirSize(t, dir))

	cmd := exec.Command(os.Args[0], "-test.run=^TestReplayFigures$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), replayPhaseEnv+"=open", replayDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s", out)
	var res replayResult
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	found := false
	for sc.Scan() {
		if line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), replayResultTag); ok {
			require.NoError(t, json.Unmarshal([]byte(line), &res))
			found = true
		}
	}
	require.True(t, found, "no result from the replay process:\n%s", out)
	require.Equal(t, uint64(n), res.Series)

	mib := func(b uint64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }
	t.Logf("replay of %d series (%d samples each, WAL compression on, memory snapshot %v, %d cores): %.2f s, %.2f CPU-s, %d GC cycles",
		n, replayN, cfg.MemorySnapshotOnShutdown, runtime.NumCPU(), res.Seconds, res.CPUSeconds, res.GCCycles)
	t.Logf("peak RSS (VmHWM) %s; RSS before open %s, after %s; heap in use %s (before %s)",
		mib(res.VMHWMBytes), mib(res.VMRSSBeforeOpen), mib(res.VMRSSAfterOpen), mib(res.HeapInuse), mib(res.HeapInuseBefore))
	t.Logf("per series: peak RSS %.0f B, peak RSS above the idle process %.0f B, heap in use %.0f B",
		float64(res.VMHWMBytes)/float64(n), float64(res.VMHWMBytes-res.VMRSSBeforeOpen)/float64(n),
		float64(res.HeapInuse-res.HeapInuseBefore)/float64(n))
}

// replayOpen is the child: it opens the tenant TSDBs in dir and prints what it cost.
func replayOpen(t *testing.T, dir string) {
	require.NotEmpty(t, dir)
	cfg := testConfig(dir)
	cfg.WALCompression = true
	cfg.MemorySnapshotOnShutdown = os.Getenv(replaySnapEnv) == "1"
	m, err := NewManager(cfg, nil, discardLogger(), prometheus.NewRegistry())
	require.NoError(t, err)

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res := replayResult{HeapInuseBefore: ms.HeapInuse, VMRSSBeforeOpen: procStatus(t, "VmRSS")}

	if path := os.Getenv(replayProfileEnv); path != "" {
		f, err := os.Create(path)
		require.NoError(t, err)
		require.NoError(t, pprof.StartCPUProfile(f))
		defer f.Close()
	}
	cpuBefore, gcBefore := cpuSeconds(t), ms.NumGC
	start := time.Now()
	require.NoError(t, m.OpenExisting(context.Background()))
	res.Seconds = time.Since(start).Seconds()
	res.CPUSeconds = cpuSeconds(t) - cpuBefore
	pprof.StopCPUProfile()
	res.VMHWMBytes = procStatus(t, "VmHWM")
	res.VMRSSAfterOpen = procStatus(t, "VmRSS")
	runtime.ReadMemStats(&ms)
	res.GCCycles = ms.NumGC - gcBefore
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.HeapInuse = ms.HeapInuse

	require.Equal(t, []string{replayTenant}, m.Tenants())
	d, err := m.get(context.Background(), replayTenant)
	require.NoError(t, err)
	res.Series = d.tsdb.Head().NumSeries()
	require.NoError(t, m.Close())

	b, err := json.Marshal(res)
	require.NoError(t, err)
	os.Stdout.WriteString(replayResultTag + string(b) + "\n")
}

// cpuSeconds is the process' user and system CPU time so far.
func cpuSeconds(t *testing.T) float64 {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procStatus returns a memory field of /proc/self/status in bytes.
func procStatus(t *testing.T, field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

func dirSize(t *testing.T, dir string) string {
	var total int64
	require.NoError(t, filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err == nil {
			total += fi.Size()
		}
		return err
	}))
	return strconv.FormatFloat(float64(total)/(1<<20), 'f', 1, 64) + " MiB"
}
