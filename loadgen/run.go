package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
)

// Config is a whole `weir bench` run.
type Config struct {
	Spec

	// URL is the receiver's remote-write endpoint, e.g. http://host:19291/api/v1/receive.
	URL string
	// TenantHeader carries the tenant name (THANOS-TENANT for Thanos and Weir, X-Scope-OrgID for Mimir).
	TenantHeader string
	// Headers are added to every request.
	Headers http.Header
	// Protocol is the remote-write version, "1.0" or "2.0", or ProtocolOTLP.
	Protocol string
	// Concurrency is the number of workers, each with its own connection and its own share of the
	// requests (a series is always sent by the same worker, so its samples arrive in order).
	Concurrency int
	// Rate is the target samples per second over all workers; 0 sends as fast as the receiver answers.
	Rate float64
	// Duration ends the run; 0 runs until the context is cancelled (or MaxRequests).
	Duration time.Duration
	// MaxRequests ends the run after this many requests; 0: no limit.
	MaxRequests int64
	// Timeout bounds each request.
	Timeout time.Duration
	// AckLog is the path of the ack log to write; empty: none.
	AckLog string

	// Progress receives the live progress: a line rewritten once a second when Interactive (a
	// terminal), else a log line every ProgressInterval (default 10 s). Nil: no progress.
	Progress         io.Writer
	Interactive      bool
	ProgressInterval time.Duration
	// UserAgent is sent with every request.
	UserAgent string
}

// Validate reports the first unusable setting, named as its `weir bench` flag.
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("--url is required (the receiver's remote-write endpoint, e.g. http://localhost:19291/api/v1/receive)")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url: %q is not an http:// or https:// URL", c.URL)
	}
	switch c.Protocol {
	case "1.0", "2.0", ProtocolOTLP:
	default:
		return fmt.Errorf("--protocol: %q is not a remote-write version (supported: 1.0, 2.0) or otlp", c.Protocol)
	}
	if c.TenantHeader == "" {
		return errors.New("--tenant-header is empty")
	}
	if err := c.Spec.Validate(); err != nil {
		return err
	}
	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("--concurrency: %d must be at least 1", c.Concurrency)
	case c.Rate < 0:
		return fmt.Errorf("--rate: %g must not be negative (0: as fast as possible)", c.Rate)
	case c.Duration < 0:
		return fmt.Errorf("--duration: %s must not be negative (0: until interrupted)", c.Duration)
	case c.MaxRequests < 0:
		return fmt.Errorf("--requests: %d must not be negative (0: no limit)", c.MaxRequests)
	case c.Timeout <= 0:
		return fmt.Errorf("--timeout: %s must be positive", c.Timeout)
	}
	return nil
}

// Run sends load until Duration passes, MaxRequests have been sent or ctx is cancelled, then lets the
// requests in flight finish (each within Timeout) and returns the report. Failed requests are not
// retried: they are counted, by status code or as transport errors. An error is returned only when
// the run could not start or the ack log could not be written; the report is then still returned when
// there is one.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 10 * time.Second
	}
	var ack *ackWriter
	if cfg.AckLog != "" {
		var err error
		if ack, err = createAckLog(cfg.AckLog, cfg.Spec); err != nil {
			return nil, fmt.Errorf("--ack-log: %w", err)
		}
	}

	sc := newSchema(cfg.Spec)
	batches := cfg.batches()
	workers := min(cfg.Concurrency, len(batches))
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        workers,
		MaxIdleConnsPerHost: workers,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	r := &runner{
		cfg:     cfg,
		client:  &http.Client{Transport: transport},
		ack:     ack,
		tenants: make([]string, cfg.Tenants),
		start:   time.Now(),
	}
	for i := range r.tenants {
		r.tenants[i] = TenantName(i)
	}
	if cfg.Rate > 0 {
		r.limiter = &limiter{perSample: float64(time.Second) / cfg.Rate}
	}
	runCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(ctx, r.start.Add(cfg.Duration))
		defer cancel()
	}
	runCtx, stop := context.WithCancel(runCtx)
	defer stop()
	r.stop = stop

	var wg sync.WaitGroup
	for w := range workers {
		var mine []batch
		for i := w; i < len(batches); i += workers {
			mine = append(mine, batches[i])
		}
		var enc requestEncoder = newEncoder(cfg.Spec, sc)
		switch cfg.Protocol {
		case "2.0":
			enc = newEncoderV2(cfg.Spec, sc)
		case ProtocolOTLP:
			enc = newOTLPEncoder(newEncoder(cfg.Spec, sc))
		}
		wg.Go(func() { r.work(runCtx, ctx, enc, mine) })
	}
	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(stopProgress)
	}()
	wg.Wait()
	elapsed := time.Since(r.start)
	close(stopProgress)
	<-progressDone

	rep := r.report(elapsed, workers)
	if ack != nil {
		if err := ack.close(); err != nil {
			return rep, fmt.Errorf("--ack-log: %w", err)
		}
	}
	return rep, nil
}

type runner struct {
	cfg     Config
	client  *http.Client
	ack     *ackWriter
	limiter *limiter
	tenants []string
	start   time.Time
	stop    context.CancelFunc
	issued  atomic.Int64
	stats   stats
}

// work sends the worker's batches round and round until runCtx ends. Requests are made with a context
// that outlives runCtx (but not parent), so that the ones in flight at the end are answered.
func (r *runner) work(runCtx, parent context.Context, enc requestEncoder, mine []batch) {
	reqCtx := context.WithoutCancel(parent)
	lastTS := make([]int64, len(mine))
	var body, compressed []byte
	for i := 0; ; i = (i + 1) % len(mine) {
		if runCtx.Err() != nil {
			return
		}
		b := mine[i]
		if err := r.limiter.wait(runCtx, b.count); err != nil {
			return
		}
		if r.cfg.MaxRequests > 0 && r.issued.Add(1) > r.cfg.MaxRequests {
			r.stop()
			return
		}
		now := time.Now()
		// Timestamps follow the clock, and strictly increase per series: the same series is always
		// sent by this worker, one request after the other.
		ts := max(now.UnixMilli(), lastTS[i]+1)
		lastTS[i] = ts
		churn := ChurnAt(r.cfg.Spec, now.Sub(r.start).Milliseconds())
		body = enc.appendRequest(body[:0], b, churn, ts)
		if r.cfg.Protocol == ProtocolOTLP {
			compressed = body // the OTLP encoder compresses (gzip) itself
		} else {
			compressed = snappy.Encode(compressed[:cap(compressed)], body)
		}

		ok := r.send(reqCtx, r.tenants[b.tenant], compressed, b.count)
		if ok && r.ack != nil {
			r.ack.record(r.tenants[b.tenant], b, churn, ts)
		}
	}
}

// send makes one request and counts its outcome; it reports whether the receiver acknowledged it.
func (r *runner) send(ctx context.Context, tenant string, body []byte, samples int) bool {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL, bytes.NewReader(body))
	if err != nil {
		// The URL was validated; nothing else can fail here.
		panic(err)
	}
	for k, vs := range r.cfg.Headers {
		req.Header[k] = vs
	}
	switch r.cfg.Protocol {
	case ProtocolOTLP:
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Content-Type", "application/x-protobuf")
	case "2.0":
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	default:
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	req.Header.Set("User-Agent", r.cfg.UserAgent)
	req.Header.Set(r.cfg.TenantHeader, tenant)

	st := &r.stats
	st.requests.Add(1)
	st.samplesSent.Add(int64(samples))
	st.bytesSent.Add(int64(len(body)))
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		st.latency.observe(time.Since(start))
		st.transportErrs.Add(1)
		st.requestsErr.Add(1)
		st.noteError("transport", err.Error())
		return false
	}
	var msg []byte
	if resp.StatusCode/100 != 2 {
		msg, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
	}
	// Drain (bounded) so that the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	st.latency.observe(time.Since(start))
	if resp.StatusCode/100 == 2 {
		st.requestsOK.Add(1)
		st.samplesAcked.Add(int64(samples))
		return true
	}
	code := resp.StatusCode
	if code < 0 || code >= len(st.byStatus) {
		code = 0
	}
	st.byStatus[code].Add(1)
	st.requestsErr.Add(1)
	st.noteError(strconv.Itoa(resp.StatusCode), string(bytes.TrimSpace(msg)))
	return false
}

// limiter spaces requests so that samples go out at the target rate over all workers. It does not
// catch up: time lost waiting for a slow receiver is not made up with a burst.
type limiter struct {
	mu        sync.Mutex
	next      time.Time
	perSample float64 // nanoseconds
}

func (l *limiter) wait(ctx context.Context, samples int) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(l.perSample * float64(samples)))
	l.mu.Unlock()
	d := at.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// progress writes the live progress until stop is closed, and flushes the ack log once a second.
func (r *runner) progress(stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prev, cur histSnapshot
	var prevAcked int64
	prevT := r.start
	lastLog := r.start
	w := r.cfg.Progress
	for {
		select {
		case <-stop:
			if w != nil && r.cfg.Interactive {
				fmt.Fprint(w, "\r\x1b[K")
			}
			return
		case now := <-tick.C:
			if r.ack != nil {
				_ = r.ack.flush()
			}
			if w == nil {
				continue
			}
			if !r.cfg.Interactive && now.Sub(lastLog) < r.cfg.ProgressInterval-time.Second/2 {
				continue
			}
			r.stats.latency.snapshot(&cur)
			acked := r.stats.samplesAcked.Load()
			rate := float64(acked-prevAcked) / now.Sub(prevT).Seconds()
			line := fmt.Sprintf("%6s  %s samples/s  requests ok %s err %s  p99 %s",
				now.Sub(r.start).Round(time.Second), formatCount(int64(rate)),
				formatCount(r.stats.requestsOK.Load()), formatCount(r.stats.requestsErr.Load()), formatLatency(cur.quantile(&prev, 0.99)))
			if r.cfg.Interactive {
				fmt.Fprintf(w, "\r%s\x1b[K", line)
			} else {
				fmt.Fprintf(w, "weir bench: %s\n", line)
			}
			prev, prevAcked, prevT, lastLog = cur, acked, now, now
		}
	}
}
