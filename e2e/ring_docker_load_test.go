//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/loadgen"
)

// The load of the ring scenarios: one `weir bench` per entry node, each through a recording proxy in
// the test process that notes when every request was sent and how it ended. `weir bench` counts
// failures but not when they happened; the proxy's record gives the "5xx seconds" of issue 8 (the
// seconds of the run in which at least one write failed).

// statusProxy forwards remote write to one node and records every request's start and outcome. A
// request the node did not answer (refused, reset, timed out) is recorded as status 0 and its
// connection to the sender is closed, so that the sender sees a transport error as it would without
// the proxy.
type statusProxy struct {
	srv *httptest.Server
	tr  *http.Transport

	mu     sync.Mutex
	events []statusEvent
}

// statusEvent is one request seen by the proxy: when it was sent, how long it took and its status
// (0: no answer).
type statusEvent struct {
	at   time.Time
	took time.Duration
	code int
}

// slowRequest is the latency from which a request counts as slow in the figures: most of the
// clusters' --receive.forward-timeout (3s), which a write waits out when a replica does not answer.
const slowRequest = 2500 * time.Millisecond

// newStatusProxy starts a proxy to target (a remote-write URL); its URL has the same path.
func newStatusProxy(t *testing.T, target string) (*statusProxy, string) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &statusProxy{tr: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: u.Scheme, Host: u.Host}) },
		Transport: p.tr,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			w.(*codeWriter).code = 0
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
				return
			}
			w.WriteHeader(http.StatusBadGateway)
		},
		ErrorLog: nil,
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(cw, r)
		p.mu.Lock()
		p.events = append(p.events, statusEvent{at: at, took: time.Since(at), code: cw.code})
		p.mu.Unlock()
	}))
	t.Cleanup(p.close)
	return p, p.srv.URL + u.Path
}

func (p *statusProxy) close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
	p.tr.CloseIdleConnections()
}

// codeWriter remembers the status written through it.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (Hijack, Flush).
func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// slow counts the requests that took slowRequest or longer.
func (p *statusProxy) slow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.events {
		if e.took >= slowRequest {
			n++
		}
	}
	return n
}

// failures adds up the failed requests since origin: the distinct seconds with at least one (into
// seconds), the first and the last (first < 0: none yet), and the count by status ("transport" for
// no answer).
func (p *statusProxy) failures(origin time.Time, seconds map[int64]bool, first, last *time.Duration, byStatus map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.events {
		if e.code/100 == 2 {
			continue
		}
		at := e.at.Sub(origin)
		seconds[int64(at/time.Second)] = true
		if *first < 0 || at < *first {
			*first = at
		}
		*last = max(*last, at)
		k := fmt.Sprint(e.code)
		if e.code == 0 {
			k = "transport"
		}
		byStatus[k]++
	}
}

// dockerLoad is the load of a scenario: one bench per entry node, each with its own series.
type dockerLoad struct {
	benches []*benchRun
	proxies []*statusProxy
	start   time.Time
}

// startDockerLoad starts one `weir bench` (until stopped) per entry node, through a statusProxy, the
// total rate split evenly. Each bench sends its own series (a different label count), so that every
// series reaches the cluster through one router only, in order.
func startDockerLoad(t *testing.T, c *dockerCluster, totalRate float64) *dockerLoad {
	t.Helper()
	entries := c.entries()
	l := &dockerLoad{start: time.Now()}
	for i, e := range entries {
		p, u := newStatusProxy(t, c.remoteWrite(e))
		l.proxies = append(l.proxies, p)
		l.benches = append(l.benches, startBenchWith(t, u, benchOptions{
			rate: totalRate / float64(len(entries)), labelsPerSeries: 6 + i}))
	}
	return l
}

// waitAcked waits until every bench has at least n more requests acknowledged than now.
func (l *dockerLoad) waitAcked(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	for _, b := range l.benches {
		b.waitAcked(t, n, timeout)
	}
}

// ackLogs are the benches' ack logs, for verifyQuorumLogs.
func (l *dockerLoad) ackLogs() []string {
	logs := make([]string, len(l.benches))
	for i, b := range l.benches {
		logs[i] = b.ackLog
	}
	return logs
}

// loadFigures are the sender-side figures of a scenario, summed over its benches.
type loadFigures struct {
	requests, acked, failed int64
	byStatus                map[string]int
	failSeconds             int
	failWindow              string // first to last failure, in seconds since the load started
	slow                    int    // requests that took slowRequest or longer
	p99, maxLatency         float64
}

// stop ends every bench and sums up what the senders saw. The proxies' counts must agree with the
// benches' own.
func (l *dockerLoad) stop(t *testing.T) loadFigures {
	t.Helper()
	reps := make([]loadgen.Report, len(l.benches))
	for i, b := range l.benches {
		reps[i] = b.stop(t)
	}
	f := loadFigures{byStatus: map[string]int{}}
	seconds := map[int64]bool{}
	first, last := time.Duration(-1), time.Duration(0)
	for i, p := range l.proxies {
		r := reps[i]
		f.requests += r.RequestsSent
		f.acked += r.SamplesAcked
		n, _ := non2xx(r)
		f.failed += n
		f.p99 = max(f.p99, r.Latency.P99)
		f.maxLatency = max(f.maxLatency, r.Latency.Max)
		p.failures(l.start, seconds, &first, &last, f.byStatus)
		f.slow += p.slow()
	}
	f.failSeconds = len(seconds)
	f.failWindow = "none"
	if first >= 0 {
		f.failWindow = fmt.Sprintf("%.1f-%.1fs", first.Seconds(), last.Seconds())
	}
	total := 0
	for _, v := range f.byStatus {
		total += v
	}
	if int64(total) != f.failed {
		t.Logf("WARNING: the benches counted %d failed requests, their proxies %d %v", f.failed, total, f.byStatus)
	}
	return f
}

// String is the figures for the FIGURES log line.
func (f loadFigures) String() string {
	var parts []string
	for k, v := range f.byStatus {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	return fmt.Sprintf("requests %d, acknowledged samples %d, non-2xx requests %d [%s], 5xx seconds %d (failures %s), latency p99 %.3fs max %.3fs, requests over %s %d",
		f.requests, f.acked, f.failed, strings.Join(parts, " "), f.failSeconds, f.failWindow, f.p99, f.maxLatency, slowRequest, f.slow)
}

// failedBetween counts the requests sent between from and to that failed, by status ("transport" for
// no answer), over every bench.
func (l *dockerLoad) failedBetween(from, to time.Time) map[string]int {
	by := map[string]int{}
	for _, p := range l.proxies {
		p.mu.Lock()
		for _, e := range p.events {
			if e.code/100 == 2 || e.at.Before(from) || e.at.After(to) {
				continue
			}
			k := fmt.Sprint(e.code)
			if e.code == 0 {
				k = "transport"
			}
			by[k]++
		}
		p.mu.Unlock()
	}
	return by
}
