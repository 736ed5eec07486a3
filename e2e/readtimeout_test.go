package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSlowBodyCutByReadTimeout: a client that sends its headers and then trickles the body (a
// slow-loris, or a stalled link) holds a connection and a request buffer; --remote-write.server-read-timeout
// bounds the whole upload, after which the server answers 503 (retry) and closes the connection.
// Meanwhile, and afterwards, normal writes are acknowledged.
func TestSlowBodyCutByReadTimeout(t *testing.T) {
	const readTimeout = 2 * time.Second
	n := startWeir(t, t.TempDir(), "--remote-write.server-read-timeout="+readTimeout.String())

	c, err := net.DialTimeout("tcp", n.RemoteWriteAddr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	start := time.Now()
	_, err = io.WriteString(c, "POST /api/v1/receive HTTP/1.1\r\nHost: weir\r\nContent-Encoding: snappy\r\n"+
		"Content-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\nabc")
	require.NoError(t, err)

	// The server must hang up on its own; the test's deadline only keeps a failure from hanging.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	answer, err := io.ReadAll(c)
	cutAfter := time.Since(start)
	require.NoError(t, err, "the server did not close the slow connection (answer so far: %q)", answer)
	require.GreaterOrEqual(t, cutAfter, readTimeout-100*time.Millisecond, "cut before the read timeout")
	t.Logf("slow body cut after %s (read timeout %s), answer: %.80q", cutAfter.Round(time.Millisecond), readTimeout, answer)
	// A stalled upload is worth a retry: 503, not a 4xx that would make the sender drop the batch.
	require.True(t, strings.HasPrefix(string(answer), "HTTP/1.1 503 "), "answer to a cut upload: %.200q", answer)

	resp := n.Write(t, writeReq(series(lbls("__name__", "after_slow_body"), smp(baseTime(), 1))))
	require.Equal(t, http.StatusNoContent, resp.Code, resp.String())
}
