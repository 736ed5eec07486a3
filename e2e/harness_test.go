package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// Time limits of the harness. They bound waits for conditions; nothing sleeps for a fixed time.
const (
	readyTimeout = 60 * time.Second // start-up, WAL replay included
	stopTimeout  = 60 * time.Second // SIGTERM until exit
	pollInterval = testutil.DefaultInterval
)

// ---------------------------------------------------------------------------------------------------
// Processes.

// proc is a child process in its own process group, with stdout and stderr appended to a log file.
type proc struct {
	cmd   *exec.Cmd
	done  chan struct{} // closed once the process has been waited for
	state *os.ProcessState
}

// launch starts bin with args, its output appended to logPath after a header line naming the command.
func launch(logPath, workDir, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	fmt.Fprintf(f, "### %s start: %s %s\n", time.Now().Format(time.RFC3339Nano), filepath.Base(bin), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = workDir
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group, so that a kill reaches anything the process starts; and SIGKILL should the
	// test binary die (a -timeout panic, say) without running its cleanups. (Pdeathsig fires when the
	// forking OS thread exits; Go only ends threads that a goroutine locked and left locked.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // a non-zero exit is reported through state
		p.state = cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the exit code once exited (-1 when killed by a signal).
func (p *proc) exitCode() int {
	<-p.done
	return p.state.ExitCode()
}

// killGroup SIGKILLs the process and everything in its process group.
func (p *proc) killGroup() {
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// wait waits up to timeout for the process to exit.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// cleanupProc kills p's group on test end if it still runs, and dumps the log tail if the test failed.
// Registered after the directories the process uses, so it runs before they are removed.
func cleanupProc(t testing.TB, name, logPath string, current func() *proc) {
	t.Cleanup(func() {
		if p := current(); p != nil {
			p.killGroup()
			if !p.wait(30 * time.Second) {
				t.Errorf("%s (pid %d) did not die after SIGKILL", name, p.cmd.Process.Pid)
			}
		}
		if t.Failed() {
			dumpLog(t, name, logPath)
		}
	})
}

// dumpLog logs the tail of a process log.
func dumpLog(t testing.TB, name, path string) {
	const maxLines = 150
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%s log %s: %v", name, path, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	skipped := 0
	if len(lines) > maxLines {
		skipped = len(lines) - maxLines
		lines = lines[skipped:]
	}
	t.Logf("---- %s log %s (last %d lines, %d skipped) ----\n%s\n---- end of %s log ----", name, path, len(lines), skipped, strings.Join(lines, "\n"), name)
}

// ---------------------------------------------------------------------------------------------------
// Weir.

// weirNode is one weir process (re)started on a data directory. Its methods that change the process
// must be called from the test goroutine that started it.
type weirNode struct {
	t    testing.TB
	Dir  string   // --tsdb.path
	args []string // extra flags
	// nofile, when set, is the open-file limit (soft and hard) the process starts with: a shell
	// lowers it before it execs weir (Go raises the soft limit to the hard one at start).
	nofile  int
	logPath string
	proc    *proc
	client  *http.Client

	RemoteWriteAddr string // host:port of the remote-write listener
	RemoteWriteURL  string // http://…/api/v1/receive
	OpsURL          string // http://… of /metrics, /-/ready, /-/healthy
}

// startWeir starts `weir receive --tsdb.path=dir` on free loopback ports with extraArgs appended (so
// they override the harness defaults) and waits until it is ready. The process is SIGKILLed when the
// test ends if it still runs, and its log is dumped if the test failed.
func startWeir(t testing.TB, dir string, extraArgs ...string) *weirNode {
	t.Helper()
	requireBinary(t)
	logDir := t.TempDir()
	n := &weirNode{
		t:       t,
		Dir:     dir,
		args:    extraArgs,
		logPath: filepath.Join(logDir, "weir.log"),
		client:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}},
	}
	cleanupProc(t, "weir", n.logPath, func() *proc { return n.proc })
	t.Cleanup(n.client.CloseIdleConnections)
	n.start()
	return n
}

// start launches the process and waits until it is ready. Weir binds port 0 for each listener the
// test does not fix (extra arguments override these) and logs what it got: no port is chosen by the
// test and freed before weir binds it, where another process could take it.
func (n *weirNode) start() {
	t := n.t
	t.Helper()
	args := append([]string{"receive",
		"--tsdb.path=" + n.Dir,
		"--remote-write.address=127.0.0.1:0",
		"--http-address=127.0.0.1:0",
		"--grpc-address=127.0.0.1:0",
		"--log.level=debug",
	}, n.args...)
	offset := fileSize(n.logPath)
	bin := weirBinary
	if n.nofile > 0 {
		bin, args = "bash", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, n.nofile), weirBinary}, args...)
	}
	p, err := launch(n.logPath, filepath.Dir(n.logPath), bin, args...)
	require.NoError(t, err)
	n.proc = p
	n.RemoteWriteAddr, n.RemoteWriteURL, n.OpsURL = "", "", ""
	require.NoError(t, n.waitReady(offset, readyTimeout), "weir did not become ready")
}

// waitReady waits for the start logged after offset in the log to name its listeners, then polls
// /-/ready until it answers 200; it gives up at once if the process exits.
func (n *weirNode) waitReady(offset int64, timeout time.Duration) error {
	return testutil.Poll(timeout, pollInterval, func() error {
		if n.proc.exited() {
			return testutil.Permanent(fmt.Errorf("weir exited with code %d before it was ready", n.proc.exitCode()))
		}
		if n.OpsURL == "" {
			rw, ops, ok := startedAddrs(readFrom(n.logPath, offset))
			if !ok {
				return errors.New("no start-up line (weir starting) with its addresses in the log yet")
			}
			n.RemoteWriteAddr = rw
			n.RemoteWriteURL = "http://" + rw + "/api/v1/receive"
			n.OpsURL = "http://" + ops
		}
		code, _, err := httpGet(n.client, n.OpsURL+"/-/ready")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/-/ready answered %d", code)
		}
		return nil
	})
}

// startedAddrs finds the start-up line of weir in log ("weir starting", logfmt or JSON) and returns
// the remote-write and ops addresses it names.
func startedAddrs(log string) (rw, ops string, ok bool) {
	for line := range strings.Lines(log) {
		if !strings.Contains(line, "weir starting") {
			continue
		}
		if strings.HasPrefix(line, "{") {
			var rec struct {
				RemoteWrite string `json:"remote_write"`
				HTTP        string `json:"http"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.RemoteWrite != "" && rec.HTTP != "" {
				return rec.RemoteWrite, rec.HTTP, true
			}
			continue
		}
		rw, ops = logfmtValue(line, "remote_write"), logfmtValue(line, "http")
		if rw != "" && ops != "" {
			return rw, ops, true
		}
	}
	return "", "", false
}

// logfmtValue is the value of key in a logfmt line (addresses need no quotes, but may have them).
func logfmtValue(line, key string) string {
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// Stop sends SIGTERM and requires a clean exit (code 0) within stopTimeout.
func (n *weirNode) Stop() {
	t := n.t
	t.Helper()
	require.NoError(t, n.proc.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, n.proc.wait(stopTimeout), "weir did not exit within %s of SIGTERM", stopTimeout)
	require.Equal(t, 0, n.proc.exitCode(), "exit code of weir after SIGTERM")
	n.client.CloseIdleConnections()
}

// Kill SIGKILLs the process group and waits for the exit.
func (n *weirNode) Kill() {
	t := n.t
	t.Helper()
	n.proc.killGroup()
	require.True(t, n.proc.wait(30*time.Second), "weir did not die after SIGKILL")
	n.client.CloseIdleConnections()
}

// Restart starts a stopped or killed node again on the same data directory (on new ports) and waits
// until it is ready, WAL replay included.
func (n *weirNode) Restart() {
	n.t.Helper()
	require.True(n.t, n.proc.exited(), "Restart needs a stopped node")
	n.start()
}

// Log returns everything the node logged so far (all starts).
func (n *weirNode) Log() string { return readFrom(n.logPath, 0) }

// Get answers a GET on the ops port.
func (n *weirNode) Get(t testing.TB, path string) (int, string) {
	t.Helper()
	code, body, err := httpGet(n.client, n.OpsURL+path)
	require.NoError(t, err)
	return code, body
}

// Write posts req to /api/v1/receive with the headers of a Remote Write 1.0 sender plus kv
// (name, value pairs, e.g. "THANOS-TENANT", "team-a").
func (n *weirNode) Write(t testing.TB, req *prompb.WriteRequest, kv ...string) response {
	t.Helper()
	return n.Post(t, n.RemoteWriteURL, encodeWrite(t, req), rwHeaders(kv...))
}

// WriteV2 sends req as Remote Write 2.0 with the header pairs kv.
func (n *weirNode) WriteV2(t testing.TB, req *writev2.Request, kv ...string) response {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	h := rwHeaders(kv...)
	h.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	h.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	return n.Post(t, n.RemoteWriteURL, bytes.NewReader(snappy.Encode(nil, b)), h)
}

// Post posts body to url with exactly the headers h.
func (n *weirNode) Post(t testing.TB, url string, body io.Reader, h http.Header) response {
	t.Helper()
	r, err := post(n.client, url, body, h)
	require.NoError(t, err)
	return r
}

// Metric scrapes the node and returns the sum of the samples of name whose labels include kv.
func (n *weirNode) Metric(t testing.TB, name string, kv ...string) (float64, bool) {
	t.Helper()
	v, ok, err := scrapeMetric(n.client, n.OpsURL+"/metrics", name, kv...)
	require.NoError(t, err)
	return v, ok
}

// ---------------------------------------------------------------------------------------------------
// HTTP.

type response struct {
	Code   int
	Body   string
	Header http.Header
}

func (r response) String() string { return fmt.Sprintf("%d %q", r.Code, r.Body) }

// rwHeaders are the headers of a Remote Write 1.0 request, plus kv as name, value pairs.
func rwHeaders(kv ...string) http.Header {
	h := http.Header{}
	h.Set("Content-Encoding", "snappy")
	h.Set("Content-Type", "application/x-protobuf")
	h.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	h.Set("User-Agent", "weir-e2e")
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// encodeWrite is the body of a Remote Write 1.0 request: block snappy over the protobuf.
func encodeWrite(t testing.TB, req *prompb.WriteRequest) *bytes.Reader {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	return bytes.NewReader(snappy.Encode(nil, b))
}

// post never fails the test, so that goroutines can use it.
func post(c *http.Client, url string, body io.Reader, h http.Header) (response, error) {
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		return response{}, err
	}
	req.Header = h
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{Code: resp.StatusCode, Body: string(b), Header: resp.Header}, nil
}

func httpGet(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// scrapeMetric scrapes a Prometheus text-format endpoint and sums the samples of the metric name whose
// labels include kv (name, value pairs). ok is false when no sample matched.
func scrapeMetric(c *http.Client, url, name string, kv ...string) (value float64, ok bool, err error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, false, fmt.Errorf("parse %s: %w", url, err)
	}
	fam, found := fams[name]
	if !found {
		return 0, false, nil
	}
metrics:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(kv); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == kv[i] && l.GetValue() == kv[i+1]
			}
			if !found {
				continue metrics
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			value += m.GetCounter().GetValue()
		case m.Gauge != nil:
			value += m.GetGauge().GetValue()
		case m.Untyped != nil:
			value += m.GetUntyped().GetValue()
		default:
			return 0, false, fmt.Errorf("metric %s is neither counter, gauge nor untyped", name)
		}
	}
	return value, ok, nil
}

// ---------------------------------------------------------------------------------------------------
// Building requests.

// series is a time series with labels given as name, value pairs.
func series(kv []string, samples ...prompb.Sample) prompb.TimeSeries {
	ls := make([]prompb.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: samples}
}

func lbls(kv ...string) []string { return kv }

func smp(ts int64, v float64) prompb.Sample { return prompb.Sample{Timestamp: ts, Value: v} }

func writeReq(ts ...prompb.TimeSeries) *prompb.WriteRequest {
	return &prompb.WriteRequest{Timeseries: ts}
}

// key is how readTenant names a series: the Prometheus string form of its labels.
func key(kv ...string) string { return labels.FromStrings(kv...).String() }

// baseTime is a millisecond timestamp safely inside what a fresh TSDB head accepts (not too old, not
// in the future), rounded to the second.
func baseTime() int64 {
	return time.Now().Add(-10 * time.Minute).Truncate(time.Second).UnixMilli()
}

// ---------------------------------------------------------------------------------------------------
// Reading data back.

// sample is a stored point: a float (H empty), or a native histogram in its String form (integer
// histograms prefixed "int ", float histograms "float "; V is then 0).
type sample struct {
	T int64
	V float64
	H string
}

func (s sample) String() string {
	if s.H != "" {
		return fmt.Sprintf("%s@%d", s.H, s.T)
	}
	return fmt.Sprintf("%g@%d", s.V, s.T)
}

func intHist(ts int64, h *histogram.Histogram) sample { return sample{T: ts, H: "int " + h.String()} }

func floatHist(ts int64, fh *histogram.FloatHistogram) sample {
	return sample{T: ts, H: "float " + fh.String()}
}

// readTenant opens <dataDir>/<tenant> read-only (blocks, head chunks and WAL) after the node stopped
// and returns every point by series.
func readTenant(t testing.TB, dataDir, tenant string) map[string][]sample {
	t.Helper()
	dir := filepath.Join(dataDir, tenant)
	require.DirExists(t, dir, "TSDB of tenant %s", tenant)
	// The sandbox hardlinks the head's chunk files: outside the data directory, on its volume (a test
	// may put the data on a volume of its own).
	sandbox, err := os.MkdirTemp(filepath.Dir(dataDir), "dbro-sandbox-")
	require.NoError(t, err)
	defer func() { require.NoError(t, os.RemoveAll(sandbox)) }()
	db, err := tsdb.OpenDBReadOnly(dir, sandbox, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()

	out := map[string][]sample{}
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".*"))
	for set.Next() {
		s := set.At()
		k := s.Labels().String()
		it := s.Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				out[k] = append(out[k], sample{T: ts, V: v})
			case chunkenc.ValHistogram:
				out[k] = append(out[k], intHist(it.AtHistogram(nil)))
			case chunkenc.ValFloatHistogram:
				out[k] = append(out[k], floatHist(it.AtFloatHistogram(nil)))
			default:
				t.Fatalf("series %s of tenant %s holds a %s", k, tenant, vt)
			}
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

// tenantDirs lists the tenant TSDBs in a data directory: the subdirectories with a WAL, sorted. (Other
// entries, an object-storage directory say, are not tenants.)
func tenantDirs(t testing.TB, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dataDir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if fi, err := os.Stat(filepath.Join(dataDir, e.Name(), "wal")); err == nil && fi.IsDir() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// tree lists every path under root (relative, sorted), to compare before and after.
func tree(t testing.TB, root string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		paths = append(paths, rel)
		return err
	})
	require.NoError(t, err)
	return paths
}

// ---------------------------------------------------------------------------------------------------
// Waiting.

// waitFor polls cond until it returns nil, failing the test with cond's last error after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testutil.Eventually(t, timeout, pollInterval, what, cond)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	return string(b[offset:])
}

// TestStartedAddrs: the harness finds weir's listeners in its start-up line, in either log format.
func TestStartedAddrs(t *testing.T) {
	for _, log := range []string{
		"time=2026-01-02T03:04:05Z level=INFO msg=\"weir starting\" version=dev role=ingester remote_write=127.0.0.1:4001 http=127.0.0.1:4002 grpc=127.0.0.1:4003 data=/d\n",
		"time=… level=INFO msg=\"other\"\n{\"time\":\"…\",\"level\":\"INFO\",\"msg\":\"weir starting\",\"remote_write\":\"127.0.0.1:4001\",\"http\":\"127.0.0.1:4002\",\"grpc\":\"\"}\n",
	} {
		rw, ops, ok := startedAddrs(log)
		require.True(t, ok, log)
		require.Equal(t, "127.0.0.1:4001", rw)
		require.Equal(t, "127.0.0.1:4002", ops)
	}
	_, _, ok := startedAddrs("level=INFO msg=\"weir starting\" remote_write=127.0.0.1:4001\n") // cut short
	require.False(t, ok)
}
