//go:build unix

package testutil

import (
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLoopbackAddrs: concurrent callers never get the same port, every port is below the ephemeral
// range and bindable, and another process (here: a second lock on the same file) cannot reserve it.
func TestLoopbackAddrs(t *testing.T) {
	got := make([][]string, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			addrs, err := reserve(5)
			if err == nil {
				got[i] = addrs
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, addrs := range got {
		require.Len(t, addrs, 5)
		for _, a := range addrs {
			require.False(t, seen[a], "%s handed out twice", a)
			seen[a] = true
		}
	}
	for a := range seen {
		_, p, err := net.SplitHostPort(a)
		require.NoError(t, err)
		port, err := strconv.Atoi(p)
		require.NoError(t, err)
		require.True(t, port >= portsLow && port < min(portsHigh, ephemeralLow()), "port %d", port)
		ln, err := net.Listen("tcp", a)
		require.NoError(t, err)
		require.NoError(t, ln.Close())
	}

	// The lock of a handed-out port is held: flock locks belong to open files, so a second open of
	// the same file (as another process would make) cannot take it.
	ports.mu.Lock()
	name := ports.locks[0].Name()
	ports.mu.Unlock()
	port, err := strconv.Atoi(filepath.Base(name))
	require.NoError(t, err)
	_, ok := lockPort(filepath.Dir(name), port)
	require.False(t, ok, "the lock of port %d was taken twice", port)
	require.Len(t, LoopbackAddrs(t, 1), 1)
}
