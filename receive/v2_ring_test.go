package receive

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/write"
)

func newTestManager(t *testing.T) *tenant.Manager {
	t.Helper()
	m, err := tenant.NewManager(tenant.Config{
		Dir: t.TempDir(), Retention: 24 * time.Hour, LabelName: "tenant_id", OpenConcurrency: 1,
	}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m
}

// newV2Router is a handler over a router writing every series to this node (local) and to remote,
// RF=2.
func newV2Router(t *testing.T, local TenantStorage, remote string) *Handler {
	t.Helper()
	peers, _ := newTestPeerWriter(t, testPeerConfig())
	ring, err := hashring.NewKetama([]hashring.Endpoint{{Address: "local:1"}, {Address: remote}}, 10, 2)
	require.NoError(t, err)
	router, err := NewRouter(RouterConfig{ReplicationFactor: 2, ForwardTimeout: 5 * time.Second, LocalEndpoint: "local:1"},
		func(string) (hashring.Ring, error) { return ring, nil }, local, peers, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(router.Close)
	h, _ := newTestHandler(t, testConfig(), router, alwaysReady)
	return h
}

// TestRingV2Extras: a 2.0 write reaches both replicas, the local one and one over gRPC, with its
// metadata and start timestamps.
func TestRingV2Extras(t *testing.T) {
	local, remote := newTestManager(t), newTestManager(t)
	srv := startIngest(t, remote, IngestConfig{}, nil)
	h := newV2Router(t, local, srv.addr)

	w := httptest.NewRecorder()
	h.ServeHTTP(w, newPost(encodeV2(t, happyV2()), rw2Headers()))
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, "3", w.Header().Get(headerSamplesWritten))
	require.Equal(t, "1", w.Header().Get(headerHistogramsWritten))

	now := int64(1_700_000_000_000)
	for name, m := range map[string]*tenant.Manager{"local": local, "remote": remote} {
		// "up" came without metadata: there is none to keep.
		require.Equal(t, map[string][]metadata.Metadata{"http_requests_total": {counterMeta}, "rpc_seconds": {nhcbMeta}}, m.Metadata("", "", 0), name)
		// The counter's start is a zero point before its samples.
		require.Equal(t, []int64{now - 60_000, now - 15_000, now}, timestamps(t, m, "http_requests_total"), name)
		require.Equal(t, []int64{now - 30_000, now}, timestamps(t, m, "rpc_seconds"), name)
		require.Equal(t, nhcb.CustomValues, lastHistogram(t, m, "rpc_seconds").CustomValues, "%s: the custom bucket bounds crossed the ring", name)
	}
}

// lastHistogram is the newest histogram of metric in the default tenant of m.
func lastHistogram(t *testing.T, m *tenant.Manager, metric string) *histogram.Histogram {
	t.Helper()
	r, ok := m.Reader(tenant.DefaultID)
	require.True(t, ok)
	defer r.Release()
	q, err := r.DB.Querier(0, 1<<62)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", metric))
	var h *histogram.Histogram
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValHistogram {
			_, h = it.AtHistogram(nil)
		}
	}
	require.NoError(t, ss.Err())
	require.NotNil(t, h)
	return h
}

// timestamps are the timestamps stored for metric in the default tenant of m.
func timestamps(t *testing.T, m *tenant.Manager, metric string) []int64 {
	t.Helper()
	r, ok := m.Reader(tenant.DefaultID)
	require.True(t, ok)
	defer r.Release()
	q, err := r.DB.Querier(0, 1<<62)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", metric))
	var ts []int64
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			ts = append(ts, it.AtT())
		}
	}
	require.NoError(t, ss.Err())
	return ts
}

// extrasBlindIngester answers writes as an ingester of a release before Remote Write 2.0 does: its
// reply has no extras_stored, a field it does not know.
type extrasBlindIngester struct{ s *IngestServer }

func (b extrasBlindIngester) write(ctx context.Context, req *ingestRequest) (*writeReply, error) {
	reply, err := b.s.write(ctx, req)
	if reply != nil {
		reply.extrasStored = false
	}
	return reply, err
}

// TestRingV2ExtrasNotStored: a replica that drops the extras fails the write retryably (503), with a
// message saying why, instead of acknowledging data it did not keep whole.
func TestRingV2ExtrasNotStored(t *testing.T) {
	local, remote := newTestManager(t), newTestManager(t)
	is, err := NewIngestServer(IngestConfig{}, remote, nil, alwaysReady, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	addr := serveGRPC(t, func(s *grpc.Server) { s.RegisterService(&ingestServiceDesc, extrasBlindIngester{is}) })
	h := newV2Router(t, local, addr)

	w := httptest.NewRecorder()
	h.ServeHTTP(w, newPost(encodeV2(t, happyV2()), rw2Headers()))
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "did not store the metadata and start timestamps")
	require.NotEmpty(t, w.Header().Get("Retry-After"))

	// Remote Write 1.0 has no extras: the same replica takes it.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, newPost(payloadOf(t, []prompb.TimeSeries{{Labels: lbls("__name__", "up", "job", "api"), Samples: samples(1_700_000_001_000)}}), rw1Headers()))
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
}

// serveGRPC serves the services register adds on loopback, with the ingest server's options, until
// the test ends; it returns the address.
func serveGRPC(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	opts, err := IngestConfig{}.ServerOptions(nil, nil)
	require.NoError(t, err)
	srv := grpc.NewServer(opts...)
	register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// TestRouterWrittenOnQuorumFailure: when some series miss their quorum, the answer is 503 and its
// *-Written headers count the points of the series that did reach theirs, as Remote Write 2.0 asks
// (accurate counts on error answers too).
func TestRouterWrittenOnQuorumFailure(t *testing.T) {
	c := newCluster(t, 1, []string{modeOK, modeUnavailable, modeOK}, -1, 5*time.Second)
	series := testSeries(30, 2)
	stats, err := c.router.Write(context.Background(), Batch{Tenant: "t", Series: series})
	require.Equal(t, ClassUnavailable, ClassOf(err))
	c.releaseAll()
	stored := 0
	for _, n := range []int{0, 2} {
		for _, s := range c.nodes[n].series() {
			stored += len(s.Samples)
		}
	}
	require.Positive(t, stored, "some series are owned by the healthy nodes")
	require.Less(t, stored, 60, "some by the failing one")
	require.Equal(t, stored, stats.Appended[write.KindFloat], "the points a quorum (RF=1: their one replica) wrote")

	h, _ := newTestHandler(t, testConfig(), c.router, alwaysReady)
	w := httptest.NewRecorder()
	hdr := rw1Headers()
	hdr.Set(tenant.DefaultHeader, "t") // the same tenant, so the same placement
	h.ServeHTTP(w, newPost(payloadOf(t, series), hdr))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, strconv.Itoa(stored), w.Header().Get(headerSamplesWritten))
}
