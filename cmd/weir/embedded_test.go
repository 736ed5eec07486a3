package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestEmbeddedDefault runs exactly what the README promises: `weir` with no arguments, in an empty
// directory, receives on :19291 with the tenant header, stores under ./data/<tenant>, serves /-/ready on
// :10902, stops cleanly on SIGTERM, and leaves a TSDB that Prometheus' promtool reads.
func TestEmbeddedDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, addr := range []string{"127.0.0.1:19291", "127.0.0.1:10902"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			testutil.Unavailable(t, "default port %s is taken, cannot run the embedded default: %v", addr, err)
		}
		ln.Close()
	}
	promtool := testutil.RequireTool(t, "WEIR_PROMTOOL", "bin/promtool", "make tools")

	bin := filepath.Join(t.TempDir(), "weir")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)

	work := t.TempDir()
	var logs bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Dir = work
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("weir logs:\n%s", logs.String())
		}
	})

	testutil.Eventually(t, 30*time.Second, testutil.DefaultInterval, "weir to be ready", func() error {
		resp, err := http.Get("http://127.0.0.1:10902/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready answered %d", resp.StatusCode)
		}
		return nil
	})

	ts := time.Now().UnixMilli()
	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "readme_metric"}, {Name: "job", Value: "readme"}},
		Samples: []prompb.Sample{{Timestamp: ts, Value: 7}},
	}}}).Marshal()
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:19291/api/v1/receive", bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("THANOS-TENANT", "team-a")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	// The README's debug read on --http-address: the tenant's fresh data, without the tenant label.
	q, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:10902/api/v1/query?query=readme_metric", nil)
	require.NoError(t, err)
	q.Header.Set("THANOS-TENANT", "team-a")
	resp, err = http.DefaultClient.Do(q)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.JSONEq(t, fmt.Sprintf(`{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"readme_metric","job":"readme"},"value":[%s,"7"]}]}}`, jsonTime(t, body)), string(body))

	// The README's load-testing command, shortened: every request acknowledged (exit code 0).
	bench, err := exec.Command(bin, "bench", "--url", "http://127.0.0.1:19291/api/v1/receive", "--series", "1000",
		"--samples-per-request", "500", "--requests", "4", "--output", "json").CombinedOutput()
	require.NoError(t, err, "%s", bench)
	require.Contains(t, string(bench), `"requests_ok": 4`)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		require.NoError(t, err, "weir did not exit cleanly")
	case <-time.After(30 * time.Second):
		t.Fatal("weir did not stop within 30s of SIGTERM")
	}

	dump, err := exec.Command(promtool, "tsdb", "dump", "--sandbox-dir-root="+t.TempDir(), filepath.Join(work, "data", "team-a")).CombinedOutput()
	require.NoError(t, err, "%s", dump)
	require.Contains(t, string(dump), fmt.Sprintf(`{__name__="readme_metric", job="readme"} 7 %d`, ts))
	require.False(t, strings.Contains(string(dump), "tenant_id"), "the tenant label must not be stored in series")
}

// jsonTime returns the evaluation time of the first sample of an instant-query response, as rendered.
func jsonTime(t *testing.T, body []byte) string {
	t.Helper()
	var r struct {
		Data struct {
			Result []struct {
				Value []json.RawMessage `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &r), "%s", body)
	require.NotEmpty(t, r.Data.Result, "%s", body)
	require.Len(t, r.Data.Result[0].Value, 2, "%s", body)
	return string(r.Data.Result[0].Value[0])
}
