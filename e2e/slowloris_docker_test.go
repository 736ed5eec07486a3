//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Slow-loris against a container: many connections that send a request one byte a second, either never
// finishing the headers or never finishing the body. The remote-write server cuts the first kind after
// its ReadHeaderTimeout (10 s, cmd/weir/serve.go) and the second after --remote-write.server-read-timeout
// (started at readBodyLimit here); meanwhile the node must stay ready and keep acknowledging writes.

const (
	slowHeaderConns = 50
	slowBodyConns   = 20
	slowObserve     = 25 * time.Second // how long the slow connections are kept trickling at most
	readHeaderLimit = 10 * time.Second // the remote-write server's ReadHeaderTimeout
	readBodyLimit   = 15 * time.Second // --remote-write.server-read-timeout of the hostile-input container
)

// slowResult is what happened to one slow connection.
type slowResult struct {
	closed bool          // the server closed it (else the test did, after slowObserve)
	after  time.Duration // since the first byte was sent
	err    error         // dialling or the first write failed
}

// slowLoris runs both kinds of slow connections in parallel, checks the node meanwhile, and returns a
// summary for the FIGURES line.
func slowLoris(t *testing.T, ct *singleContainer, client *http.Client) string {
	t.Helper()
	addr := ct.rwAddr(t)
	headerPrefix := "POST /api/v1/receive HTTP/1.1\r\nHost: weir\r\nX-Slow: "
	bodyPrefix := "POST /api/v1/receive HTTP/1.1\r\nHost: weir\r\nContent-Encoding: snappy\r\n" +
		"Content-Type: application/x-protobuf\r\nContent-Length: 1000000\r\n\r\n"

	stop := make(chan struct{})
	var wg sync.WaitGroup
	headers := make([]slowResult, slowHeaderConns)
	bodies := make([]slowResult, slowBodyConns)
	for i := range headers {
		wg.Go(func() { headers[i] = slowConn(addr, headerPrefix, stop) })
	}
	for i := range bodies {
		wg.Go(func() { bodies[i] = slowConn(addr, bodyPrefix, stop) })
	}
	timer := time.AfterFunc(slowObserve, func() { close(stop) })
	defer timer.Stop()

	// While the connections hang, the node answers its probes and acknowledges a normal write.
	code, body, err := httpGet(client, ct.ops+"/-/ready")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	resp, err := post(client, ct.rw, encodeWrite(t, writeReq(series(lbls("__name__", "hostile_during_slowloris"), smp(t0, 1)))), rwHeaders("THANOS-TENANT", "hostile-slow"))
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.Code, "a write while slow-loris connections hang: %s", resp)
	wg.Wait()

	hMin, hMax, hOpen := slowStats(t, headers)
	bMin, bMax, bOpen := slowStats(t, bodies)
	require.Zero(t, hOpen, "connections that never finish their headers must be cut by the read-header timeout")
	require.LessOrEqual(t, hMax, readHeaderLimit+5*time.Second, "slow headers cut late")
	require.GreaterOrEqual(t, hMin, readHeaderLimit-time.Second, "slow headers cut before the read-header timeout")
	summary := fmt.Sprintf("slow-loris: %d connections trickling headers cut by the server after %.1f–%.1f s; ", slowHeaderConns, hMin.Seconds(), hMax.Seconds())
	require.Zero(t, bOpen, "connections that never finish their body must be cut by the read timeout")
	require.LessOrEqual(t, bMax, readBodyLimit+5*time.Second, "slow bodies cut late")
	require.GreaterOrEqual(t, bMin, readBodyLimit-time.Second, "slow bodies cut before the read timeout")
	summary += fmt.Sprintf("%d connections trickling a body cut after %.1f–%.1f s", slowBodyConns, bMin.Seconds(), bMax.Seconds())
	return summary
}

// slowStats returns the shortest and longest time until the server closed a connection, and how many
// it left open.
func slowStats(t *testing.T, rs []slowResult) (lo, hi time.Duration, open int) {
	t.Helper()
	lo = time.Duration(1<<63 - 1)
	for _, r := range rs {
		require.NoError(t, r.err)
		if !r.closed {
			open++
			continue
		}
		lo, hi = min(lo, r.after), max(hi, r.after)
	}
	if open == len(rs) {
		lo = 0
	}
	return lo, hi, open
}

// slowConn sends prefix, then one byte a second, until the server closes the connection or stop is
// closed.
func slowConn(addr, prefix string, stop <-chan struct{}) slowResult {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return slowResult{err: err}
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte(prefix)); err != nil {
		return slowResult{err: err}
	}
	closed := make(chan struct{})
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil { // EOF or reset: the server hung up (or we did)
				close(closed)
				return
			}
		}
	}()
	tick := time.NewTicker(time.Second) // the attacker's pace
	defer tick.Stop()
	for {
		select {
		case <-closed:
			return slowResult{closed: true, after: time.Since(start)}
		case <-stop:
			_ = c.Close()
			<-closed
			return slowResult{}
		case <-tick.C:
			if _, err := c.Write([]byte{'a'}); err != nil {
				<-closed
				return slowResult{closed: true, after: time.Since(start)}
			}
		}
	}
}
