package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBenchBadFlagsExitTwoNamingTheFlag(t *testing.T) {
	url := "--url=http://127.0.0.1:1/api/v1/receive"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--url is required"},
		{[]string{"--url=localhost:19291"}, "--url"},
		{[]string{url, "--tenants=0"}, "--tenants"},
		{[]string{url, "--series=-5"}, "--series"},
		{[]string{url, "--labels-per-series=1"}, "--labels-per-series"},
		{[]string{url, "--label-value-cardinality=0"}, "--label-value-cardinality"},
		{[]string{url, "--churn=-1"}, "--churn"},
		{[]string{url, "--samples-per-request=0"}, "--samples-per-request"},
		{[]string{url, "--concurrency=0"}, "--concurrency"},
		{[]string{url, "--rate=-3"}, "--rate"},
		{[]string{url, "--duration=soon"}, "-duration"},
		{[]string{url, "--header=NoColon"}, "-header"},
		{[]string{url, "--protocol=0.9"}, "--protocol"},
		{[]string{url, "--output=yaml"}, "--output"},
		{[]string{url, "--tenant-header="}, "--tenant-header"},
		{[]string{url, "--series=2", "--tenants=3"}, "--series"},
		{[]string{url, "--nope"}, "-nope"},
		{[]string{url, "extra"}, "unexpected extra"},
	} {
		var stdout, stderr bytes.Buffer
		code := dispatch(append([]string{"bench"}, tc.args...), &stdout, &stderr)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr.String())
		require.Contains(t, stderr.String(), tc.want, "%v", tc.args)
		require.Empty(t, stdout.String())
	}
}

func TestBenchHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, dispatch([]string{"bench", "--help"}, &stdout, &stderr))
	for _, f := range []string{"--url", "--tenants", "--tenant-header", "--series", "--labels-per-series", "--label-value-cardinality",
		"--churn", "--samples-per-request", "--concurrency", "--rate", "--duration", "--header", "--protocol", "--ack-log", "--output"} {
		require.Contains(t, stderr.String(), "  "+f+"=", f)
	}
	stderr.Reset()
	require.Equal(t, 0, dispatch([]string{"help"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "bench [<flags>]")
}

func TestBenchRunsAndReports(t *testing.T) {
	var n, failFrom atomic.Int64
	failFrom.Store(1 << 40)
	var gotHeader atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		gotHeader.Store(r.Header.Get("X-Scope-OrgID") + "|" + r.Header.Get("Authorization"))
		if n.Add(1) > failFrom.Load() {
			http.Error(w, "overloaded", http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	args := []string{"bench", "--url=" + srv.URL + "/api/v1/receive", "--series=1000", "--samples-per-request=100", "--requests=6",
		"--tenant-header=X-Scope-OrgID", "--header", "Authorization: Bearer abc", "--ack-log=" + filepath.Join(t.TempDir(), "ack.log")}

	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, dispatch(append(args, "--output=json"), &stdout, &stderr), stderr.String())
	var rep map[string]any
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	require.Equal(t, 6.0, rep["requests_ok"])
	require.Equal(t, 600.0, rep["samples_acked"])
	require.Equal(t, "tenant-0|Bearer abc", gotHeader.Load())

	// Failures: the report still shows, and the exit code says so.
	failFrom.Store(n.Load() + 2)
	stdout.Reset()
	stderr.Reset()
	require.Equal(t, 1, dispatch(args, &stdout, &stderr))
	require.Contains(t, stdout.String(), "requests   6 sent, 2 ok, 4 failed")
	require.Contains(t, stdout.String(), "HTTP 429  4 requests  first: overloaded")
	require.True(t, strings.HasSuffix(stderr.String(), "weir bench: 4 of 6 requests failed\n"), stderr.String())
}
