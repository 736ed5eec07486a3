package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/weir-metrics/weir/internal/testutil"
)

// collector is an OTLP trace receiver (the gRPC service of the OpenTelemetry Collector): it keeps
// every span it is sent, by service.
type collector struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []span
}

type span struct {
	service, name, trace, id, parent string
}

func (c *collector) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "node" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, span{service, s.GetName(), hex.EncodeToString(s.GetTraceId()), hex.EncodeToString(s.GetSpanId()), hex.EncodeToString(s.GetParentSpanId())})
			}
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) all() []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]span(nil), c.spans...)
}

// TestRingTracing: with Thanos' tracing configuration (type OTLP), one remote-write request through
// a router to two ingesters (RF=2) is one trace: the router's receive, decode and route spans, a
// gRPC client span per forward, and on each ingester the gRPC server span with the tenant append and
// commit below it.
func TestRingTracing(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	col := &collector{}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	tracingArg := func(node string) string {
		return fmt.Sprintf("--tracing.config=type: OTLP\nconfig:\n  client_type: grpc\n  endpoint: %s\n  insecure: true\n  sampler_type: alwayssample\n  resource_attributes:\n    node: %s\n", lis.Addr(), node)
	}

	grpcAddrs := testutil.LoopbackAddrs(t, 2)
	ingesters := []*weirNode{
		startIngester(t, grpcAddrs[0], tracingArg("ingester-0")),
		startIngester(t, grpcAddrs[1], tracingArg("ingester-1")),
	}
	router := startWeir(t, t.TempDir(), "--receive.hashrings="+string(hashringsJSON(t, grpcAddrs...)),
		"--receive.replication-factor=2", tracingArg("router"))
	require.Contains(t, router.Log(), "tracing on")

	l := newRingLoad(20)
	require.NoError(t, sendAll(l, []string{"traced"}, 1, func(int, int) *weirNode { return router }))
	stopAll(append([]*weirNode{router}, ingesters...)...) // a stop exports what is buffered

	spans := col.all()
	var receive span
	for _, s := range spans {
		if s.service == "router" && s.name == "receive" {
			receive = s
		}
	}
	require.NotEmpty(t, receive.trace, "no receive span from the router among %v", spans)
	byID := map[string]span{}
	got := map[string]int{}
	for _, s := range spans {
		if s.trace == receive.trace {
			byID[s.id] = s
			got[s.service+" "+s.name]++
		}
	}
	require.Equal(t, 1, got["router decode"], "%v", got)
	require.Equal(t, 1, got["router route"], "%v", got)
	require.Equal(t, 2, got["router weir.ingest.v2.Ingest/Write"], "a client span per forward: %v", got)
	for _, ing := range []string{"ingester-0", "ingester-1"} {
		require.Equal(t, 1, got[ing+" weir.ingest.v2.Ingest/Write"], "the server span continues the router's trace: %v", got)
		require.Equal(t, 1, got[ing+" tenant append"], "%v", got)
		require.Equal(t, 1, got[ing+" tenant commit"], "%v", got)
	}
	// Each ingester's append hangs under its server span, which hangs under a router client span.
	for _, s := range byID {
		if s.name == "tenant append" {
			server := byID[s.parent]
			require.Equal(t, "weir.ingest.v2.Ingest/Write", server.name, "parent of %v", s)
			client := byID[server.parent]
			require.Equal(t, "router", client.service, "parent of %v", server)
			require.Equal(t, "route", byID[client.parent].name, "parent of %v", client)
		}
	}
}
