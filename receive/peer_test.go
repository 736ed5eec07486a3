package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/tlsreload"
	"github.com/weir-metrics/weir/write"
)

// ingestServer is an ingest service on loopback.
type ingestServer struct {
	addr  string
	reg   *prometheus.Registry
	ready atomic.Bool
	stop  func()
}

// startIngest serves the ingest service over storage on lis (nil: a new loopback port).
func startIngest(t *testing.T, storage TenantStorage, cfg IngestConfig, lis net.Listener) *ingestServer {
	t.Helper()
	return startLimitedIngest(t, storage, cfg, nil, lis)
}

// startLimitedIngest is startIngest with the write slots of lim.
func startLimitedIngest(t *testing.T, storage TenantStorage, cfg IngestConfig, lim *Limiter, lis net.Listener) *ingestServer {
	t.Helper()
	if lis == nil {
		var err error
		lis, err = net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
	}
	s := &ingestServer{addr: lis.Addr().String(), reg: prometheus.NewRegistry()}
	s.ready.Store(true)
	opts, err := cfg.ServerOptions(nil, nil)
	require.NoError(t, err)
	srv := grpc.NewServer(opts...)
	is, err := NewIngestServer(cfg, storage, lim, s.ready.Load, slog.New(slog.DiscardHandler), s.reg)
	require.NoError(t, err)
	is.Register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			srv.Stop()
			<-done
		})
	}
	t.Cleanup(s.stop)
	return s
}

// testPeerConfig is fast to retry and to probe.
func testPeerConfig() PeerConfig {
	return PeerConfig{Timeout: 5 * time.Second, RetryBackoff: time.Millisecond, DownPeriod: time.Minute}
}

func newTestPeerWriter(t *testing.T, cfg PeerConfig) (*PeerWriter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := NewPeerWriter(cfg, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p, reg
}

// payloadOf encodes series as a remote-write body (snappy protobuf).
func payloadOf(t testing.TB, series []prompb.TimeSeries) []byte {
	t.Helper()
	return encodeWR(t, &prompb.WriteRequest{Timeseries: series})
}

// forwardPayload encodes series as a router hands them to a Forwarder (protobuf).
func forwardPayload(t testing.TB, series []prompb.TimeSeries) []byte {
	t.Helper()
	return marshalWR(t, &prompb.WriteRequest{Timeseries: series})
}

// fakeClock is a settable clock.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) now() time.Time                     { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) advance(d time.Duration)            { c.offset.Add(int64(d)) }
func (p *PeerWriter) useClock(c *fakeClock) *PeerWriter { p.now = c.now; return p }

// deadAddr returns a loopback address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return addr
}

// TestGRPCEndToEnd: handler → router → gRPC → ingest servers (and the local node): every series is
// on exactly its owners, with identical samples, and only there.
func TestGRPCEndToEnd(t *testing.T) {
	const rf = 3
	local := newFakeNode("", modeOK)
	nodes := []*fakeNode{local}
	eps := []hashring.Endpoint{{Address: "127.0.0.1:1"}} // the local endpoint: never dialled
	local.addr = eps[0].Address
	for range 3 {
		n := newFakeNode("", modeOK)
		n.addr = startIngest(t, n, IngestConfig{}, nil).addr
		nodes = append(nodes, n)
		eps = append(eps, hashring.Endpoint{Address: n.addr})
	}
	ring, err := hashring.NewKetama(eps, hashring.DefaultKetamaPoints, rf)
	require.NoError(t, err)
	peers, _ := newTestPeerWriter(t, testPeerConfig())
	reg := prometheus.NewRegistry()
	router, err := NewRouter(RouterConfig{ReplicationFactor: rf, LocalEndpoint: local.addr, ForwardTimeout: 5 * time.Second},
		func(string) (hashring.Ring, error) { return ring, nil }, local, peers, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	defer router.Close()
	h, _ := newTestHandler(t, testConfig(), router, alwaysReady)

	series := testSeries(100, 3)
	for i := range series {
		if i%4 == 0 {
			series[i].Histograms = histogramsAt(4000)
		}
	}
	r := newPost(payloadOf(t, series), nil)
	r.Header.Set(tenant.DefaultHeader, "team-b")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	router.Close()

	where := map[string][]string{}
	stored := map[string]prompb.TimeSeries{}
	for _, n := range nodes {
		for _, ts := range n.series() {
			k := seriesKey(ts)
			where[k] = append(where[k], n.addr)
			if prev, ok := stored[k]; ok {
				require.Equal(t, prev, ts, "replicas differ")
			}
			stored[k] = ts
		}
		n.mu.Lock()
		for _, id := range n.tenants {
			require.Equal(t, "team-b", id)
		}
		n.mu.Unlock()
	}
	require.Len(t, where, len(series))
	for _, ts := range series {
		k := seriesKey(ts)
		idx, err := ring.Owners(hashring.SeriesHash("team-b", ts.Labels), rf, nil)
		require.NoError(t, err)
		var want []string
		for _, i := range idx {
			want = append(want, eps[i].Address)
		}
		slices.Sort(want)
		got := where[k]
		slices.Sort(got)
		require.Equal(t, want, got)
		require.Equal(t, ts, stored[k])
	}
}

// TestGRPCRealStorage: rejections of a real tenant TSDB travel back over gRPC and become a 400
// partial write that names the series.
func TestGRPCRealStorage(t *testing.T) {
	m, err := tenant.NewManager(tenant.Config{
		Dir: t.TempDir(), Retention: 24 * time.Hour, LabelName: "tenant_id", OpenConcurrency: 1,
	}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()
	srv := startIngest(t, m, IngestConfig{}, nil)
	peers, _ := newTestPeerWriter(t, testPeerConfig())
	ring, err := hashring.NewKetama([]hashring.Endpoint{{Address: srv.addr}}, 10, 1)
	require.NoError(t, err)
	router, err := NewRouter(RouterConfig{ReplicationFactor: 1, ForwardTimeout: 5 * time.Second},
		func(string) (hashring.Ring, error) { return ring, nil }, nil, peers, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	defer router.Close()
	h, _ := newTestHandler(t, testConfig(), router, alwaysReady)

	send := func(series []prompb.TimeSeries) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newPost(payloadOf(t, series), nil))
		return w
	}
	w := send([]prompb.TimeSeries{
		{Labels: lbls("__name__", "a"), Samples: samples(5000, 6000)},
		{Labels: lbls("__name__", "b"), Samples: samples(5000)},
	})
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	w = send([]prompb.TimeSeries{
		{Labels: lbls("__name__", "b"), Samples: samples(7000)},
		{Labels: lbls("__name__", "a"), Samples: samples(1000, 6000, 7000)}, // 1000: out of order; 6000: same value, accepted
	})
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "partial write: 1 points rejected, 3 written (out_of_order: 1)")
	require.Contains(t, w.Body.String(), `series 1: 1 sample(s) rejected (out_of_order): {__name__="a"}: out of order sample`)
	require.Equal(t, []string{"default-tenant"}, m.Tenants())
}

// TestIngestRefusesInvalidTenant: the tenant is validated again on the gRPC path.
func TestIngestRefusesInvalidTenant(t *testing.T) {
	node := newFakeNode("", modeOK)
	srv := startIngest(t, node, IngestConfig{}, nil)
	p, _ := newTestPeerWriter(t, testPeerConfig())
	for _, id := range []string{"", "..", "../../etc", "a/b", "x\x00"} {
		_, err := p.Forward(context.Background(), srv.addr, Share{Tenant: id, Payload: forwardPayload(t, testSeries(1, 1))})
		require.Equal(t, ClassInvalid, ClassOf(err), "%q: %v", id, err)
		require.Equal(t, codes.InvalidArgument, status.Code(err))
		require.ErrorContains(t, err, "invalid tenant ID")
	}
	// Not protobuf, and over the decoded limit.
	_, err := p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: []byte("\xffnot protobuf")})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	small := startIngest(t, node, IngestConfig{MaxDecodedBytes: 10}, nil)
	_, err = p.Forward(context.Background(), small.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(5, 5))})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, "over the limit")
	require.Empty(t, node.series())

	// Frames whose hashes do not match their series.
	for _, hashes := range [][]uint64{{1}, {1, 2, 3}} {
		_, err = p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(2, 1)), Hashes: hashes})
		require.Equal(t, codes.InvalidArgument, status.Code(err))
		require.ErrorContains(t, err, "series hashes for 2 series")
	}
	require.Empty(t, node.series())
	require.Equal(t, 8.0, counterValue(t, srv.reg, "weir_ingest_requests_total", "code=InvalidArgument,protocol=v2"))

	// Answers of the service leave the endpoint up.
	_, err = p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(2, 1))})
	require.NoError(t, err)
	require.Len(t, node.series(), 2)
}

// errStorage fails every write with err and counts the calls.
type errStorage struct {
	err   error
	calls atomic.Int32
}

func (s *errStorage) Write(context.Context, string, []prompb.TimeSeries, []write.SeriesExtra, []uint64) (write.Stats, error) {
	s.calls.Add(1)
	return write.Stats{}, s.err
}

// TestIngestErrorCodes: storage errors become status codes, and those become error classes again on
// the router: transient ones are retried and never mark the endpoint down. The same through every
// pair of neighbouring releases (protocolPairs).
func TestIngestErrorCodes(t *testing.T) {
	for _, pp := range protocolPairs {
		t.Run(pp.name, func(t *testing.T) { testIngestErrorCodes(t, pp) })
	}
}

func testIngestErrorCodes(t *testing.T, pp protocolPair) {
	peerConfig := testPeerConfig()
	peerConfig.Protocol = pp.router
	ingestConfig := IngestConfig{Protocol: pp.ingester}
	cases := []struct {
		err   error
		code  codes.Code
		class Class
		calls int32 // with retries of Unavailable (3 attempts)
	}{
		{fmt.Errorf("open: %w", tenant.ErrUnavailable), codes.Unavailable, ClassUnavailable, 3},
		{tenant.ErrClosed, codes.Unavailable, ClassUnavailable, 3},
		{errors.New("disk full"), codes.Internal, ClassInternal, 1},
		{fmt.Errorf("write: %w", context.Canceled), codes.Canceled, ClassUnavailable, 1},
		{fmt.Errorf("write: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ClassUnavailable, 1},
		{errorf(ClassInvalid, "bad"), codes.InvalidArgument, ClassInvalid, 1},
	}
	for _, tc := range cases {
		t.Run(tc.code.String()+"/"+tc.err.Error(), func(t *testing.T) {
			s := &errStorage{err: tc.err}
			srv := startIngest(t, s, ingestConfig, nil)
			p, _ := newTestPeerWriter(t, peerConfig)
			for round := int32(1); round <= 2; round++ { // the second round reaches the server too
				_, err := p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(1, 1))})
				require.Equal(t, tc.code, status.Code(err), "%v", err)
				require.Equal(t, tc.class, ClassOf(err))
				require.NotErrorIs(t, err, ErrEndpointDown)
				require.Equal(t, healthUp, healthOf(errors.Unwrap(errors.Unwrap(err))), "answered by the ingester: %v", err)
				require.Equal(t, round*tc.calls, s.calls.Load())
			}
		})
	}

	t.Run("not ready", func(t *testing.T) {
		node := newFakeNode("", modeOK)
		srv := startIngest(t, node, ingestConfig, nil)
		srv.ready.Store(false)
		p, _ := newTestPeerWriter(t, peerConfig)
		_, err := p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(1, 1))})
		require.Equal(t, codes.Unavailable, status.Code(err))
		require.Equal(t, ClassUnavailable, ClassOf(err))
		require.ErrorContains(t, err, "not ready")
	})
}

// TestIngestDeadline: the router's deadline reaches the ingester's storage, capped by the timeout.
func TestIngestDeadline(t *testing.T) {
	node := newFakeNode("", modeOK)
	srv := startIngest(t, node, IngestConfig{}, nil)
	cfg := testPeerConfig()
	cfg.Timeout = 3 * time.Second
	p, _ := newTestPeerWriter(t, cfg)

	before := time.Now()
	_, err := p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(1, 1))})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = p.Forward(ctx, srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(1, 1))})
	require.NoError(t, err)
	after := time.Now()

	node.mu.Lock()
	defer node.mu.Unlock()
	require.Len(t, node.deadlines, 2)
	require.False(t, node.deadlines[0].IsZero(), "no deadline on the ingester")
	require.True(t, node.deadlines[0].After(before) && !node.deadlines[0].After(after.Add(3*time.Second)), "deadline %s", node.deadlines[0])
	require.False(t, node.deadlines[1].After(after.Add(time.Second)), "the caller's shorter deadline was not kept")
}

// TestPeerDeadEndpoint: an endpoint that cannot be reached is refused without a round trip after its
// first failure, while writes to the others go on; after the down period one probe goes through,
// and the endpoint is up again when it answers.
func TestPeerDeadEndpoint(t *testing.T) {
	live := newFakeNode("", modeOK)
	liveSrv := startIngest(t, live, IngestConfig{}, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	flaky := newFakeNode("", modeOK)
	flakySrv := startIngest(t, flaky, IngestConfig{}, lis)
	clock := &fakeClock{}
	p, reg := newTestPeerWriter(t, testPeerConfig())
	p.useClock(clock)
	payload := forwardPayload(t, testSeries(1, 1))
	forward := func(addr string) error {
		_, err := p.Forward(context.Background(), addr, Share{Tenant: "t", Payload: payload})
		return err
	}

	require.NoError(t, forward(flakySrv.addr))
	flakySrv.stop()
	err = forward(flakySrv.addr)
	require.Equal(t, ClassUnavailable, ClassOf(err))
	require.NotErrorIs(t, err, ErrEndpointDown, "the first failure goes to the network")
	require.Equal(t, 1.0, counterValue(t, reg, "weir_forward_endpoint_down", "endpoint="+flakySrv.addr))

	for range 3 {
		require.ErrorIs(t, forward(flakySrv.addr), ErrEndpointDown)
		require.NoError(t, forward(liveSrv.addr))
	}

	// Still dead after the down period: one probe fails, and the endpoint is down again.
	clock.advance(2 * time.Minute)
	cfgTimeout := p.cfg.Timeout
	p.cfg.Timeout = 300 * time.Millisecond // the probe waits for a connection until its deadline
	err = forward(flakySrv.addr)
	p.cfg.Timeout = cfgTimeout
	require.NotErrorIs(t, err, ErrEndpointDown)
	require.Equal(t, ClassUnavailable, ClassOf(err))
	require.ErrorIs(t, forward(flakySrv.addr), ErrEndpointDown)

	// Back on the same address: the next probe finds it.
	lis, err = net.Listen("tcp", flakySrv.addr)
	require.NoError(t, err)
	startIngest(t, flaky, IngestConfig{}, lis)
	require.ErrorIs(t, forward(flakySrv.addr), ErrEndpointDown)
	clock.advance(2 * time.Minute)
	require.NoError(t, forward(flakySrv.addr))
	require.NoError(t, forward(flakySrv.addr))
	require.Equal(t, 0.0, counterValue(t, reg, "weir_forward_endpoint_down", "endpoint="+flakySrv.addr))
	require.Len(t, flaky.series(), 3)
}

// blackhole accepts connections and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = lis.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return lis.Addr().String()
}

// TestRouterDeadAndHungEndpoints: with RF=3, one dead endpoint and one that never answers cost the
// client nothing while a quorum is up: answers come from the two live replicas; the dead one is
// refused without a round trip after its first failure; the hung one is still in flight when the
// client is answered.
func TestRouterDeadAndHungEndpoints(t *testing.T) {
	a, b := newFakeNode("", modeOK), newFakeNode("", modeOK)
	a.addr = startIngest(t, a, IngestConfig{}, nil).addr
	b.addr = startIngest(t, b, IngestConfig{}, nil).addr
	dead, hung := deadAddr(t), blackhole(t)
	peers, _ := newTestPeerWriter(t, testPeerConfig())

	for _, tc := range []struct {
		name   string
		third  string
		result string // of the third endpoint after the first request
	}{{"dead", dead, "down"}, {"hung", hung, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			eps := []hashring.Endpoint{{Address: a.addr}, {Address: b.addr}, {Address: tc.third}}
			ring, err := hashring.NewKetama(eps, 10, 3)
			require.NoError(t, err)
			newRouter := func() (*Router, *prometheus.Registry) {
				reg := prometheus.NewRegistry()
				router, err := NewRouter(RouterConfig{ReplicationFactor: 3, ForwardTimeout: time.Second},
					func(string) (hashring.Ring, error) { return ring, nil }, nil, peers, slog.New(slog.DiscardHandler), reg)
				require.NoError(t, err)
				return router, reg
			}
			router, reg := newRouter()
			if tc.result != "" {
				// The first write finds the endpoint dead (its forward ends after the answer: Close
				// waits for it); the next ones do not try it.
				_, err := router.Write(context.Background(), Batch{Tenant: "t", Series: testSeries(10, 1)})
				require.NoError(t, err)
				router.Close()
				require.Equal(t, 1.0, counterValue(t, reg, "weir_forward_requests_total", "endpoint="+tc.third+",result=unavailable"))
				router, reg = newRouter()
				for range 2 {
					_, err := router.Write(context.Background(), Batch{Tenant: "t", Series: testSeries(10, 1)})
					require.NoError(t, err)
				}
				router.Close()
				require.Equal(t, 2.0, counterValue(t, reg, "weir_forward_requests_total", "endpoint="+tc.third+",result="+tc.result))
				return
			}
			for range 3 {
				// A hung replica holds the answer until the forward timeout; the quorum of the other
				// two then makes the write a success.
				_, err := router.Write(context.Background(), Batch{Tenant: "t", Series: testSeries(10, 1)})
				require.NoError(t, err)
			}
			router.Close()
			require.Equal(t, 0.0, counterValue(t, reg, "weir_forward_inflight_requests", "endpoint="+tc.third))
			require.Positive(t, counterValue(t, reg, "weir_forward_requests_total", "endpoint="+tc.third+",result=timeout"))
		})
	}
}

// TestPeerInflightBound: bytes in flight are bounded per endpoint and in total; over a bound a
// forward fails at once as unavailable.
func TestPeerInflightBound(t *testing.T) {
	payload := forwardPayload(t, testSeries(10, 2))
	wire := payloadOf(t, testSeries(10, 2)) // what is in flight: the payload compressed
	for _, tc := range []struct {
		name  string
		cfg   func(*PeerConfig)
		total bool // the bound in total: the other endpoint is refused too
	}{
		{"per endpoint", func(c *PeerConfig) { c.MaxInflightBytesPerEndpoint = 1 }, false},
		{"in total", func(c *PeerConfig) { c.MaxInflightBytes = int64(len(wire)) + 1 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slowNode := newFakeNode("", modeSlow)
			slowSrv := startIngest(t, slowNode, IngestConfig{}, nil)
			otherSrv := startIngest(t, newFakeNode("", modeOK), IngestConfig{}, nil)
			cfg := testPeerConfig()
			tc.cfg(&cfg)
			p, reg := newTestPeerWriter(t, cfg)
			done := make(chan error, 1)
			go func() {
				_, err := p.Forward(context.Background(), slowSrv.addr, Share{Tenant: "t", Payload: payload})
				done <- err
			}()
			<-slowNode.entered
			require.Equal(t, float64(len(wire)), counterValue(t, reg, "weir_forward_inflight_bytes", ""))

			_, err := p.Forward(context.Background(), slowSrv.addr, Share{Tenant: "t", Payload: payload})
			require.ErrorIs(t, err, ErrOverloaded)
			require.Equal(t, ClassUnavailable, ClassOf(err))
			_, err = p.Forward(context.Background(), otherSrv.addr, Share{Tenant: "t", Payload: payload})
			if tc.total {
				require.ErrorIs(t, err, ErrOverloaded)
			} else {
				require.NoError(t, err)
			}
			close(slowNode.release)
			require.NoError(t, <-done)
			require.Equal(t, 0.0, counterValue(t, reg, "weir_forward_inflight_bytes", ""))
			_, err = p.Forward(context.Background(), otherSrv.addr, Share{Tenant: "t", Payload: payload})
			require.NoError(t, err)
		})
	}
}

func TestPeerWriterClose(t *testing.T) {
	node := newFakeNode("", modeOK)
	srv := startIngest(t, node, IngestConfig{}, nil)
	p, _ := newTestPeerWriter(t, testPeerConfig())
	_, err := p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(1, 1))})
	require.NoError(t, err)
	require.Equal(t, 0, p.Prune(func(string) bool { return true }))
	require.Equal(t, 1, p.Prune(func(string) bool { return false }))
	_, err = p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(1, 1))}) // reconnects
	require.NoError(t, err)
	require.NoError(t, p.Close())
	_, err = p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(1, 1))})
	require.Equal(t, ClassUnavailable, ClassOf(err))
}

func TestPeerConfigValidate(t *testing.T) {
	require.NoError(t, PeerConfig{}.Validate())
	require.Error(t, PeerConfig{Timeout: -1}.Validate())
	require.Error(t, PeerConfig{MaxInflightBytes: -1}.Validate())
	require.Error(t, PeerConfig{TLS: tlsreload.ClientConfig{CertFile: "a"}}.Validate())
	require.Error(t, IngestConfig{MaxDecodedBytes: -1}.Validate())
	_, err := NewPeerWriter(PeerConfig{}, nil, prometheus.NewRegistry())
	require.Error(t, err)
	_, err = NewIngestServer(IngestConfig{}, nil, nil, alwaysReady, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.Error(t, err)
}

// Check that a payload built by the router is what the fakes and the ingester decode.
func TestFanoutEncode(t *testing.T) {
	series := testSeries(7, 2)
	series[3].Histograms = histogramsAt(1)
	series[5].Exemplars = []prompb.Exemplar{{Labels: lbls("a", "b"), Value: 1, Timestamp: 2}}
	ring, err := hashring.NewKetama([]hashring.Endpoint{{Address: "a:1"}, {Address: "b:1"}}, 10, 2)
	require.NoError(t, err)
	f := getFanout(len(series), 2, 2)
	defer f.release()
	require.NoError(t, f.split(ring, "t", series, SeriesFrames{}, 2, -1))
	for d := range 2 {
		payload := f.encode(d)
		var wr prompb.WriteRequest
		require.NoError(t, wr.Unmarshal(*payload))
		putBuffer(payload)
		require.Equal(t, series, wr.Timeseries)
	}
}

// TestRouterShedsLoad: while an endpoint is slow, requests that need it beyond the in-flight bound
// are answered 503 with Retry-After at once instead of piling up in the router.
func TestRouterShedsLoad(t *testing.T) {
	slowNode := newFakeNode("", modeSlow)
	srv := startIngest(t, slowNode, IngestConfig{}, nil)
	cfg := testPeerConfig()
	cfg.MaxInflightBytesPerEndpoint = 1
	peers, _ := newTestPeerWriter(t, cfg)
	ring, err := hashring.NewKetama([]hashring.Endpoint{{Address: srv.addr}}, 10, 1)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	router, err := NewRouter(RouterConfig{ReplicationFactor: 1, ForwardTimeout: time.Minute},
		func(string) (hashring.Ring, error) { return ring, nil }, nil, peers, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	defer router.Close()
	h, _ := newTestHandler(t, testConfig(), router, alwaysReady)
	body := payloadOf(t, testSeries(10, 1))

	first := make(chan int, 1)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newPost(body, nil))
		first <- w.Code
	}()
	<-slowNode.entered
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newPost(body, nil))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, "5", w.Header().Get("Retry-After"))
	require.Contains(t, w.Body.String(), "too many bytes in flight")
	require.Equal(t, 1.0, counterValue(t, reg, "weir_forward_requests_total", "endpoint="+srv.addr+",result=overloaded"))

	close(slowNode.release)
	require.Equal(t, http.StatusNoContent, <-first)
}

// rawFrameCodec is the ingest codec that also sends a *[]byte as it is, to send malformed frames.
type rawFrameCodec struct{ ingestCodec }

func (c rawFrameCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(*[]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
	}
	return c.ingestCodec.Marshal(v)
}

// TestIngestRefusesMalformedFrame: a request the ingester cannot parse, of either protocol, is the
// sender's fault (InvalidArgument), not an internal error, whatever part of it is malformed; one
// that needs a newer ingester (a v1 frame version, a v2 compression it does not know) is
// Unimplemented with the service's detail — a failed replica, neither the client's fault nor a
// reason to fall back to v1.
func TestIngestRefusesMalformedFrame(t *testing.T) {
	node := newFakeNode("", modeOK)
	srv := startIngest(t, node, IngestConfig{}, nil)
	cc, err := grpc.NewClient("passthrough:///"+srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawFrameCodec{newIngestCodec()})))
	require.NoError(t, err)
	defer func() { _ = cc.Close() }()
	for _, tc := range []struct {
		method         string
		malformed, new [][]byte
	}{
		{method: legacyWriteMethod,
			malformed: [][]byte{{}, {wireVersionRaw, 5, 'a'}, {wireVersionRawHashed, 1, 't', 0x80, 0x80, 0x10}},
			new:       [][]byte{{0, 0}, {wireVersionRawHashed + 1, 1, 't'}, {0xff}}},
		{method: ingestWriteMethod,
			malformed: [][]byte{{0x0a, 5, 'a'}, {0x0a, 1, 't', 0x1a, 1, 0}},
			new:       [][]byte{{0x0a, 1, 't', 0x10, 2}}},
	} {
		for _, frame := range tc.malformed {
			err := cc.Invoke(context.Background(), tc.method, &frame, &legacyReply{})
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%s %q: %v", tc.method, frame, err)
			require.ErrorContains(t, err, "malformed ingest frame")
		}
		for _, frame := range tc.new {
			err := cc.Invoke(context.Background(), tc.method, &frame, &legacyReply{})
			require.Equal(t, codes.Unimplemented, status.Code(err), "%s %q: %v", tc.method, frame, err)
			require.ErrorContains(t, err, "needs a newer ingester")
			require.False(t, missingMethod(err), "not a reason to fall back")
			var fe *Error
			require.ErrorAs(t, forwardError("ingester", err), &fe)
			require.Equal(t, ClassInternal, fe.Class, "a newer router's frame must not be the client's fault")
		}
	}
	require.Empty(t, node.series())
}
