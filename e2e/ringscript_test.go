package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLocalRingScript runs the README's three-node example (deploy/local/ring.sh, `make run-ring`) as
// a user would, on shifted ports: all three nodes become ready and agree on the ring, a write through
// one node is acknowledged by a quorum and lands on all three, and SIGTERM to the script stops them
// cleanly.
func TestLocalRingScript(t *testing.T) {
	requireBinary(t)
	root, err := repoRoot()
	require.NoError(t, err)
	data := t.TempDir()
	offset := freePortOffset(t)
	logPath := filepath.Join(t.TempDir(), "ring.log")
	p, err := launch(logPath, root, "env", "WEIR="+weirBinary, "DATA="+data, "PORT_OFFSET="+strconv.Itoa(offset),
		"bash", filepath.Join(root, "deploy", "local", "ring.sh"))
	require.NoError(t, err)
	cleanupProc(t, "ring.sh", logPath, func() *proc { return p })

	client := &http.Client{Timeout: 5 * time.Second}
	var hashes [3]string
	for i := range 3 {
		ops := fmt.Sprintf("http://127.0.0.1:%d", 10902+i*100+offset)
		waitFor(t, 60*time.Second, "node "+strconv.Itoa(i)+" ready", func() error {
			code, _, err := httpGet(client, ops+"/-/ready")
			if err != nil {
				return err
			}
			if code != 200 {
				return fmt.Errorf("status %d", code)
			}
			return nil
		})
		_, body, err := httpGet(client, ops+"/api/v1/status/ring")
		require.NoError(t, err)
		var st struct {
			ConfigHash string `json:"config_hash"`
			Quorum     int    `json:"quorum"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &st), body)
		require.Equal(t, 2, st.Quorum)
		hashes[i] = st.ConfigHash
	}
	require.NotEmpty(t, hashes[0])
	require.Equal(t, []string{hashes[0], hashes[0]}, hashes[1:], "every node follows the same ring")

	ts := baseTime()
	req := writeReq(series(lbls("__name__", "ring_script", "job", "readme"), smp(ts, 1)))
	resp, err := post(client, fmt.Sprintf("http://127.0.0.1:%d/api/v1/receive", 19291+offset), encodeWrite(t, req), rwHeaders("THANOS-TENANT", "team-a"))
	require.NoError(t, err)
	require.Equal(t, 204, resp.Code, resp.String())

	// env execs bash in place, so the signal reaches the script, which stops its three nodes.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, p.wait(60*time.Second), "ring.sh did not stop within 60s of SIGTERM")
	for i := range 3 {
		got := readTenant(t, filepath.Join(data, "node"+strconv.Itoa(i)), "team-a")
		require.Equal(t, []sample{{T: ts, V: 1}}, got[key("__name__", "ring_script", "job", "readme")], "node %d", i)
	}
}

// freePortOffset finds an offset at which the nine ports of ring.sh are free on loopback.
func freePortOffset(t *testing.T) int {
	t.Helper()
	for offset := 20000 + os.Getpid()%50*200; offset < 40000; offset += 1000 {
		free := true
		for i := range 3 {
			for _, base := range []int{19291, 10901, 10902} {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i*100+offset))
				if err != nil {
					free = false
					break
				}
				ln.Close()
			}
		}
		if free {
			return offset
		}
	}
	t.Fatal("no free port range for ring.sh")
	return 0
}
