package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/weir-metrics/weir/internal/reload"
	"github.com/weir-metrics/weir/tlsreload"
	"github.com/weir-metrics/weir/write"
)

var (
	// ErrEndpointDown is wrapped by the errors of forwards refused without a network round trip
	// because the endpoint failed recently (see PeerConfig.DownPeriod).
	ErrEndpointDown = errors.New("endpoint is down")
	// ErrOverloaded is wrapped by the errors of forwards refused because the bytes in flight to the
	// endpoint, or in total, are at their bound.
	ErrOverloaded = errors.New("too many bytes in flight")
)

// Defaults of PeerConfig.
const (
	DefaultDownPeriod                  = time.Second
	DefaultRetryBackoff                = 50 * time.Millisecond
	DefaultMaxAttempts                 = 3
	DefaultMaxInflightBytesPerEndpoint = 64 << 20
	DefaultMaxInflightBytes            = 256 << 20
	DefaultMaxMessageBytes             = 64 << 20
)

// Compression settings of PeerConfig.Compression (Thanos' --receive.grpc-compression values).
const (
	CompressionSnappy = "snappy"
	CompressionNone   = "none"
)

// Keepalive pings of the node-to-node connections: a router pings an idle or busy connection every
// keepaliveTime and drops it when no answer comes within keepaliveTimeout.
const (
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
)

// protocolReprobe is how long a router writes with protocol v1 to an endpoint that answered the v2
// method Unimplemented before one write tries v2 again (see codec.go). Short enough that v2 is back
// soon after an upgrade that no router saw as the endpoint being down; long enough that the failed
// calls to an ingester that is not upgraded cost nothing measurable.
const protocolReprobe = 5 * time.Minute

// PeerConfig configures a PeerWriter. Zero values take the defaults above.
type PeerConfig struct {
	// Timeout caps every Forward, retries included, below the caller's deadline
	// (zero: DefaultForwardTimeout).
	Timeout time.Duration
	// DownPeriod is how long an endpoint that just failed (unreachable, or no answer in time) is
	// refused without a round trip; after it one probe goes through, and the endpoint is up again
	// when the probe succeeds. It also caps the reconnection backoff of the endpoint's connection.
	DownPeriod time.Duration
	// RetryBackoff is the wait before the first retry of a transient failure (gRPC Unavailable);
	// it doubles with every retry. A retry is only made when the deadline leaves room for it.
	RetryBackoff time.Duration
	// MaxAttempts bounds the tries of one Forward.
	MaxAttempts int
	// MaxInflightBytesPerEndpoint and MaxInflightBytes bound the payload bytes being forwarded, to
	// one endpoint and in total: a slow endpoint cannot pile up a router's memory. A forward over a
	// bound fails at once (ErrOverloaded, ClassUnavailable); a single payload over a bound is let
	// through when nothing else is in flight.
	MaxInflightBytesPerEndpoint int64
	MaxInflightBytes            int64
	// MaxMessageBytes bounds a message sent or received.
	MaxMessageBytes int
	// TLS is the client side of the connection (--remote-write.client-tls-*): the client certificate
	// is reloaded when its files change.
	TLS tlsreload.ClientConfig
	// Compression of the payloads sent to ingesters: CompressionSnappy (the default when empty)
	// sends about 5× fewer bytes; CompressionNone sends the protobuf as it is (frame version 2),
	// which ingesters decode in place. On loopback neither was measurably cheaper in CPU (moving
	// five times the bytes through gRPC cost what compressing them did; docs/benchmarks.md), so
	// snappy is the default. Ingesters accept both.
	Compression string
	// Tracing carries the trace context of every forward to the ingester and records a client span
	// for it (otelgrpc), with the tracer provider of package tracing.
	Tracing bool
	// Protocol is the newest node-to-node protocol used: ProtocolV2 (the default when empty) falls
	// back to v1 for ingesters that do not serve v2; ProtocolV1 writes with v1 only, as the previous
	// release did — for rollout tests, not for production (see codec.go).
	Protocol string
}

func (c PeerConfig) withDefaults() PeerConfig {
	if c.Compression == "" {
		c.Compression = CompressionSnappy
	}
	set := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultForwardTimeout
	}
	if c.DownPeriod == 0 {
		c.DownPeriod = DefaultDownPeriod
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	set(&c.MaxInflightBytesPerEndpoint, DefaultMaxInflightBytesPerEndpoint)
	set(&c.MaxInflightBytes, DefaultMaxInflightBytes)
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return c
}

// Validate reports the first configuration error.
func (c PeerConfig) Validate() error {
	if c.Timeout < 0 || c.DownPeriod < 0 || c.RetryBackoff < 0 || c.MaxAttempts < 0 ||
		c.MaxInflightBytesPerEndpoint < 0 || c.MaxInflightBytes < 0 || c.MaxMessageBytes < 0 {
		return errors.New("peer settings must not be negative")
	}
	switch c.Compression {
	case "", CompressionSnappy, CompressionNone:
	default:
		return fmt.Errorf("--receive.grpc-compression: %q is neither %s nor %s", c.Compression, CompressionSnappy, CompressionNone)
	}
	if err := validProtocol(c.Protocol); err != nil {
		return err
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("--remote-write.client-tls-*: %w", err)
	}
	return nil
}

// PeerWriter forwards shares of requests to ingesters over gRPC (the Forwarder of a Router). It keeps
// one long-lived connection per endpoint, created on first use; it retries transient failures within
// the deadline, refuses endpoints that just failed without a round trip (and probes them back), and
// bounds the bytes in flight. Safe for concurrent use.
type PeerWriter struct {
	cfg      PeerConfig
	dialOpts []grpc.DialOption
	logger   *slog.Logger
	m        *peerMetrics
	now      func() time.Time
	inflight atomic.Int64

	mu     sync.RWMutex
	peers  map[string]*peer
	closed bool
}

// peer is one endpoint: its connection, bytes in flight and health.
type peer struct {
	addr     string
	cc       *grpc.ClientConn
	inflight atomic.Int64

	// legacyUntil is zero while the endpoint is written to with protocol v2. Else it answered the v2
	// method Unimplemented (an ingester of the previous release) and is written to with v1 until
	// this time (unix nanoseconds); then one write tries v2 again.
	legacyUntil atomic.Int64

	mu        sync.Mutex
	down      bool
	downUntil time.Time
	probing   bool
}

type peerMetrics struct {
	inflightBytes prometheus.Gauge
	retries       *prometheus.CounterVec
	down          *prometheus.GaugeVec
	legacy        *prometheus.GaugeVec
}

// NewPeerWriter returns a PeerWriter; it connects to nothing before the first Forward.
func NewPeerWriter(cfg PeerConfig, logger *slog.Logger, reg prometheus.Registerer) (*PeerWriter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil || reg == nil {
		return nil, errors.New("peer writer needs a logger and a registerer")
	}
	cfg = cfg.withDefaults()
	tlsCfg, err := tlsreload.NewClient(cfg.TLS, reload.Options{Name: "grpc-client-tls", Logger: logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	f := promauto.With(reg)
	p := &PeerWriter{
		cfg: cfg,
		dialOpts: []grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(
				grpc.ForceCodecV2(newIngestCodec()),
				grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes),
				grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes),
			),
			// Reconnect promptly once an endpoint is back: gRPC's default backoff grows to 2 minutes.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.DownPeriod},
				MinConnectTimeout: cfg.Timeout,
			}),
			// Find a peer that vanished without closing its connections (host down, partition) before
			// requests time out on it; ingest servers permit these pings (IngestConfig.ServerOptions).
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
		},
		logger: logger,
		now:    time.Now,
		peers:  map[string]*peer{},
		m: &peerMetrics{
			inflightBytes: f.NewGauge(prometheus.GaugeOpts{
				Name: "weir_forward_inflight_bytes",
				Help: "Payload bytes being forwarded to ingesters.",
			}),
			retries: f.NewCounterVec(prometheus.CounterOpts{
				Name: "weir_forward_retries_total",
				Help: "Forwards retried after a transient failure, by endpoint.",
			}, []string{"endpoint"}),
			down: f.NewGaugeVec(prometheus.GaugeOpts{
				Name: "weir_forward_endpoint_down",
				Help: "1 while an endpoint is refused without a round trip because it failed recently.",
			}, []string{"endpoint"}),
			legacy: f.NewGaugeVec(prometheus.GaugeOpts{
				Name: "weir_forward_endpoint_legacy_protocol",
				Help: "1 while writes to an endpoint use the node-to-node protocol v1 because it does not serve v2 (a node of the previous release).",
			}, []string{"endpoint"}),
		},
	}
	if cfg.Tracing {
		p.dialOpts = append(p.dialOpts, grpc.WithStatsHandler(otelgrpc.NewClientHandler()))
	}
	return p, nil
}

// Forward implements Forwarder: the request carries the hashes, and the payload goes compressed or
// not as PeerConfig.Compression says.
func (p *PeerWriter) Forward(ctx context.Context, endpoint string, s Share) (write.Stats, error) {
	return p.send(ctx, endpoint, forwardRequest{tenant: s.Tenant, payload: s.Payload, compressed: s.Compressed, hashes: s.Hashes, extras: s.Extras})
}

// send forwards req, compressing or decompressing its payload first as the configuration asks.
func (p *PeerWriter) send(ctx context.Context, endpoint string, req forwardRequest) (write.Stats, error) {
	pc, err := p.peer(endpoint)
	if err != nil {
		return write.Stats{}, err
	}
	probe, ok := pc.admit(p.now())
	if !ok {
		return write.Stats{}, &Error{Class: ClassUnavailable, Err: fmt.Errorf("forward to %s: %w", endpoint, ErrEndpointDown)}
	}
	switch {
	case !req.compressed && p.cfg.Compression == CompressionSnappy:
		buf := compress(req.payload)
		defer putBuffer(buf)
		req.payload, req.compressed = *buf, true
	case req.compressed && p.cfg.Compression == CompressionNone:
		buf, err := decompress(req.payload)
		if err != nil {
			pc.settle(probe)
			return write.Stats{}, &Error{Class: ClassInternal, Err: fmt.Errorf("forward to %s: %w", endpoint, err)}
		}
		defer putBuffer(buf)
		req.payload, req.compressed = *buf, false
	}
	n := int64(len(req.payload))
	if err := p.acquire(pc, n); err != nil {
		pc.settle(probe)
		return write.Stats{}, err
	}
	defer p.release(pc, n)

	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	var stats write.Stats
	var opts []grpc.CallOption
	if probe {
		// The connection may still be waiting out its reconnection backoff: reconnect now, and let the
		// probe wait for the connection (within its deadline) instead of failing at once.
		pc.cc.ResetConnectBackoff()
		opts = append(opts, grpc.WaitForReady(true))
	}
	wait := p.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		stats, err = p.invoke(ctx, pc, &req, opts)
		if err == nil || attempt >= p.cfg.MaxAttempts || !retryable(err) || !p.pause(ctx, wait) {
			break
		}
		p.m.retries.WithLabelValues(endpoint).Inc()
		wait *= 2
	}
	switch healthOf(err) {
	case healthUp:
		if pc.up() {
			p.m.down.WithLabelValues(endpoint).Set(0)
			p.logger.Info("endpoint is up again", "endpoint", endpoint)
			// It may have been restarted with a newer release.
			pc.reprobe()
		}
	case healthDown:
		if pc.markDown(p.now().Add(p.cfg.DownPeriod)) {
			p.m.down.WithLabelValues(endpoint).Set(1)
			p.logger.Warn("endpoint is down", "endpoint", endpoint, "for", p.cfg.DownPeriod, "err", err)
		}
	default:
		pc.settle(probe)
	}
	if err != nil {
		return write.Stats{}, forwardError(endpoint, err)
	}
	return stats, nil
}

// invoke makes one call of the write req to the endpoint: with protocol v2, or with v1 when the
// endpoint does not serve v2 (see codec.go). A v2 call answered by gRPC's own Unimplemented is sent
// again with v1 at once: it reached no storage.
func (p *PeerWriter) invoke(ctx context.Context, pc *peer, req *forwardRequest, opts []grpc.CallOption) (write.Stats, error) {
	if p.cfg.Protocol != ProtocolV1 && pc.tryV2(p.now) {
		var reply writeReply
		err := pc.cc.Invoke(ctx, ingestWriteMethod, req, &reply, opts...)
		if !missingMethod(err) {
			if (err == nil || answeredByIngester(err)) && pc.speaksV2() {
				p.m.legacy.WithLabelValues(pc.addr).Set(0)
				p.logger.Info("endpoint serves node-to-node protocol v2 now", "endpoint", pc.addr)
			}
			if err == nil && len(req.extras) > 0 && !reply.extrasStored {
				return write.Stats{}, fmt.Errorf("forward to %s: %w", pc.addr, errExtrasNotStored)
			}
			return reply.stats, err
		}
		if pc.fallBack(p.now().Add(protocolReprobe)) {
			p.m.legacy.WithLabelValues(pc.addr).Set(1)
			p.logger.Info("endpoint does not serve node-to-node protocol v2 (a node of the previous release): writing to it with v1",
				"endpoint", pc.addr, "retry_v2_after", protocolReprobe, "err", err)
		}
	}
	// COMPATIBILITY PATH (legacy.go): delete with protocol v1.
	if len(req.extras) > 0 { // v1 cannot carry them
		return write.Stats{}, fmt.Errorf("forward to %s: %w", pc.addr, errExtrasNotStored)
	}
	var reply legacyReply
	err := pc.cc.Invoke(ctx, legacyWriteMethod, (*legacyRequest)(req), &reply, opts...)
	return reply.stats, err
}

// compress returns block-format snappy of payload in a pooled buffer (put it back with putBuffer).
func compress(payload []byte) *[]byte {
	buf := getBuffer()
	if n := snappy.MaxEncodedLen(len(payload)); cap(*buf) < n {
		*buf = make([]byte, n)
	}
	*buf = snappy.Encode((*buf)[:cap(*buf)], payload)
	return buf
}

// decompress returns the block-format snappy payload decoded, in a pooled buffer (put it back with
// putBuffer).
func decompress(payload []byte) (*[]byte, error) {
	n, err := snappy.DecodedLen(payload)
	if err != nil {
		return nil, fmt.Errorf("decompress payload: %w", err)
	}
	buf := getBuffer()
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	out, err := snappy.Decode((*buf)[:n], payload)
	if err != nil {
		putBuffer(buf)
		return nil, fmt.Errorf("decompress payload: %w", err)
	}
	*buf = out
	return buf, nil
}

// pause waits d before a retry, if the deadline of ctx leaves room for the wait and a try after it.
func (p *PeerWriter) pause(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (p *PeerWriter) acquire(pc *peer, n int64) error {
	if v := pc.inflight.Add(n); v > p.cfg.MaxInflightBytesPerEndpoint && v != n {
		pc.inflight.Add(-n)
		return &Error{Class: ClassUnavailable, Err: fmt.Errorf("forward to %s: %w to the endpoint (bound %d bytes)", pc.addr, ErrOverloaded, p.cfg.MaxInflightBytesPerEndpoint)}
	}
	if v := p.inflight.Add(n); v > p.cfg.MaxInflightBytes && v != n {
		p.inflight.Add(-n)
		pc.inflight.Add(-n)
		return &Error{Class: ClassUnavailable, Err: fmt.Errorf("forward to %s: %w in total (bound %d bytes)", pc.addr, ErrOverloaded, p.cfg.MaxInflightBytes)}
	}
	p.m.inflightBytes.Add(float64(n))
	return nil
}

func (p *PeerWriter) release(pc *peer, n int64) {
	pc.inflight.Add(-n)
	p.inflight.Add(-n)
	p.m.inflightBytes.Sub(float64(n))
}

// peer returns the endpoint's state, connecting lazily.
func (p *PeerWriter) peer(endpoint string) (*peer, error) {
	p.mu.RLock()
	pc, closed := p.peers[endpoint], p.closed
	p.mu.RUnlock()
	if pc != nil {
		return pc, nil
	}
	if closed {
		return nil, errorf(ClassUnavailable, "forward to %s: peer writer closed", endpoint)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errorf(ClassUnavailable, "forward to %s: peer writer closed", endpoint)
	}
	if pc := p.peers[endpoint]; pc != nil {
		return pc, nil
	}
	// passthrough: the address is dialled as written (resolved by the dialer on every connection),
	// as grpc.Dial did; a pod that comes back with a new IP is found on the next reconnection.
	cc, err := grpc.NewClient("passthrough:///"+endpoint, p.dialOpts...)
	if err != nil {
		return nil, errorf(ClassInternal, "forward to %s: %v", endpoint, err)
	}
	pc = &peer{addr: endpoint, cc: cc}
	p.peers[endpoint] = pc
	// Up until a forward says otherwise: a peer never down is 0 on /metrics, not absent, so that
	// dashboards and alerts over the gauge see every peer.
	p.m.down.WithLabelValues(endpoint).Set(0)
	return pc, nil
}

// Prune closes the connections of the endpoints for which keep returns false (those that left every
// ring) and returns how many it closed. Forwards in flight to them fail.
func (p *PeerWriter) Prune(keep func(endpoint string) bool) int {
	p.mu.Lock()
	var gone []*peer
	for addr, pc := range p.peers {
		if !keep(addr) {
			gone = append(gone, pc)
			delete(p.peers, addr)
		}
	}
	p.mu.Unlock()
	for _, pc := range gone {
		_ = pc.cc.Close()
		p.m.down.DeleteLabelValues(pc.addr)
		p.m.legacy.DeleteLabelValues(pc.addr)
	}
	return len(gone)
}

// Close closes every connection; later forwards fail with ClassUnavailable.
func (p *PeerWriter) Close() error {
	p.mu.Lock()
	p.closed = true
	peers := p.peers
	p.peers = map[string]*peer{}
	p.mu.Unlock()
	var errs []error
	for _, pc := range peers {
		errs = append(errs, pc.cc.Close())
	}
	return errors.Join(errs...)
}

// admit says whether a forward may go to the endpoint now, and whether it is the probe of an
// endpoint that is down.
func (pc *peer) admit(now time.Time) (probe, ok bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	switch {
	case !pc.down:
		return false, true
	case now.Before(pc.downUntil), pc.probing:
		return false, false
	}
	pc.probing = true
	return true, true
}

// up records an answer from the endpoint; it reports whether the endpoint was down.
func (pc *peer) up() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	was := pc.down
	pc.down, pc.probing = false, false
	return was
}

// markDown records a failure of the endpoint; it reports whether the endpoint was up.
func (pc *peer) markDown(until time.Time) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	was := pc.down
	pc.down, pc.downUntil, pc.probing = true, until, false
	return !was
}

// settle ends a probe that told nothing about the endpoint, so that another may go.
func (pc *peer) settle(probe bool) {
	if !probe {
		return
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.probing = false
}

// tryV2 says whether a write now uses protocol v2: always while the endpoint speaks it, and, once
// the time to try again has come, for one write (the others keep using v1 meanwhile).
func (pc *peer) tryV2(now func() time.Time) bool {
	until := pc.legacyUntil.Load()
	if until == 0 { // the common case, without reading the clock
		return true
	}
	t := now()
	if t.UnixNano() < until {
		return false
	}
	return pc.legacyUntil.CompareAndSwap(until, t.Add(protocolReprobe).UnixNano())
}

// fallBack records that the endpoint does not serve v2, to try again at until; it reports whether
// the endpoint was taken to serve it.
func (pc *peer) fallBack(until time.Time) bool {
	return pc.legacyUntil.Swap(until.UnixNano()) == 0
}

// speaksV2 records that the endpoint serves v2; it reports whether it was written to with v1.
func (pc *peer) speaksV2() bool {
	// Load first: this runs after every write, and a store would contend for the cache line.
	return pc.legacyUntil.Load() != 0 && pc.legacyUntil.Swap(0) != 0
}

// reprobe makes the next write try v2, if the endpoint is written to with v1.
func (pc *peer) reprobe() {
	if until := pc.legacyUntil.Load(); until > 1 {
		pc.legacyUntil.CompareAndSwap(until, 1)
	}
}
