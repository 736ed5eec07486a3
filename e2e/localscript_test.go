package e2e

import (
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

	"github.com/weir-metrics/weir/internal/testutil"
)

// localScript is one of the README's three-node examples in deploy/local (ring.sh, gossip.sh) started
// as a user would, with WEIR pointing at the test binary, DATA in a temporary directory and every port
// shifted by offset. Node i listens on base port + 100·i + offset.
type localScript struct {
	name   string
	p      *proc
	data   string
	offset int
	client *http.Client
}

// startLocalScript runs deploy/local/<name> on ports found free for the given base ports (udp: also
// free for UDP, for gossip), with env (NAME=value) added to its environment; the script is killed at
// the end of the test if it still runs.
func startLocalScript(t *testing.T, name string, bases []int, udp bool, env ...string) *localScript {
	t.Helper()
	requireBinary(t)
	root, err := testutil.RepoRoot()
	require.NoError(t, err)
	s := &localScript{name: name, data: t.TempDir(), offset: freeScriptPorts(t, bases, udp), client: &http.Client{Timeout: 5 * time.Second}}
	logPath := filepath.Join(t.TempDir(), name+".log")
	args := append([]string{"WEIR=" + weirBinary, "DATA=" + s.data, "PORT_OFFSET=" + strconv.Itoa(s.offset)}, env...)
	s.p, err = launch(logPath, root, "env", append(args, "bash", filepath.Join(root, "deploy", "local", name))...)
	require.NoError(t, err)
	cleanupProc(t, name, logPath, func() *proc { return s.p })
	return s
}

// url is node i's address for a base port.
func (s *localScript) url(base, i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", base+i*100+s.offset)
}

// writeOne writes one sample of a series named metric (tenant team-a) through node i and returns its
// timestamp; it must be acknowledged.
func (s *localScript) writeOne(t *testing.T, i int, metric string) int64 {
	t.Helper()
	ts := baseTime()
	req := writeReq(series(lbls("__name__", metric, "job", "readme"), smp(ts, 1)))
	resp, err := post(s.client, s.url(19291, i)+"/api/v1/receive", encodeWrite(t, req), rwHeaders("THANOS-TENANT", "team-a"))
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.Code, resp.String())
	return ts
}

// stopAndCheck sends SIGTERM to the script, which stops its three nodes, and checks that each node
// stopped cleanly and holds the sample writeOne wrote (RF=3).
func (s *localScript) stopAndCheck(t *testing.T, metric string, ts int64) {
	t.Helper()
	// env execs bash in place, so the signal reaches the script.
	require.NoError(t, s.p.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, s.p.wait(60*time.Second), "%s did not stop within 60s of SIGTERM", s.name)
	for i := range 3 {
		got := readTenant(t, filepath.Join(s.data, "node"+strconv.Itoa(i)), "team-a")
		require.Equal(t, []sample{{T: ts, V: 1}}, got[key("__name__", metric, "job", "readme")], "node %d", i)
		log, err := os.ReadFile(filepath.Join(s.data, "node"+strconv.Itoa(i)+".log"))
		require.NoError(t, err)
		require.Contains(t, string(log), "msg=stopped", "node %d did not stop cleanly", i)
	}
}

// freeScriptPorts finds an offset at which every base port of the three nodes is free on loopback
// (TCP, and UDP too when udp is set).
func freeScriptPorts(t *testing.T, bases []int, udp bool) int {
	t.Helper()
	first := os.Getpid() % 50 * 200
	for k := range 12 {
		offset := 20000 + (first+k*1000)%12000
		if scriptPortsFree(bases, offset, udp) {
			return offset
		}
	}
	t.Fatal("no free port range for the script")
	return 0
}

func scriptPortsFree(bases []int, offset int, udp bool) bool {
	for i := range 3 {
		for _, base := range bases {
			addr := fmt.Sprintf("127.0.0.1:%d", base+i*100+offset)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return false
			}
			_ = ln.Close()
			if !udp {
				continue
			}
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return false
			}
			_ = pc.Close()
		}
	}
	return true
}
