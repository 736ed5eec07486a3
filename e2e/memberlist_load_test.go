package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/loadgen"
)

// Helpers of the memberlist tests that run under `weir bench` load: the sender as a process of its
// own, recording every acknowledged request in an ack log, and the check of the ack log against the
// TSDBs the nodes left on disk.

// steadyLoad is `weir bench` sending until interrupted: 2 workers, 300 series of 6 labels, 100
// samples per request, 3,000 samples/s.
type steadyLoad struct {
	p       *proc
	ackLog  string
	logPath string
}

// startSteadyLoad starts the sender against a remote-write URL. It is killed at the end of the test
// if it still runs.
func startSteadyLoad(t *testing.T, url string) *steadyLoad {
	t.Helper()
	dir := t.TempDir()
	l := &steadyLoad{ackLog: filepath.Join(dir, "ack.log"), logPath: filepath.Join(dir, "bench.log")}
	// Its output (progress, then the JSON report) goes to the log; stop reads the report from there.
	p, err := launch(l.logPath, dir, weirBinary, "bench", "--url="+url,
		"--series=300", "--samples-per-request=100", "--labels-per-series=6",
		"--concurrency=2", "--rate=3000", "--timeout=15s", "--duration=0s",
		"--ack-log="+l.ackLog, "--output=json")
	require.NoError(t, err)
	l.p = p
	cleanupProc(t, "weir bench", l.logPath, func() *proc { return l.p })
	return l
}

// acked counts the acknowledged requests in the ack log so far (flushed once a second).
func (l *steadyLoad) acked() int {
	data, err := os.ReadFile(l.ackLog)
	if err != nil {
		return 0
	}
	return max(strings.Count(string(data), "\n")-1, 0) // minus the header
}

// waitMore waits until n more requests than now were acknowledged.
func (l *steadyLoad) waitMore(t *testing.T, what string, n int) {
	t.Helper()
	want := l.acked() + n
	waitFor(t, 60*time.Second, what, func() error {
		if l.p.exited() {
			return fmt.Errorf("weir bench exited early:\n%s", readFrom(l.logPath, 0))
		}
		if got := l.acked(); got < want {
			return fmt.Errorf("%d requests acknowledged, want %d", got, want)
		}
		return nil
	})
}

// stop interrupts the sender (it ends the run, flushes its ack log and prints its report) and
// returns the report.
func (l *steadyLoad) stop(t *testing.T) loadgen.Report {
	t.Helper()
	require.NoError(t, l.p.cmd.Process.Signal(syscall.SIGINT))
	require.True(t, l.p.wait(60*time.Second), "weir bench did not stop within 60s of SIGINT")
	out := readFrom(l.logPath, 0)
	start := strings.LastIndex(out, "\n{")
	require.GreaterOrEqual(t, start, 0, "no JSON report in the output of weir bench:\n%s", out)
	var r loadgen.Report
	dec := json.NewDecoder(strings.NewReader(out[start+1:]))
	require.NoError(t, dec.Decode(&r), "report of weir bench:\n%s", out[start:])
	return r
}

// holding is what one node holds of the acknowledged samples.
type holding struct {
	samples int   // acknowledged samples found, with their exact value
	newest  int64 // timestamp of the newest of them (ms)
}

// requireAckedCopies checks that every sample of the ack log is stored with its exact value in at
// least atLeast of the data directories (read after a clean stop), and returns what each holds.
func requireAckedCopies(t *testing.T, ackLog string, dataDirs []string, atLeast int) (acked int, held []holding) {
	t.Helper()
	spec, records, err := loadgen.ReadAckLog(ackLog)
	require.NoError(t, err)
	// Per node: tenant → series → timestamp → value bits.
	stores := make([]map[string]map[string]map[int64]uint64, len(dataDirs))
	for i, dir := range dataDirs {
		stores[i] = map[string]map[string]map[int64]uint64{}
		for _, tn := range tenantDirs(t, dir) {
			series := map[string]map[int64]uint64{}
			for k, samples := range readTenant(t, dir, tn) {
				m := make(map[int64]uint64, len(samples))
				for _, s := range samples {
					m[s.T] = math.Float64bits(s.V)
				}
				series[k] = m
			}
			stores[i][tn] = series
		}
	}
	held = make([]holding, len(dataDirs))
	var short []string
	for rec, err := range records {
		require.NoError(t, err)
		for s := range rec.Samples(spec) {
			acked++
			k, want, copies := s.Labels.String(), math.Float64bits(s.Value), 0
			for i := range stores {
				if v, ok := stores[i][s.Tenant][k][s.Timestamp]; ok && v == want {
					copies++
					held[i].samples++
					held[i].newest = max(held[i].newest, s.Timestamp)
				}
			}
			if copies < atLeast && len(short) < 5 {
				short = append(short, fmt.Sprintf("%s %s@%d on %d node(s)", s.Tenant, k, s.Timestamp, copies))
			}
		}
	}
	require.Positive(t, acked, "nothing acknowledged")
	require.Empty(t, short, "acknowledged samples on fewer than %d nodes", atLeast)
	return acked, held
}
