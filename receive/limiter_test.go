package receive

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/hashring"
)

func newTestLimiter(t *testing.T, cfg LimiterConfig) (*Limiter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	l, err := NewLimiter(cfg, reg)
	require.NoError(t, err)
	return l, reg
}

func TestLimiterSlots(t *testing.T) {
	l, reg := newTestLimiter(t, LimiterConfig{Slots: 2, MaxWait: 20 * time.Millisecond})
	ctx := context.Background()
	a, err := l.Acquire(ctx)
	require.NoError(t, err)
	b, err := l.Acquire(ctx)
	require.NoError(t, err)
	require.Equal(t, 2.0, counterValue(t, reg, "weir_write_slots_in_use", ""))

	// All busy: the wait is bounded by MaxWait, and the answer is transient (503).
	_, err = l.Acquire(ctx)
	require.Equal(t, ClassUnavailable, ClassOf(err))
	require.Equal(t, 503, StatusCode(err))
	require.ErrorContains(t, err, "no write slot came free in 20ms")
	// … and by the request's context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = l.Acquire(cctx)
	require.Equal(t, ClassUnavailable, ClassOf(err))
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 2.0, counterValue(t, reg, "weir_write_slots_refused_total", ""))

	// A waiter gets the slot released while it waits; releasing twice gives back one slot.
	l2, _ := newTestLimiter(t, LimiterConfig{Slots: 2, MaxWait: time.Minute})
	x, err := l2.Acquire(ctx)
	require.NoError(t, err)
	_, err = l2.Acquire(ctx)
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		_, err := l2.Acquire(ctx)
		got <- err
	}()
	x.Release()
	x.Release()
	require.NoError(t, <-got)
	require.Len(t, l2.slots, 2)

	a.Release()
	b.Release()
	require.Equal(t, 0.0, counterValue(t, reg, "weir_write_slots_in_use", ""))
}

func TestLimiterDefaults(t *testing.T) {
	l, reg := newTestLimiter(t, LimiterConfig{})
	require.Equal(t, runtime.GOMAXPROCS(0), cap(l.slots))
	require.Equal(t, DefaultLimiterWait, l.maxWait)
	require.Equal(t, float64(runtime.GOMAXPROCS(0)), counterValue(t, reg, "weir_write_slots", ""))
	_, err := NewLimiter(LimiterConfig{Slots: -1}, prometheus.NewRegistry())
	require.Error(t, err)

	// A nil limiter does not limit.
	var none *Limiter
	s, err := none.Acquire(context.Background())
	require.NoError(t, err)
	s.Release()
}

// TestHandlerLimiter: with every slot taken by a write in progress, another request is answered 503
// with Retry-After once the wait is over, without reaching storage; the slot comes back after the
// write.
func TestHandlerLimiter(t *testing.T) {
	l, _ := newTestLimiter(t, LimiterConfig{Slots: 1, MaxWait: 20 * time.Millisecond})
	node := newFakeNode("", modeSlow)
	cfg := testConfig()
	h, reg := newLimitedHandler(t, cfg, Local(node), l, alwaysReady)
	body := payloadOf(t, testSeries(3, 1))

	first := make(chan int, 1)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newPost(body, nil))
		first <- w.Code
	}()
	<-node.entered
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newPost(body, nil))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, "5", w.Header().Get("Retry-After"))
	require.Contains(t, w.Body.String(), "overloaded")
	require.Equal(t, 1.0, counterValue(t, reg, "weir_receive_requests_refused_total", "reason=overloaded"))

	close(node.release)
	require.Equal(t, http.StatusNoContent, <-first)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, newPost(body, nil))
	require.Equal(t, http.StatusNoContent, w.Code)
	require.Len(t, l.slots, 0)
}

// TestHandlerReleasesSlotOnBadBody: a body that decompresses but is not a WriteRequest fails after
// the slot was taken; the slot must come back, or a few such requests would leave the node answering
// every write 503 (found by e2e/badrequest_test.go).
func TestHandlerReleasesSlotOnBadBody(t *testing.T) {
	l, _ := newTestLimiter(t, LimiterConfig{Slots: 1, MaxWait: 20 * time.Millisecond})
	cfg := testConfig()
	h, _ := newLimitedHandler(t, cfg, Local(newFakeNode("", modeOK)), l, alwaysReady)
	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newPost(snappy.Encode(nil, []byte("\xff\xff\xff not protobuf")), nil))
		require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
		require.Empty(t, l.slots, "slot still held after a bad body")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newPost(payloadOf(t, testSeries(3, 1)), nil))
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
}

// TestRouterReleasesSlotWhileWaiting: a router gives its slot back once its own work is done, so that
// requests waiting for slow replicas do not hold the node's CPU slots.
func TestRouterReleasesSlotWhileWaiting(t *testing.T) {
	l, _ := newTestLimiter(t, LimiterConfig{Slots: 1, MaxWait: time.Minute})
	slow := newFakeNode("node-0:10901", modeSlow)
	ring, err := hashring.NewKetama([]hashring.Endpoint{{Address: slow.addr}}, 10, 1)
	require.NoError(t, err)
	router, err := NewRouter(RouterConfig{ReplicationFactor: 1, ForwardTimeout: time.Minute},
		func(string) (hashring.Ring, error) { return ring, nil }, nil,
		&fakePeers{t: t, nodes: map[string]*fakeNode{slow.addr: slow}}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	defer router.Close()
	cfg := testConfig()
	h, _ := newLimitedHandler(t, cfg, router, l, alwaysReady)
	body := payloadOf(t, testSeries(3, 1))

	codes := make(chan int, 2)
	for range 2 { // the second gets the slot while the first waits for its replica
		go func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, newPost(body, nil))
			codes <- w.Code
		}()
		<-slow.entered
	}
	close(slow.release)
	require.Equal(t, http.StatusNoContent, <-codes)
	require.Equal(t, http.StatusNoContent, <-codes)
	require.Len(t, l.slots, 0)
}

// TestIngestLimiter: the ingest service takes a slot of the node's limiter too; without one in time
// it answers Unavailable (the router retries, then counts the replica as failed), and the endpoint
// stays up. Both compressions are decoded.
func TestIngestLimiter(t *testing.T) {
	l, _ := newTestLimiter(t, LimiterConfig{Slots: 1, MaxWait: 10 * time.Millisecond})
	node := newFakeNode("", modeOK)
	srv := startLimitedIngest(t, node, IngestConfig{}, l, nil)
	held, err := l.Acquire(context.Background())
	require.NoError(t, err)
	p, _ := newTestPeerWriter(t, testPeerConfig())
	_, err = p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(2, 1))})
	require.Equal(t, ClassUnavailable, ClassOf(err))
	require.ErrorContains(t, err, "overloaded")
	require.Empty(t, node.series())

	held.Release()
	for _, c := range []string{CompressionSnappy, CompressionNone} {
		cfg := testPeerConfig()
		cfg.Compression = c
		p, _ := newTestPeerWriter(t, cfg)
		_, err = p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(2, 1))})
		require.NoError(t, err, c)
	}
	require.Len(t, node.series(), 4)
	require.Len(t, l.slots, 0)
	_, err = NewPeerWriter(PeerConfig{Compression: "gzip"}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.ErrorContains(t, err, `--receive.grpc-compression: "gzip" is neither snappy nor none`)
}
