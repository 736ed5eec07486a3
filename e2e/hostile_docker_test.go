//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
)

// TestDockerHostileInput sends the hostile requests of issue 8 §4 to a running container of the image:
//
//	test ──known samples, then every hostile request, slow-loris connections──▶ container weir
//	     ◀── documented 4xx each; /-/ready; the known samples via the query API, then from the TSDB
//
// Known samples (NaN, ±Inf and stale markers among them: valid, stored bit for bit) are written first.
// Every hostile request must get its documented status (never a 5xx, which senders retry forever), and
// afterwards the node is still ready, the container still runs and never restarted, the known samples
// read back unchanged through the node's query API, a valid write is still acknowledged, and after a
// clean stop the TSDB holds exactly the known samples and no other tenant directory exists.
func TestDockerHostileInput(t *testing.T) {
	ct := startSingleContainer(t, "--remote-write.server-read-timeout="+readBodyLimit.String())
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	const known = "hostile-known"

	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second).UnixMilli()
	want := writeKnownSamples(t, client, ct.rw, known, t0)

	for _, tc := range hostileCases(t, known, t0) {
		runHostileCase(t, client, ct.rw, tc)
	}
	for _, id := range controlTenants {
		code, body := rawPost(t, ct.rwAddr(t), "THANOS-TENANT: "+id, mustEncode(t, writeReq(series(lbls("__name__", "hostile_ctl"), smp(t0, 1)))))
		require.Equal(t, http.StatusBadRequest, code, "tenant %q: %.200q", id, body)
	}
	slow := slowLoris(t, ct, client)
	t.Logf("FIGURES hostile: %d requests and %d raw control-character tenants answered as documented; %s",
		len(hostileCases(t, known, t0)), len(controlTenants), slow)

	// The node is unharmed: running, never restarted, ready, serving reads and writes.
	state := strings.Fields(dockerCmd(t, "inspect", "-f", "{{.State.Running}} {{.RestartCount}} {{.State.OOMKilled}}", ct.name))
	require.Equal(t, []string{"true", "0", "false"}, state, "running, restart count, OOM-killed")
	code, body, err := httpGet(client, ct.ops+"/-/ready")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	requireQueryValues(t, client, ct.ops, known, t0+60_000, map[string]float64{"0": 60, "1": 1060, "2": 2060})
	resp, err := post(client, ct.rw, encodeWrite(t, writeReq(series(lbls("__name__", "hostile_after", "i", "0"), smp(t0+120_000, 7)))), rwHeaders("THANOS-TENANT", known))
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.Code, resp.String())
	want[key("__name__", "hostile_after", "i", "0")] = []sample{{T: t0 + 120_000, V: 7}}

	dockerCmd(t, "stop", "-t", "60", ct.name)
	require.Equal(t, "0", strings.TrimSpace(dockerCmd(t, "inspect", "-f", "{{.State.ExitCode}}", ct.name)))
	require.Equal(t, []string{known, "hostile-slow"}, tenantDirs(t, ct.dataDir), "tenant directories after the suite (the hostile ones must not exist)")
	requireSameBits(t, want, readTenant(t, ct.dataDir, known))
}

// writeKnownSamples writes three series of ten one-minute samples from t0, plus a series with the
// special values (NaN, +Inf, -Inf, a stale marker: valid, stored as they are), one write without
// Content-Encoding (taken as snappy), and returns what the tenant must hold.
func writeKnownSamples(t *testing.T, client *http.Client, url, tenantID string, t0 int64) map[string][]sample {
	t.Helper()
	want := map[string][]sample{}
	req := writeReq()
	for s := range 3 {
		kv := lbls("__name__", "hostile_known", "i", strconv.Itoa(s))
		ts := series(kv)
		for i := range int64(10) {
			p := smp(t0+i*60_000, float64(s*1000)+float64(i*60))
			ts.Samples = append(ts.Samples, p)
			want[key(kv...)] = append(want[key(kv...)], sample{T: p.Timestamp, V: p.Value})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	special := lbls("__name__", "hostile_special")
	vals := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Float64frombits(value.StaleNaN), 0}
	ts := series(special)
	for i, v := range vals {
		ts.Samples = append(ts.Samples, smp(t0+int64(i)*1000, v))
		want[key(special...)] = append(want[key(special...)], sample{T: t0 + int64(i)*1000, V: v})
	}
	req.Timeseries = append(req.Timeseries, ts)
	resp, err := post(client, url, encodeWrite(t, req), rwHeaders("THANOS-TENANT", tenantID))
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.Code, "known samples: %s", resp)

	h := rwHeaders("THANOS-TENANT", tenantID)
	h.Del("Content-Encoding")
	kv := lbls("__name__", "hostile_no_encoding_header")
	resp, err = post(client, url, encodeWrite(t, writeReq(series(kv, smp(t0, 5)))), h)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.Code, "no Content-Encoding, block snappy body: %s", resp)
	want[key(kv...)] = []sample{{T: t0, V: 5}}
	return want
}

// requireSameBits compares stored floats bit for bit (NaN != NaN, and a stale marker is a particular NaN).
func requireSameBits(t *testing.T, want, got map[string][]sample) {
	t.Helper()
	require.Len(t, got, len(want), "series stored: %v", keysOf(got))
	for k, w := range want {
		g := got[k]
		require.Len(t, g, len(w), "samples of %s: %v", k, g)
		for i := range w {
			require.Equal(t, w[i].T, g[i].T, "%s sample %d", k, i)
			require.Equal(t, math.Float64bits(w[i].V), math.Float64bits(g[i].V), "%s at %d: stored %v, written %v", k, w[i].T, g[i].V, w[i].V)
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// requireQueryValues asks the node's query API (ops port) for hostile_known at ts and compares the
// value of each series, by its label i.
func requireQueryValues(t *testing.T, client *http.Client, ops, tenantID string, ts int64, want map[string]float64) {
	t.Helper()
	q := url.Values{"query": {"hostile_known"}, "time": {strconv.FormatFloat(float64(ts)/1000, 'f', 3, 64)}}
	req, err := http.NewRequest(http.MethodGet, ops+"/api/v1/query?"+q.Encode(), nil)
	require.NoError(t, err)
	req.Header.Set("THANOS-TENANT", tenantID)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	require.Equal(t, "success", r.Status)
	got := map[string]float64{}
	for _, s := range r.Data.Result {
		v, err := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
		require.NoError(t, err)
		got[s.Metric["i"]] = v
	}
	require.Equal(t, want, got, "hostile_known at %d through the query API", ts)
}

// rawPost sends a POST with one extra raw header line over a plain TCP connection (for bytes that Go's
// client refuses to put in a header) and returns the status code and body of the answer.
func rawPost(t *testing.T, addr, headerLine string, body []byte) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = fmt.Fprintf(c, "POST /api/v1/receive HTTP/1.1\r\nHost: %s\r\nContent-Encoding: snappy\r\n"+
		"Content-Type: application/x-protobuf\r\n%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", addr, headerLine, len(body))
	require.NoError(t, err)
	_, err = c.Write(body)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode, readAllString(resp.Body)
}

// singleContainer is one weir container of the image with its data on a host directory.
type singleContainer struct {
	name    string
	dataDir string
	rw, ops string // loopback URLs of the published ports
}

// rwAddr is host:port of the published remote-write port.
func (c *singleContainer) rwAddr(t *testing.T) string {
	u, err := url.Parse(c.rw)
	require.NoError(t, err)
	return u.Host
}

// startSingleContainer runs the image with its default command (the embedded default) plus args,
// publishes its ports on loopback, waits until it is ready and removes it at the end (logs on failure).
func startSingleContainer(t *testing.T, args ...string) *singleContainer {
	t.Helper()
	image := dockerImage(t)
	c := &singleContainer{name: fmt.Sprintf("weir-e2e-%s-%d", strings.ToLower(strings.TrimPrefix(t.Name(), "TestDocker")), time.Now().UnixNano()), dataDir: t.TempDir()}
	require.NoError(t, os.Chmod(c.dataDir, 0o777)) // the image runs as nobody (65534)
	run := append([]string{"run", "-d", "--name", c.name, "-v", c.dataDir + ":/data",
		"-p", "127.0.0.1::19291", "-p", "127.0.0.1::10902", image, "receive", "--tsdb.path=/data"}, args...)
	dockerCmd(t, run...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", c.name).CombinedOutput()
			t.Logf("logs of %s:\n%s", c.name, out)
		}
		_ = exec.Command("docker", "rm", "-f", c.name).Run()
	})
	c.rw, c.ops = dockerPorts(t, c.name)
	dockerWaitReady(t, c.ops)
	return c
}
