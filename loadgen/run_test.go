package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// fakeReceiver decodes every request as a remote-write receiver would, answers with the status that
// fail picks for the n-th request (0 based), and remembers what it acknowledged.
type fakeReceiver struct {
	t    *testing.T
	fail func(n int64) int

	n            atomic.Int64
	mu           sync.Mutex
	byStatus     map[int]int64
	samplesTotal int64
	samplesAcked int64
	acked        []string // "tenant labels ts value", one per acknowledged sample
}

func newFakeReceiver(t *testing.T, fail func(n int64) int) (*fakeReceiver, *httptest.Server) {
	f := &fakeReceiver{t: t, fail: fail, byStatus: map[int]int64{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.n.Add(1) - 1
	code := http.StatusNoContent
	if f.fail != nil {
		if c := f.fail(n); c != 0 {
			code = c
		}
	}
	ok := r.Method == http.MethodPost &&
		r.Header.Get("Content-Encoding") == "snappy" &&
		r.Header.Get("Content-Type") == "application/x-protobuf" &&
		r.Header.Get("X-Prometheus-Remote-Write-Version") == "0.1.0" &&
		r.Header.Get("X-Extra") == "yes"
	tenant := r.Header.Get("THANOS-TENANT")
	body, err := io.ReadAll(r.Body)
	var wr prompb.WriteRequest
	if err == nil {
		var raw []byte
		if raw, err = snappy.Decode(nil, body); err == nil {
			err = wr.Unmarshal(raw)
		}
	}
	if !ok || err != nil || tenant == "" {
		code = http.StatusBadRequest // shows up in the report and fails the test
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byStatus[code]++
	f.samplesTotal += int64(len(wr.Timeseries))
	if code/100 == 2 {
		f.samplesAcked += int64(len(wr.Timeseries))
		for _, s := range wr.Timeseries {
			for _, smp := range s.Samples {
				f.acked = append(f.acked, fmt.Sprintf("%s %s %d %g", tenant, toLabels(s.Labels), smp.Timestamp, smp.Value))
			}
		}
	}
	if code/100 != 2 {
		http.Error(w, "refused by the fake: "+strconv.Itoa(code), code)
		return
	}
	w.WriteHeader(code)
}

func testConfig(url string) Config {
	return Config{
		Spec:         Spec{Tenants: 3, Series: 6000, LabelsPerSeries: 10, LabelValueCardinality: 20, SamplesPerRequest: 500},
		URL:          url,
		TenantHeader: "THANOS-TENANT",
		Headers:      http.Header{"X-Extra": {"yes"}},
		Protocol:     "1.0",
		Concurrency:  4,
		Timeout:      10 * time.Second,
		UserAgent:    "test",
	}
}

func readAcked(t *testing.T, path string) (Spec, []string) {
	t.Helper()
	spec, records, err := ReadAckLog(path)
	require.NoError(t, err)
	var out []string
	for rec, err := range records {
		require.NoError(t, err)
		for s := range rec.Samples(spec) {
			out = append(out, fmt.Sprintf("%s %s %d %g", s.Tenant, s.Labels, s.Timestamp, s.Value))
		}
	}
	return spec, out
}

func TestRunCountsWhatTheReceiverSaw(t *testing.T) {
	// Some requests fail, with two different codes; the rest are acknowledged.
	f, srv := newFakeReceiver(t, func(n int64) int {
		switch {
		case n%5 == 3:
			return http.StatusInternalServerError
		case n%7 == 6:
			return http.StatusTooManyRequests
		}
		return 0
	})
	cfg := testConfig(srv.URL)
	cfg.MaxRequests = 70
	cfg.AckLog = filepath.Join(t.TempDir(), "ack.log")
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)

	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, int64(70), f.n.Load())
	require.Zero(t, f.byStatus[http.StatusBadRequest], "every request well-formed")
	require.Equal(t, int64(70), rep.RequestsSent)
	require.Equal(t, f.byStatus[http.StatusNoContent], rep.RequestsOK)
	require.Equal(t, 70-rep.RequestsOK, rep.RequestsFailed)
	require.Equal(t, map[string]int64{"500": f.byStatus[500], "429": f.byStatus[429]}, rep.ErrorsByStatus)
	require.Equal(t, int64(14), f.byStatus[500])
	require.Equal(t, int64(8), f.byStatus[429]) // n = 6, 13, 20, 27, 34, 41, 48, 55, 62, 69 minus 13, 48 (500s)
	require.Contains(t, rep.FirstErrors["500"], "refused by the fake: 500")
	require.Zero(t, rep.TransportErrors)
	require.Equal(t, f.samplesTotal, rep.SamplesSent)
	require.Equal(t, int64(70*500), rep.SamplesSent)
	require.Equal(t, f.samplesAcked, rep.SamplesAcked)
	require.Equal(t, int64(4), int64(rep.Workers))
	require.Positive(t, rep.Latency.P50)
	require.LessOrEqual(t, rep.Latency.P50, rep.Latency.P99)
	require.LessOrEqual(t, rep.Latency.P99, rep.Latency.P999)

	// The ack log holds exactly the acknowledged samples: each reconstructed from (spec, record) alone.
	spec, fromLog := readAcked(t, cfg.AckLog)
	require.Equal(t, cfg.Spec, spec)
	require.Len(t, fromLog, int(rep.SamplesAcked))
	slices.Sort(fromLog)
	acked := slices.Clone(f.acked)
	slices.Sort(acked)
	require.Equal(t, acked, fromLog)
}

func TestRunStopsAfterDurationAndRespectsTheRate(t *testing.T) {
	f, srv := newFakeReceiver(t, nil)
	cfg := testConfig(srv.URL)
	cfg.Spec = Spec{Tenants: 1, Series: 1000, LabelsPerSeries: 4, LabelValueCardinality: 5, SamplesPerRequest: 100}
	cfg.Rate = 20_000
	cfg.Duration = 500 * time.Millisecond
	var progress bytes.Buffer
	cfg.Progress = &progress
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Zero(t, rep.RequestsFailed)
	require.Equal(t, f.n.Load(), rep.RequestsSent)
	// The limiter admits one request at once and the next ones 100/20000 s apart: never more than
	// rate × duration plus one request per worker, whatever the machine.
	require.LessOrEqual(t, float64(rep.SamplesSent), cfg.Rate*rep.DurationSeconds+float64(cfg.SamplesPerRequest*cfg.Concurrency))
	// And on any machine that answers a loopback request within a few ms, not far below it.
	require.GreaterOrEqual(t, float64(rep.SamplesSent), cfg.Rate*0.5*0.25)
	require.GreaterOrEqual(t, rep.DurationSeconds, 0.5)
}

func TestRunCountsTransportErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there any more
	cfg := testConfig("http://" + addr + "/api/v1/receive")
	cfg.MaxRequests = 5
	cfg.AckLog = filepath.Join(t.TempDir(), "ack.log")
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, int64(5), rep.RequestsSent)
	require.Equal(t, int64(5), rep.TransportErrors)
	require.Equal(t, int64(5), rep.RequestsFailed)
	require.Empty(t, rep.ErrorsByStatus)
	require.Contains(t, rep.FirstErrors["transport"], "refused")
	require.Zero(t, rep.SamplesAcked)
	_, acked := readAcked(t, cfg.AckLog)
	require.Empty(t, acked)
}

func TestRunEndsWhenCancelled(t *testing.T) {
	_, srv := newFakeReceiver(t, nil)
	cfg := testConfig(srv.URL)
	cfg.Duration = 0 // until cancelled
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, cfg)
	require.NoError(t, err)
	require.Zero(t, rep.RequestsSent)
}

func TestReportJSONShape(t *testing.T) {
	_, srv := newFakeReceiver(t, func(n int64) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	cfg := testConfig(srv.URL)
	cfg.MaxRequests = 3
	cfg.Concurrency = 1
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, rep.WriteJSON(&buf))
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	require.Equal(t, []string{
		"bytes_sent", "duration_seconds", "errors_by_status", "first_errors", "latency_seconds", "protocol",
		"requests_failed", "requests_ok", "requests_sent", "samples_acked", "samples_per_second", "samples_sent",
		"series_created", "spec", "target_rate", "transport_errors", "url", "workers",
	}, keys(m))
	require.Equal(t, []string{"max", "p50", "p90", "p99", "p99_9"}, keys(m["latency_seconds"].(map[string]any)))
	require.Equal(t, []string{"churn_per_minute", "label_value_cardinality", "labels_per_series", "samples_per_request", "series", "tenants"},
		keys(m["spec"].(map[string]any)))
	require.Equal(t, map[string]any{"503": 1.0}, m["errors_by_status"])
	require.Equal(t, 3.0, m["requests_sent"])
	require.Equal(t, 2.0, m["requests_ok"])
	require.Equal(t, 1000.0, m["samples_acked"])

	buf.Reset()
	require.NoError(t, rep.WriteText(&buf))
	require.Contains(t, buf.String(), "requests   3 sent, 2 ok, 1 failed")
	require.Contains(t, buf.String(), "HTTP 503  1 requests  first: refused by the fake: 503")
}

func TestConfigValidation(t *testing.T) {
	good := testConfig("http://localhost:19291/api/v1/receive")
	require.NoError(t, good.Validate())
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.URL = "" }, "--url is required"},
		{func(c *Config) { c.URL = "localhost:19291" }, "--url"},
		{func(c *Config) { c.URL = "ftp://x/y" }, "--url"},
		{func(c *Config) { c.Protocol = "3" }, "--protocol"},
		{func(c *Config) { c.TenantHeader = "" }, "--tenant-header"},
		{func(c *Config) { c.Concurrency = 0 }, "--concurrency"},
		{func(c *Config) { c.Rate = -1 }, "--rate"},
		{func(c *Config) { c.Duration = -time.Second }, "--duration"},
		{func(c *Config) { c.MaxRequests = -1 }, "--requests"},
		{func(c *Config) { c.Timeout = 0 }, "--timeout"},
		{func(c *Config) { c.Series = 0 }, "--series"},
	} {
		c := good
		tc.edit(&c)
		require.ErrorContains(t, c.Validate(), tc.want)
		_, err := Run(context.Background(), c)
		require.ErrorContains(t, err, tc.want)
	}
}

func TestReadAckLogRejectsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	_, _, err := ReadAckLog(write("empty", ""))
	require.ErrorContains(t, err, "not a weir bench ack log")
	_, _, err = ReadAckLog(write("other", "hello\n"))
	require.ErrorContains(t, err, "not a weir bench ack log")
	_, _, err = ReadAckLog(write("badspec", AckLogHeader+`{"tenants":0}`+"\n"))
	require.ErrorContains(t, err, "--tenants")

	hdr := AckLogHeader + `{"tenants":1,"series":10,"labels_per_series":3,"label_value_cardinality":2,"churn_per_minute":0,"samples_per_request":5}` + "\n"
	spec, records, err := ReadAckLog(write("bad-line", hdr+"tenant-0 0 5 0 1000\ntenant-0 5 x 0 1000\n"))
	require.NoError(t, err)
	require.Equal(t, 10, spec.Series)
	var got []AckRecord
	var last error
	for rec, err := range records {
		if err != nil {
			last = err
			break
		}
		got = append(got, rec)
	}
	require.Equal(t, []AckRecord{{Tenant: "tenant-0", FirstSlot: 0, Count: 5, Churn: 0, Timestamp: 1000}}, got)
	require.ErrorContains(t, last, "bad-line:3")

	var samples []Sample
	for s := range got[0].Samples(spec) {
		samples = append(samples, s)
	}
	require.Len(t, samples, 5)
	require.Equal(t, `{__name__="weir_bench_metric", label_0="value-1", series_id="3"}`, samples[3].Labels.String())
	require.Equal(t, Value(3, 1000), samples[3].Value)
}

func TestAckLogRoundTripWithChurn(t *testing.T) {
	f, srv := newFakeReceiver(t, func(n int64) int {
		if n%3 == 1 {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	cfg := testConfig(srv.URL)
	// A million replacements a second: every request sees series that the previous one did not.
	cfg.ChurnPerMinute = 60_000_000
	cfg.MaxRequests = 40
	cfg.AckLog = filepath.Join(t.TempDir(), "ack.log")
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Greater(t, rep.SeriesCreated, int64(cfg.Series))
	_, fromLog := readAcked(t, cfg.AckLog)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Zero(t, f.byStatus[http.StatusBadRequest])
	slices.Sort(fromLog)
	acked := slices.Clone(f.acked)
	slices.Sort(acked)
	require.Equal(t, acked, fromLog)
	require.Len(t, fromLog, int(rep.SamplesAcked))
}
