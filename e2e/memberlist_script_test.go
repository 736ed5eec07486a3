package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLocalGossipScript runs the README's memberlist example (deploy/local/gossip.sh) as a user
// would, on shifted ports: the three nodes find each other by gossip and agree on one ring of three
// ingesters, a write through one node is acknowledged and lands on all three (RF=3), and SIGTERM to
// the script stops them cleanly.
func TestLocalGossipScript(t *testing.T) {
	requireBinary(t)
	root, err := repoRoot()
	require.NoError(t, err)
	data := t.TempDir()
	offset := freeGossipPortOffset(t)
	logPath := filepath.Join(t.TempDir(), "gossip.log")
	p, err := launch(logPath, root, "env", "WEIR="+weirBinary, "DATA="+data, "PORT_OFFSET="+strconv.Itoa(offset),
		"bash", filepath.Join(root, "deploy", "local", "gossip.sh"))
	require.NoError(t, err)
	cleanupProc(t, "gossip.sh", logPath, func() *proc { return p })

	client := &http.Client{Timeout: 5 * time.Second}
	ops := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", 10902+i*100+offset) }
	var want []string
	for i := range 3 {
		want = append(want, fmt.Sprintf("127.0.0.1:%d", 10901+i*100+offset))
	}
	waitFor(t, 60*time.Second, "three nodes on one ring of three", func() error {
		var first string
		for i := range 3 {
			code, body, err := httpGet(client, ops(i)+"/api/v1/status/ring")
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("node %d: status %d", i, code)
			}
			var st memberlistStatus
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				return fmt.Errorf("node %d: %w: %s", i, err, body)
			}
			if got := slices.Sorted(slices.Values(st.endpoints())); !slices.Equal(got, want) {
				return fmt.Errorf("node %d: ring %v", i, got)
			}
			if i == 0 {
				first = st.ConfigHash
			} else if st.ConfigHash != first {
				return fmt.Errorf("node %d: config hash %s, node 0 %s", i, st.ConfigHash, first)
			}
		}
		return nil
	})

	ts := baseTime()
	req := writeReq(series(lbls("__name__", "gossip_script", "job", "readme"), smp(ts, 1)))
	resp, err := post(client, fmt.Sprintf("http://127.0.0.1:%d/api/v1/receive", 19391+offset), encodeWrite(t, req), rwHeaders("THANOS-TENANT", "team-a"))
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.Code, resp.String())

	// env execs bash in place, so the signal reaches the script, which stops its three nodes.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, p.wait(60*time.Second), "gossip.sh did not stop within 60s of SIGTERM")
	for i := range 3 {
		dir := filepath.Join(data, "node"+strconv.Itoa(i))
		got := readTenant(t, dir, "team-a")
		require.Equal(t, []sample{{T: ts, V: 1}}, got[key("__name__", "gossip_script", "job", "readme")], "node %d", i)
		log, err := os.ReadFile(filepath.Join(data, "node"+strconv.Itoa(i)+".log"))
		require.NoError(t, err)
		require.Contains(t, string(log), "msg=stopped", "node %d did not stop cleanly", i)
	}
}

// freeGossipPortOffset finds an offset at which the twelve ports of gossip.sh are free on loopback
// (TCP; the gossip ports are UDP too).
func freeGossipPortOffset(t *testing.T) int {
	t.Helper()
	first := os.Getpid() % 50 * 200
	for k := range 12 {
		offset := 20000 + (first+k*1000)%12000
		free := true
		for i := 0; i < 3 && free; i++ {
			for _, base := range []int{19291, 10901, 10902, 7946} {
				addr := fmt.Sprintf("127.0.0.1:%d", base+i*100+offset)
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					free = false
					break
				}
				_ = ln.Close()
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					free = false
					break
				}
				_ = pc.Close()
			}
		}
		if free {
			return offset
		}
	}
	t.Fatal("no free port range for gossip.sh")
	return 0
}
