package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// runToExit runs weir with args and returns its exit code and stderr. It must exit on its own within
// 30 s; the process group is killed if not.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	requireBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, weirBinary, args...)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "weir %v did not exit within 30 s; stderr:\n%s", args, stderr.String())
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err)
	}
	t.Logf("weir %s → exit %d\nstderr: %s", strings.Join(args, " "), cmd.ProcessState.ExitCode(), firstLines(stderr.String(), 3))
	return cmd.ProcessState.ExitCode(), stderr.String()
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n")
}

// TestStartupUsageErrors: weir started with one bad flag value (and otherwise valid, free loopback
// addresses) exits with code 2 before opening anything, and its stderr names the flag at fault.
func TestStartupUsageErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		arg  string
		flag string // must appear in stderr
	}{
		{arg: "--tsdb.retention=abc", flag: "tsdb.retention"},
		{arg: "--label=foo", flag: "label"},
		{arg: `--label=foo="bar`, flag: "label"},
		{arg: "--log.level=loud", flag: "log.level"},
		{arg: "--log.format=xml", flag: "log.format"},
		{arg: "--remote-write.max-body-size=0", flag: "remote-write.max-body-size"},
		{arg: "--shutdown.timeout=0s", flag: "shutdown.timeout"},
		{arg: "--no-such-flag", flag: "no-such-flag"},
		{arg: "--receive.default-tenant-id=../x", flag: "receive.default-tenant-id"},
		{arg: "--tsdb.retention=1h", flag: "tsdb.retention"},
		{arg: "--receive.tenant-label-name=a-b", flag: "receive.tenant-label-name"},
		{arg: "--tsdb.open-concurrency=0", flag: "tsdb.open-concurrency"},
		{arg: "--tsdb.head-compaction-concurrency=-1", flag: "tsdb.head-compaction-concurrency"},
		{arg: "--tsdb.max-exemplars=-1", flag: "tsdb.max-exemplars"},
		{arg: `--label=tenant_id="x"`, flag: "receive.tenant-label-name"},
		{arg: "--receive.tenant-header=", flag: "receive.tenant-header"},
		{arg: "--receive.limits.max-series-per-request=-1", flag: "receive.limits.max-series-per-request"},
		{arg: "--tsdb.too-far-in-future.time-window=-1m", flag: "tsdb.too-far-in-future.time-window"},
	}
	for _, tc := range cases {
		t.Run(tc.arg, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(t.TempDir(), "data")
			addrs := testutil.LoopbackAddrs(t, 3) // never bound: the error comes first
			code, stderr := runToExit(t, "receive", "--tsdb.path="+dataDir, "--remote-write.address="+addrs[0],
				"--http-address="+addrs[1], "--grpc-address="+addrs[2], tc.arg)
			require.Equal(t, 2, code, "exit code for %s; stderr:\n%s", tc.arg, stderr)
			require.Contains(t, stderr, tc.flag, "stderr should name the flag")
			require.NoDirExists(t, dataDir, "a usage error must not create the data directory")
		})
	}
}

// TestStartupPortInUse: a port taken by another listener makes weir exit with code 1 and name the
// address, for the ops port and for the remote-write port alike.
func TestStartupPortInUse(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	addr := taken.Addr().String()

	for _, flag := range []string{"--http-address", "--remote-write.address"} {
		t.Run(flag, func(t *testing.T) {
			addrs := testutil.LoopbackAddrs(t, 3)
			args := map[string]string{"--remote-write.address": addrs[0], "--http-address": addrs[1]}
			args[flag] = addr
			code, stderr := runToExit(t, "receive", "--tsdb.path="+filepath.Join(t.TempDir(), "data"),
				"--remote-write.address="+args["--remote-write.address"], "--http-address="+args["--http-address"],
				"--grpc-address="+addrs[2])
			require.Equal(t, 1, code, "exit code; stderr:\n%s", stderr)
			require.Contains(t, stderr, addr, "stderr should name the address")
			require.Contains(t, stderr, strings.TrimPrefix(flag, "--"), "stderr should name the flag")
			require.Contains(t, stderr, "address already in use")
		})
	}
}

// TestStartupSameAddress: the remote-write and ops listeners on one address is a usage error (exit 2).
func TestStartupSameAddress(t *testing.T) {
	t.Parallel()
	addrs := testutil.LoopbackAddrs(t, 2)
	code, stderr := runToExit(t, "receive", "--tsdb.path="+filepath.Join(t.TempDir(), "data"),
		"--remote-write.address="+addrs[0], "--http-address="+addrs[0], "--grpc-address="+addrs[1])
	require.Equal(t, 2, code, "stderr:\n%s", stderr)
	require.Contains(t, stderr, "remote-write.address")
	require.Contains(t, stderr, "http-address")
}
