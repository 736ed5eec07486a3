package receive

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/weir-metrics/weir/write"
)

// The rolling-upgrade matrix of the node-to-node protocol (codec.go), over real loopback gRPC. A node
// of the previous release is simulated by ProtocolV1: its ingest server serves only the v1 method and
// its router writes only v1 frames, as that release did.

// protocolPair is a router's and an ingester's PeerConfig.Protocol and IngestConfig.Protocol.
type protocolPair struct {
	name             string
	router, ingester string
}

var protocolPairs = []protocolPair{
	{"new router, new ingester", "", ""},
	{"new router, old ingester", "", ProtocolV1},
	{"old router, new ingester", ProtocolV1, ""},
}

// callLog records the methods a PeerWriter calls.
type callLog struct {
	mu      sync.Mutex
	methods []string
}

// record makes p log its calls; before its first forward, which dials.
func (l *callLog) record(p *PeerWriter) {
	p.dialOpts = append(p.dialOpts, grpc.WithChainUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			l.mu.Lock()
			l.methods = append(l.methods, method)
			l.mu.Unlock()
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
}

// take returns the methods called since the last take.
func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.methods
	l.methods = nil
	return m
}

// TestProtocolMatrix: every pair of neighbouring releases writes everything, with the stats of the
// write, through the protocol both speak.
func TestProtocolMatrix(t *testing.T) {
	for _, pp := range protocolPairs {
		t.Run(pp.name, func(t *testing.T) {
			node := newFakeNode("", modeConflict) // stats with rejections travel back
			srv := startIngest(t, node, IngestConfig{Protocol: pp.ingester}, nil)
			cfg := testPeerConfig()
			cfg.Protocol = pp.router
			p, reg := newTestPeerWriter(t, cfg)
			var calls callLog
			calls.record(p)

			series := testSeries(3, 2)
			hashes := []uint64{1, 2, 3}
			for range 3 {
				st, err := p.Forward(context.Background(), srv.addr, Share{Tenant: "team-a", Payload: forwardPayload(t, series), Hashes: hashes})
				require.NoError(t, err)
				require.Equal(t, 3, st.Appended[write.KindFloat])
				require.Len(t, st.Rejected, 3)
				require.Equal(t, write.ReasonOutOfOrder, st.Rejected[2].Reason)
				require.Equal(t, 2, st.Rejected[2].Series)
			}
			want := slices.Repeat([]string{ingestWriteMethod}, 3)
			proto, legacy := 3.0, 0.0
			switch {
			case pp.ingester == ProtocolV1: // one failed v2 call, then v1, remembered
				want = []string{ingestWriteMethod, legacyWriteMethod, legacyWriteMethod, legacyWriteMethod}
				proto, legacy = 0, 1
			case pp.router == ProtocolV1:
				want = slices.Repeat([]string{legacyWriteMethod}, 3)
				proto = 0
			}
			require.Equal(t, want, calls.take())
			require.Equal(t, proto, counterValue(t, srv.reg, "weir_ingest_requests_total", "code=OK,protocol=v2"))
			require.Equal(t, 3-proto, counterValue(t, srv.reg, "weir_ingest_requests_total", "code=OK,protocol=v1"))
			require.Equal(t, legacy, counterValue(t, reg, "weir_forward_endpoint_legacy_protocol", "endpoint="+srv.addr))
			require.Len(t, node.series(), 9)
			require.Equal(t, []string{"team-a", "team-a", "team-a"}, node.tenants)
		})
	}
}

// TestProtocolFallbackReprobe: a router writing with v1 to an ingester of the previous release tries
// v2 again once per protocolReprobe, and on the first write after the endpoint was down (restarted,
// perhaps upgraded); it goes back to v2 once the ingester serves it.
func TestProtocolFallbackReprobe(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	node := newFakeNode("", modeOK)
	old := startIngest(t, node, IngestConfig{Protocol: ProtocolV1}, lis)
	addr := old.addr
	clock := &fakeClock{}
	p, reg := newTestPeerWriter(t, testPeerConfig())
	p.useClock(clock)
	var calls callLog
	calls.record(p)
	payload := forwardPayload(t, testSeries(1, 1))
	forward := func() error {
		_, err := p.Forward(context.Background(), addr, Share{Tenant: "t", Payload: payload})
		return err
	}
	legacyGauge := func() float64 {
		return counterValue(t, reg, "weir_forward_endpoint_legacy_protocol", "endpoint="+addr)
	}

	require.NoError(t, forward())
	require.NoError(t, forward())
	require.Equal(t, []string{ingestWriteMethod, legacyWriteMethod, legacyWriteMethod}, calls.take())
	require.Equal(t, 1.0, legacyGauge())

	// Time to try again: one write probes v2, still not served; the next ones do not.
	clock.advance(protocolReprobe)
	require.NoError(t, forward())
	require.NoError(t, forward())
	require.Equal(t, []string{ingestWriteMethod, legacyWriteMethod, legacyWriteMethod}, calls.take())

	// The ingester is upgraded; the router finds it down meanwhile, and back up with a probe (which
	// uses v1: the time to try v2 has not come), then tries v2 at once.
	restart := func(cfg IngestConfig) *ingestServer {
		lis, err := net.Listen("tcp", addr)
		require.NoError(t, err)
		return startIngest(t, node, cfg, lis)
	}
	old.stop()
	require.Error(t, forward())
	upgraded := restart(IngestConfig{})
	clock.advance(2 * p.cfg.DownPeriod)
	calls.take()
	require.NoError(t, forward())
	require.NoError(t, forward())
	require.NoError(t, forward())
	require.Equal(t, []string{legacyWriteMethod, ingestWriteMethod, ingestWriteMethod}, calls.take())
	require.Equal(t, 0.0, legacyGauge())
	require.Equal(t, 2.0, counterValue(t, upgraded.reg, "weir_ingest_requests_total", "code=OK,protocol=v2"))

	// Rolled back, then upgraded again without the router noticing (no write while it was down):
	// v2 once protocolReprobe has passed.
	upgraded.stop()
	awaitDisconnected(t, p, addr)
	rolledBack := restart(IngestConfig{Protocol: ProtocolV1})
	awaitReady(t, p, addr)
	require.NoError(t, forward())
	require.Equal(t, []string{ingestWriteMethod, legacyWriteMethod}, calls.take())
	rolledBack.stop()
	awaitDisconnected(t, p, addr)
	restart(IngestConfig{})
	awaitReady(t, p, addr)
	require.NoError(t, forward())
	require.Equal(t, []string{legacyWriteMethod}, calls.take())
	clock.advance(protocolReprobe)
	require.NoError(t, forward())
	require.NoError(t, forward())
	require.Equal(t, []string{ingestWriteMethod, ingestWriteMethod}, calls.take())
	require.Equal(t, 0.0, legacyGauge())
	require.Equal(t, 11, len(node.series()), "every write that succeeded")
}

// awaitDisconnected waits until p's connection to addr has seen its server stop, so that the next
// call does not race the news.
func awaitDisconnected(t *testing.T, p *PeerWriter, addr string) {
	t.Helper()
	pc, err := p.peer(addr)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if pc.cc.GetState() == connectivity.Ready {
		require.True(t, pc.cc.WaitForStateChange(ctx, connectivity.Ready), "connection to %s still ready", addr)
	}
}

// awaitReady waits until p's connection to addr is ready (after its server was restarted).
func awaitReady(t *testing.T, p *PeerWriter, addr string) {
	t.Helper()
	pc, err := p.peer(addr)
	require.NoError(t, err)
	pc.cc.ResetConnectBackoff()
	pc.cc.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for s := pc.cc.GetState(); s != connectivity.Ready; s = pc.cc.GetState() {
		if s == connectivity.TransientFailure {
			pc.cc.ResetConnectBackoff()
		}
		require.True(t, pc.cc.WaitForStateChange(ctx, s), "connection to %s not ready", addr)
		pc.cc.Connect()
	}
}
