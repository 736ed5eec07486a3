package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/otel/attribute"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/write"
)

// Share is one endpoint's part of a request.
type Share struct {
	Tenant string
	// Payload is a protobuf prometheus.WriteRequest holding the endpoint's series, or block-format
	// snappy of it when Compressed (the client's own body, when the share is the whole request:
	// SeriesFrames.wholeBody). It is valid only until Forward returns.
	Payload    []byte
	Compressed bool
	// Hashes is nil, or the hashring.SeriesHash of each series of Payload, in order, which spare the
	// ingester hashing the labels again for its series-reference cache.
	Hashes []uint64
	// Extras is nil, or the ingestpb.WriteRequest extras fields of every series of Payload, in order
	// (extrascodec.go): what Remote Write 2.0 and OTLP series carry beyond 1.0. A Forwarder must
	// fail, retryably, a write whose endpoint did not store them.
	Extras []byte
}

// Forwarder delivers one endpoint's share of a request to that endpoint. PeerWriter implements it
// over gRPC; tests use fakes.
type Forwarder interface {
	// Forward writes s on the ingester at endpoint and returns what it wrote, with Rejection.Series
	// indexing the payload's series. It sends the payload compressed or not as its wire needs,
	// whichever way it comes.
	//
	// A nil error means every point not listed in the rejections is in the endpoint's WAL. An error
	// means nothing may have been written and carries a Class (see ClassOf): ClassUnavailable for
	// transient failures (unavailable, timeout, endpoint known down, over the in-flight bound),
	// ClassInvalid when the endpoint refused the write as the client's fault. Forward returns by the
	// deadline of ctx. It is called concurrently.
	Forward(ctx context.Context, endpoint string, s Share) (write.Stats, error)
}

// RingFunc returns the ring that places tenantID's series. It is called once per request.
type RingFunc func(tenantID string) (hashring.Ring, error)

// ErrNoRing is returned by the RingFunc of RingsFrom before a hashrings file was loaded.
var ErrNoRing = errors.New("no hashring loaded yet")

// RingsFrom returns a RingFunc that resolves tenants on src's current snapshot (a
// *hashring.FileSource, for one).
func RingsFrom(src interface{ Current() *hashring.Snapshot }) RingFunc {
	return func(tenantID string) (hashring.Ring, error) {
		snap := src.Current()
		if snap == nil {
			return nil, ErrNoRing
		}
		ring, _, err := snap.Rings.For(tenantID)
		return ring, err
	}
}

// DefaultForwardTimeout is the default of RouterConfig.ForwardTimeout (Thanos'
// --receive-forward-timeout default).
const DefaultForwardTimeout = 5 * time.Second

// RouterConfig configures a Router.
type RouterConfig struct {
	// ReplicationFactor is the number of endpoints every series is written to
	// (--receive.replication-factor); a write succeeds when Quorum(ReplicationFactor) of them ack.
	ReplicationFactor int
	// LocalEndpoint is the address of this node in the hashrings (--receive.local-endpoint): its share
	// goes to the local Storage without a network hop. Empty: a router only, every share is forwarded.
	LocalEndpoint string
	// ForwardTimeout caps every write to an endpoint, local or remote, below the client's own deadline.
	// Forwards still running when the client is answered go on in the background until it expires.
	ForwardTimeout time.Duration
	// Wait says which replicas the answer waits for (--receive.replica-wait); the zero value is
	// WaitAll.
	Wait ReplicaWait
}

// ReplicaWait is the router's policy for the replicas of a write beyond its quorum. The quorum alone
// decides whether a write succeeded (quorum.go); the policy only decides when the client hears it.
type ReplicaWait uint8

const (
	// WaitAll answers once every replica answered, one failed, or the forward timeout expired. A
	// sender sends its next request only after the answer, so no replica ever gets request k+1 while
	// it still appends request k; a lagging replica would otherwise refuse k's samples as out of
	// order (or too old) and stay short of them for good, unseen. A slow replica delays every
	// answer, up to the forward timeout.
	WaitAll ReplicaWait = iota
	// WaitQuorum answers as soon as every series is decided; the remaining replicas are written in
	// the background (until the forward timeout). A slow replica costs no latency, but it may then
	// receive a sender's requests out of order and refuse some samples for good: those samples are
	// on fewer replicas than RF (still on a quorum).
	WaitQuorum
)

// ParseReplicaWait parses the --receive.replica-wait values: all or quorum.
func ParseReplicaWait(s string) (ReplicaWait, error) {
	switch s {
	case "all":
		return WaitAll, nil
	case "quorum":
		return WaitQuorum, nil
	}
	return 0, fmt.Errorf("%q is neither all nor quorum", s)
}

// Validate reports the first configuration error, naming its flag.
func (c RouterConfig) Validate() error {
	switch {
	case c.ReplicationFactor < 1 || c.ReplicationFactor > maxReplicationFactor:
		return fmt.Errorf("--receive.replication-factor: %d must be between 1 and %d", c.ReplicationFactor, maxReplicationFactor)
	case c.ForwardTimeout <= 0:
		return fmt.Errorf("--receive.forward-timeout: %s must be positive", c.ForwardTimeout)
	case c.Wait > WaitQuorum:
		return fmt.Errorf("replica wait policy %d unknown", c.Wait)
	}
	return nil
}

// Router places every series of a request on its ReplicationFactor owners in the tenant's hashring,
// writes each owner's share in parallel (the local share through the local Storage, the others
// through a Forwarder) and answers when every series is decided by the quorum rules of quorum.go.
// It implements Storage, so a Handler writes through it unchanged.
//
// Per request: one ring lookup; per series one SeriesHash and one Owners; per remote endpoint one
// goroutine, which copies its series' fields into its payload — each series' original bytes when
// the batch has them (Batch.Frames, frames.go), else a marshalling made once per series — and
// hands it to the Forwarder; the local share is written in the calling goroutine.
type Router struct {
	cfg    RouterConfig
	ring   RingFunc
	local  TenantStorage // nil without a LocalEndpoint
	peers  Forwarder
	logger *slog.Logger
	m      *routerMetrics
	now    func() time.Time

	mu     sync.Mutex // guards closed and the zero crossings of wg
	closed bool
	wg     sync.WaitGroup // writes and background forwards in flight
}

// NewRouter returns a router. local is the tenant storage of this node (nil for a router without
// LocalEndpoint); peers forwards to the other endpoints. Metrics are registered on reg.
func NewRouter(cfg RouterConfig, ring RingFunc, local TenantStorage, peers Forwarder, logger *slog.Logger, reg prometheus.Registerer) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case ring == nil || peers == nil || logger == nil || reg == nil:
		return nil, errors.New("router needs a ring, a forwarder, a logger and a registerer")
	case cfg.LocalEndpoint != "" && local == nil:
		return nil, fmt.Errorf("local endpoint %s given without local storage", cfg.LocalEndpoint)
	}
	return &Router{cfg: cfg, ring: ring, local: local, peers: peers, logger: logger, m: newRouterMetrics(reg), now: time.Now}, nil
}

// Close makes later writes fail with ClassUnavailable and waits for the writes and background
// forwards in flight, each bounded by the forward timeout. Call it after the remote-write server
// stopped and before the local storage is closed.
func (r *Router) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *Router) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	return true
}

// Write implements Storage: it writes series for tenantID on their owners and returns once the
// replicas the wait policy (RouterConfig.Wait) asks for answered, the request's context is done, or
// the forward timeout expired — whichever comes first. Series are decided by quorum (quorum.go). The
// local share, if any, is written by the calling goroutine before the wait, whatever the policy.
//
// The answer:
//   - a series without a quorum for a server-side reason, or undecided when ctx or the forward
//     timeout ended, or no usable ring (none loaded, no hashring for the tenant, fewer endpoints or
//     zones than the replication factor) → a ClassUnavailable error (503): the sender retries;
//   - else a series refused as invalid by replicas (rule 3) → a ClassInvalid error (400);
//   - else a nil error, and the stats (Rejection.Series indexing series) list the rejections of the
//     conflict series: per series, kind and reason, the largest count among the replicas that
//     answered before the router did (different replicas may refuse different points: the largest
//     is what a sender must consider lost). Rejected exemplars of written series are listed too;
//     they never fail a request. Appended counts every point of the written and conflict series
//     once (not once per replica), minus the rejections listed.
//
// The series that have their original encoding in b.Frames are forwarded as those bytes instead of
// being marshalled again; b.Hashes is ignored (the router hashes to place the series).
//
// Write reads b only until it returns: remote shares are encoded before Write returns, and the local
// share is written by the calling goroutine, so the caller may reuse the series' memory (the
// handler's pooled request) while background forwards go on.
func (r *Router) Write(ctx context.Context, b Batch) (write.Stats, error) {
	ctx, span := tracer.Start(ctx, "route")
	if span.IsRecording() {
		span.SetAttributes(attribute.String("tenant", b.Tenant), attribute.Int("series", len(b.Series)), attribute.Int("replication_factor", r.cfg.ReplicationFactor))
	}
	stats, err := r.write(ctx, b)
	endSpan(span, err)
	return stats, err
}

// write is Write, within its span.
func (r *Router) write(ctx context.Context, b Batch) (write.Stats, error) {
	tenantID, series, frames := b.Tenant, b.Series, b.Frames
	if b.Extras != nil && len(b.Extras) != len(series) {
		return write.Stats{}, fmt.Errorf("write of tenant %s: %d series extras for %d series", tenantID, len(b.Extras), len(series))
	}
	if len(series) == 0 {
		return write.Stats{}, nil
	}
	ring, err := r.ring(tenantID)
	if err != nil {
		r.m.quorumFailures.WithLabelValues(quorumNoRing).Inc()
		return write.Stats{}, &Error{Class: ClassUnavailable, Err: fmt.Errorf("no hashring for tenant %s: %w", tenantID, err)}
	}
	if !r.enter() {
		r.m.quorumFailures.WithLabelValues(quorumShutdown).Inc()
		return write.Stats{}, errorf(ClassUnavailable, "router is shutting down")
	}
	defer r.wg.Done()

	eps := ring.Endpoints()
	local := -1
	if r.cfg.LocalEndpoint != "" {
		local = slices.IndexFunc(eps, func(e hashring.Endpoint) bool { return e.Address == r.cfg.LocalEndpoint })
	}
	f := getFanout(len(series), len(eps), r.cfg.ReplicationFactor)
	f.extras = b.Extras
	defer f.release()
	// Forwards read the request's original bytes until they have encoded their payloads: wait for
	// that before returning, whatever the answer (the caller reuses the memory afterwards).
	defer f.encoded.Wait()
	fl := getFlight(len(eps))
	defer fl.release()
	if err := f.split(ring, tenantID, series, frames, r.cfg.ReplicationFactor, local); err != nil {
		r.m.quorumFailures.WithLabelValues(quorumRing).Inc()
		return write.Stats{}, &Error{Class: ClassUnavailable, Err: fmt.Errorf("placing the series of tenant %s: %w", tenantID, err)}
	}

	start := r.now()
	deadline := start.Add(r.cfg.ForwardTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// Remote forwards outlive the request when they are not needed for its answer: their context
	// keeps its deadline but not its cancellation.
	var expired <-chan struct{}
	started := 0
	for d := range eps {
		if d == local || len(f.groups[d]) == 0 {
			continue
		}
		if fl.ctx == nil {
			fl.ctx, fl.cancel = context.WithDeadline(context.WithoutCancel(ctx), deadline)
			expired = fl.ctx.Done()
		}
		f.refs.Add(1)
		f.encoded.Add(1)
		fl.refs.Add(1)
		r.wg.Add(1)
		started++
		go r.forward(f, fl, d, eps[d].Address, tenantID)
	}

	if local >= 0 && len(f.groups[local]) > 0 {
		f.apply(r.writeLocal(ctx, deadline, f, local, tenantID, series))
	}
	// What is left is waiting for the network: give back the write slot the handler took (limiter.go).
	releaseSlot(ctx)

	// WaitAll: every replica, so that none is left appending request k when request k+1 reaches it
	// (see WaitAll); replicas known to be down fail fast, and a slow one holds the answer at most
	// until the forward timeout. WaitQuorum: until every series is decided.
	var waitErr error
	pending := started
	waitAll := r.cfg.Wait == WaitAll
wait:
	for (waitAll && pending > 0) || !f.tracker.done() {
		select {
		case res := <-fl.results:
			pending--
			f.apply(res)
		case <-ctx.Done():
			waitErr = ctx.Err()
			break wait
		case <-expired:
			waitErr = fl.ctx.Err()
			break wait
		}
	}
	return r.answer(f, tenantID, series, waitErr)
}

// writeLocal writes the local share in the calling goroutine, under the request's context capped by
// the forward timeout.
func (r *Router) writeLocal(ctx context.Context, deadline time.Time, f *fanout, d int, tenantID string, series []prompb.TimeSeries) destResult {
	idx := f.groups[d]
	sub := f.local[:0]
	for _, s := range idx {
		sub = append(sub, series[s])
	}
	f.local = sub
	lctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	start := time.Now()
	r.m.inflight.WithLabelValues(r.cfg.LocalEndpoint).Inc()
	f.localHashes = f.appendGroupHashes(f.localHashes[:0], d)
	var extras []write.SeriesExtra
	if f.extras != nil {
		extras = f.localExtras[:0]
		for _, s := range idx {
			extras = append(extras, f.extras[s])
		}
		f.localExtras = extras
	}
	stats, err := r.local.Write(lctx, tenantID, sub, extras, f.localHashes)
	r.m.inflight.WithLabelValues(r.cfg.LocalEndpoint).Dec()
	clear(sub) // do not keep the caller's series reachable from the pool
	clear(extras)
	if err == nil {
		err = checkStats(&stats, len(idx))
	}
	r.observe(r.cfg.LocalEndpoint, len(idx), time.Since(start), err)
	return destResult{dest: d, stats: stats, err: err}
}

// forward sends one remote share; it may outlive the Write that started it. It lets go of the
// request's state (f) as soon as its payload is encoded, so that a forward that waits for a slow
// endpoint holds no more than its payload (which the PeerWriter bounds) and fl.
func (r *Router) forward(f *fanout, fl *flight, d int, endpoint, tenantID string) {
	defer r.wg.Done()
	defer fl.release()
	start := time.Now()
	inflight := r.m.inflight.WithLabelValues(endpoint)
	inflight.Inc()
	n := len(f.groups[d])
	payload, compressed := f.payload(d)
	hashes := getHashes()
	*hashes = f.appendGroupHashes(*hashes, d)
	var extras *[]byte
	if f.extras != nil {
		extras = getBuffer()
		*extras = appendExtras(*extras, f.extras, f.groups[d])
	}
	f.encoded.Done()
	f.release()
	share := Share{Tenant: tenantID, Payload: *payload, Compressed: compressed, Hashes: *hashes}
	if extras != nil {
		share.Extras = *extras
	}
	stats, err := r.peers.Forward(fl.ctx, endpoint, share)
	putHashes(hashes)
	if extras != nil {
		putBuffer(extras)
	}
	putBuffer(payload)
	inflight.Dec()
	if err == nil {
		err = checkStats(&stats, n)
	}
	r.observe(endpoint, n, time.Since(start), err)
	if err != nil {
		r.logger.Debug("forward failed", "endpoint", endpoint, "tenant", tenantID, "series", n, "err", err)
	}
	fl.results <- destResult{dest: d, stats: stats, err: err} // buffered: never blocks
}

// checkStats refuses stats that do not fit a write of n series.
func checkStats(s *write.Stats, n int) error {
	for _, rj := range s.Rejected {
		if rj.Series < 0 || rj.Series >= n || rj.Kind >= write.NumKinds || rj.Count < 0 {
			return errorf(ClassInternal, "malformed write stats: rejection of series %d (kind %d, count %d) in a write of %d series", rj.Series, rj.Kind, rj.Count, n)
		}
	}
	return nil
}

// answer turns the verdicts into the result of Write (see there).
func (r *Router) answer(f *fanout, tenantID string, series []prompb.TimeSeries, waitErr error) (write.Stats, error) {
	t := &f.tracker
	rf, q := r.cfg.ReplicationFactor, t.q
	if n := t.counts[verdictUnavailable] + t.counts[verdictPending]; n > 0 {
		cause, reason := f.failure, quorumUnavailable
		if f.timedOut {
			reason = quorumTimeout
		}
		if t.counts[verdictPending] > 0 && waitErr != nil {
			cause, reason = waitErr, waitFailure(waitErr)
		}
		r.m.quorumFailures.WithLabelValues(reason).Inc()
		// With the error, the points that did reach a quorum: the answer's *-Written headers count them.
		return f.stats(series), &Error{Class: ClassUnavailable, Err: fmt.Errorf(
			"write quorum (%d of %d replicas) not reached for %d of %d series of tenant %s: %w", q, rf, n, len(series), tenantID, cause)}
	}
	if n := t.counts[verdictInvalid]; n > 0 {
		r.m.quorumFailures.WithLabelValues(quorumInvalid).Inc()
		return f.stats(series), &Error{Class: ClassInvalid, Err: fmt.Errorf(
			"%d of %d series of tenant %s refused by their replicas: %w", n, len(series), tenantID, f.invalid)}
	}
	return f.stats(series), nil
}

// routerMetrics are the router's metrics.
type routerMetrics struct {
	requests       *prometheus.CounterVec
	series         *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	quorumFailures *prometheus.CounterVec
	inflight       *prometheus.GaugeVec
}

func newRouterMetrics(reg prometheus.Registerer) *routerMetrics {
	f := promauto.With(reg)
	m := &routerMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_forward_requests_total",
			Help: "Writes of a request's share to one endpoint (the local one included), by endpoint and result (success, invalid, unavailable, timeout, down, overloaded, error).",
		}, []string{"endpoint", "result"}),
		series: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_forward_series_total",
			Help: "Series written to one endpoint, by endpoint and result of the write that carried them.",
		}, []string{"endpoint", "result"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weir_forward_duration_seconds",
			Help:    "Time to write a request's share to one endpoint, encoding and retries included.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		quorumFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_quorum_failures_total",
			Help: "Requests that did not reach a write quorum for every series, by reason (unavailable, invalid, timeout, canceled, no_ring, ring, shutdown).",
		}, []string{"reason"}),
		inflight: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_forward_inflight_requests",
			Help: "Writes to one endpoint in flight, including those still running after the client was answered.",
		}, []string{"endpoint"}),
	}
	for _, reason := range quorumFailureReasons {
		m.quorumFailures.WithLabelValues(reason)
	}
	return m
}

func (r *Router) observe(endpoint string, series int, d time.Duration, err error) {
	result := forwardResult(err)
	r.m.requests.WithLabelValues(endpoint, result).Inc()
	r.m.series.WithLabelValues(endpoint, result).Add(float64(series))
	r.m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// destResult is the answer of one endpoint.
type destResult struct {
	dest  int
	stats write.Stats
	err   error
}
