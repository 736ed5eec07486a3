//go:build unix

package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The ports LoopbackAddrs hands out: below the kernel's ephemeral range (Linux' default starts at
// 32768), from which any outgoing connection may take a port as its local one while nobody listens
// on it — between a node's restarts, say.
const (
	portsLow  = 20000
	portsHigh = 32000
)

// ports is this process' share of the range: the ports it holds, each locked until the process exits.
var ports struct {
	mu    sync.Mutex
	next  int        // where the search for the next port starts
	locks []*os.File // held open: closing one would release its lock
}

// LoopbackAddrs returns n distinct 127.0.0.1:port addresses for listeners whose addresses a test must
// know before it starts the processes that bind them (a hashrings file lists them, peers join them)
// and that keep them across restarts. A port is handed out at most once per test process, and is
// reserved for the rest of the process by an exclusive lock on a file that every test process using
// this package takes, so concurrent `go test` runs never share one either. A port is free for TCP and
// UDP (gossip uses both) when it is handed out; nothing but a process that binds it by number can
// take it afterwards (see portsLow).
//
// Processes that can bind port 0 and report what they bound need none of this.
func LoopbackAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs, err := reserve(n)
	if err != nil {
		t.Fatalf("reserving %d loopback ports: %v", n, err)
	}
	return addrs
}

func reserve(n int) ([]string, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	high := min(portsHigh, ephemeralLow())
	if high-portsLow < 1000 {
		return nil, fmt.Errorf("the ephemeral port range starts at %d, leaving too few ports in [%d, %d)", high, portsLow, portsHigh)
	}
	dir := filepath.Join(os.TempDir(), "weir-test-ports-"+strconv.Itoa(os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if ports.next == 0 {
		// Concurrent test processes start their searches far apart, so they seldom contend for locks.
		ports.next = portsLow + rand.IntN(high-portsLow)
	}
	addrs := make([]string, 0, n)
	for tried := 0; len(addrs) < n; tried++ {
		if tried == high-portsLow {
			return nil, fmt.Errorf("no free port left in [%d, %d)", portsLow, high)
		}
		port := ports.next
		ports.next++
		if ports.next == high {
			ports.next = portsLow
		}
		lock, ok := lockPort(dir, port)
		if !ok {
			continue
		}
		if !free(port) {
			_ = lock.Close()
			continue
		}
		ports.locks = append(ports.locks, lock)
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	return addrs, nil
}

// lockPort takes the lock of port, which another test process holds while it may use the port.
func lockPort(dir string, port int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, false
	}
	return f, true
}

// free reports whether nobody listens on port, by TCP or UDP, on loopback.
func free(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	_ = pc.Close()
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux; elsewhere the IANA range).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 49152
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 49152
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 49152
	}
	return low
}
