//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestDockerImage runs Weir's FROM-scratch image as a container, the way a StatefulSet pod runs it:
//
//	test ──remote write──▶ container weir (data on a host directory) ──SIGKILL, start, SIGTERM
//
// It checks that the image starts as an unprivileged user with its default command, acknowledges a
// write, replays it after SIGKILL, stops cleanly on SIGTERM, and leaves a readable TSDB behind.
func TestDockerImage(t *testing.T) {
	image := os.Getenv("WEIR_IMAGE")
	if image == "" {
		image = "weir:dev"
	}
	testutil.RequireDocker(t, "make docker-test", image)

	dataDir := t.TempDir()
	require.NoError(t, os.Chmod(dataDir, 0o777)) // the image runs as nobody (65534)
	name := fmt.Sprintf("weir-e2e-%d", time.Now().UnixNano())
	dockerCmd(t, "run", "-d", "--name", name, "-v", dataDir+":/data",
		"-p", "127.0.0.1::19291", "-p", "127.0.0.1::10902", image)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", name).CombinedOutput()
			t.Logf("container logs:\n%s", out)
		}
		_ = exec.Command("docker", "rm", "-f", name).Run()
	})

	rw, ops := dockerPorts(t, name)
	dockerWaitReady(t, ops)

	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "docker_test"}, {Name: "job", Value: "e2e"}},
		Samples: []prompb.Sample{{Timestamp: now, Value: 42}},
	}}}
	require.Equal(t, http.StatusNoContent, dockerPost(t, rw, "team-a", req))

	// SIGKILL and start again: the acknowledged sample comes back from the WAL.
	dockerCmd(t, "kill", "-s", "KILL", name)
	dockerCmd(t, "start", name)
	rw, ops = dockerPorts(t, name)
	dockerWaitReady(t, ops)
	require.Equal(t, http.StatusNoContent, dockerPost(t, rw, "team-a", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  req.Timeseries[0].Labels,
		Samples: []prompb.Sample{{Timestamp: now + 1000, Value: 43}},
	}}}))

	// SIGTERM: a clean stop with exit code 0.
	dockerCmd(t, "stop", "-t", "30", name)
	require.Equal(t, "0", strings.TrimSpace(dockerCmd(t, "inspect", "-f", "{{.State.ExitCode}}", name)))

	db, err := tsdb.OpenDBReadOnly(filepath.Join(dataDir, "team-a"), t.TempDir(), nil)
	require.NoError(t, err)
	defer db.Close()
	q, err := db.Querier(0, now+10_000)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "docker_test"))
	require.True(t, ss.Next(), "series missing")
	require.Equal(t, `{__name__="docker_test", job="e2e"}`, ss.At().Labels().String())
	it := ss.At().Iterator(nil)
	var got []prompb.Sample
	for it.Next() != 0 {
		ts, v := it.At()
		got = append(got, prompb.Sample{Timestamp: ts, Value: v})
	}
	require.NoError(t, it.Err())
	require.Equal(t, []prompb.Sample{{Timestamp: now, Value: 42}, {Timestamp: now + 1000, Value: 43}}, got)
	require.False(t, ss.Next())
}

func dockerCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	require.NoError(t, err, "docker %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// dockerPorts returns the loopback URLs of the container's remote-write and ops ports.
func dockerPorts(t *testing.T, name string) (rw, ops string) {
	t.Helper()
	port := func(p string) string {
		out := strings.TrimSpace(dockerCmd(t, "port", name, p))
		return "http://" + strings.Split(out, "\n")[0]
	}
	return port("19291") + "/api/v1/receive", port("10902")
}

func dockerWaitReady(t *testing.T, ops string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, 100*time.Millisecond, "the container to be ready at "+ops, func() error {
		code, _, err := httpGet(http.DefaultClient, ops+"/-/ready")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/-/ready answered %d", code)
		}
		return nil
	})
}

func dockerPost(t *testing.T, url, tenantID string, req *prompb.WriteRequest) int {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	hreq, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("THANOS-TENANT", tenantID)
	resp, err := http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode
}
