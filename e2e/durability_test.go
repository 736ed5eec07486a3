package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestCrashRecovery: one node, four tenants written concurrently (one sequential sender per tenant,
// 100 series per request, one sample per series per request). Once at least 200 requests were
// acknowledged the node is SIGKILLed mid-stream; it is restarted on the same directory, replays its
// WALs before turning ready (weir_startup_tenants says it found the four tenants), accepts newer
// samples, and after a clean stop every acknowledged sample is on disk with its exact value — and
// nothing that was never sent.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startWeir(t, dir)
	tenants := []string{"crash-0", "crash-1", "crash-2", "crash-3"}

	l := startLoad(n, tenants, 150)
	waitFor(t, 60*time.Second, "200 acknowledged requests", func() error {
		if l.stopped() {
			return nil // an error or the end of the load: checked below
		}
		if acked := l.ackedTotal.Load(); acked < 200 {
			return fmt.Errorf("%d acknowledged", acked)
		}
		return nil
	})
	require.NoError(t, l.firstError())
	n.Kill()
	l.wait()
	require.NoError(t, l.firstError())
	require.Equal(t, -1, n.proc.exitCode(), "weir should have died of SIGKILL")
	var acked int
	for _, s := range l.senders {
		acked += s.acked
	}
	t.Logf("killed after %d acknowledged requests (%d samples)", acked, acked*l.seriesPerRequest)
	require.GreaterOrEqual(t, acked, 200)

	n.Restart()
	for _, name := range []string{"weir_startup_tenants", "weir_startup_tenants_opened"} {
		v, ok := n.Metric(t, name)
		require.True(t, ok, name)
		require.Equal(t, float64(len(tenants)), v, name)
	}
	// After the replay the node takes newer samples for every tenant.
	for _, s := range l.senders {
		k := s.acked + 1 // past the request whose fate the kill left open
		r := n.Write(t, l.request(s, k), "THANOS-TENANT", s.tenant)
		require.Equal(t, http.StatusNoContent, r.Code, "%s after restart: %s", s.tenant, r)
	}
	n.Stop()

	require.Equal(t, tenants, tenantDirs(t, dir))
	for _, s := range l.senders {
		l.verify(t, readTenant(t, dir, s.tenant), s, true, s.acked+1)
	}
}

// TestGracefulShutdown: one node, three tenants written concurrently; SIGTERM arrives while requests
// are in flight. The node exits 0 and logs its stop; on disk is exactly what was acknowledged (204),
// with its exact values: requests cut off by the shutdown (503, or a transport error) wrote nothing.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startWeir(t, dir)
	tenants := []string{"grace-0", "grace-1", "grace-2"}

	l := startLoad(n, tenants, 1000)
	waitFor(t, 60*time.Second, "100 acknowledged requests", func() error {
		if l.stopped() {
			return nil // an error or the end of the load: checked below
		}
		if acked := l.ackedTotal.Load(); acked < 100 {
			return fmt.Errorf("%d acknowledged", acked)
		}
		return nil
	})
	require.NoError(t, l.firstError())
	n.Stop() // SIGTERM, exit code 0
	l.wait()
	require.NoError(t, l.firstError())
	require.Contains(t, n.Log(), "stopped", "weir logs its clean stop")

	require.Equal(t, tenants, tenantDirs(t, dir))
	for _, s := range l.senders {
		t.Logf("%s: %d acknowledged, stopped on: %s %v", s.tenant, s.acked, s.last, s.err)
		require.Less(t, s.acked, 1000, "the load should still have been running at SIGTERM")
		// A request that reached a handler is finished and answered before the node stops; a request
		// that got a transport error (connection refused, or a keep-alive connection closed while idle:
		// EOF, reset) never reached one. So what is stored is exactly what was acknowledged.
		l.verify(t, readTenant(t, dir, s.tenant), s, false)
	}
}

// ---------------------------------------------------------------------------------------------------
// Load generator.

// outcome of a sender's last request.
type outcome string

const (
	outcomeDone           outcome = "all requests acknowledged"
	outcomeTransportError outcome = "transport error"
	outcomeUnavailable    outcome = "503"
)

// load sends, per tenant, requests k = 0, 1, … one after the other; request k holds one sample per
// series at t0+k seconds with value = tenant index·1e7 + k·1000 + series index, so that every stored
// value says where it came from.
type load struct {
	t0               int64
	seriesPerRequest int
	senders          []*sender
	ackedTotal       atomic.Int64
	wg               sync.WaitGroup
	done             chan struct{} // closed when every sender stopped
	mu               sync.Mutex
	err              error // first unexpected answer
}

type sender struct {
	tenant string
	index  int
	// Written by the sender goroutine, read after load.wait.
	acked int     // requests 0…acked-1 were answered 204
	last  outcome // why the sender stopped
	err   error   // the transport error, if that was why
}

// startLoad starts one sender per tenant, each sending up to maxRequests requests. A sender stops at
// its first transport error or 503 (the node is going away); any other answer but 204 is an error.
func startLoad(n *weirNode, tenants []string, maxRequests int) *load {
	l := &load{t0: baseTime(), seriesPerRequest: 100, done: make(chan struct{})}
	url := n.RemoteWriteURL
	for i, name := range tenants {
		s := &sender{tenant: name, index: i, last: outcomeDone}
		l.senders = append(l.senders, s)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for k := range maxRequests {
				b, err := l.request(s, k).Marshal()
				if err != nil {
					l.fail(err)
					return
				}
				r, err := post(n.client, url, bytes.NewReader(snappy.Encode(nil, b)), rwHeaders("THANOS-TENANT", s.tenant))
				switch {
				case err != nil:
					s.last, s.err = outcomeTransportError, err
					return
				case r.Code == http.StatusServiceUnavailable:
					s.last = outcomeUnavailable
					return
				case r.Code != http.StatusNoContent:
					l.fail(fmt.Errorf("%s request %d: %s", s.tenant, k, r))
					return
				}
				s.acked = k + 1
				l.ackedTotal.Add(1)
			}
		}()
	}
	go func() {
		l.wg.Wait()
		close(l.done)
	}()
	return l
}

func (l *load) stopped() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

func (l *load) firstError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *load) wait() { <-l.done }

func (l *load) seriesKey(i int) string {
	return key("__name__", "e2e_load", "series", fmt.Sprintf("%03d", i))
}

func (l *load) point(s *sender, k, i int) sample {
	return sample{T: l.t0 + int64(k)*1000, V: float64(s.index)*1e7 + float64(k)*1000 + float64(i)}
}

func (l *load) request(s *sender, k int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, l.seriesPerRequest)}
	for i := range l.seriesPerRequest {
		p := l.point(s, k, i)
		req.Timeseries[i] = series(lbls("__name__", "e2e_load", "series", fmt.Sprintf("%03d", i)), smp(p.T, p.V))
	}
	return req
}

// verify checks a tenant's stored series: every acknowledged request's sample in every series, in
// order and exact; the request after the last acknowledged one only if its outcome is open (all or
// part of it may have been committed); the requests in extra (sent later and acknowledged); nothing
// else.
func (l *load) verify(t testing.TB, got map[string][]sample, s *sender, openOutcome bool, extra ...int) {
	t.Helper()
	require.Len(t, got, l.seriesPerRequest, "series of %s", s.tenant)
	for i := range l.seriesPerRequest {
		k := l.seriesKey(i)
		var want []sample
		for j := range s.acked {
			want = append(want, l.point(s, j, i))
		}
		pts := got[k]
		if openOutcome && len(pts) > len(want) && pts[len(want)] == l.point(s, s.acked, i) {
			want = append(want, l.point(s, s.acked, i))
		}
		for _, j := range extra {
			want = append(want, l.point(s, j, i))
		}
		require.Equal(t, want, pts, "tenant %s, series %s: %d requests acknowledged", s.tenant, k, s.acked)
	}
}
