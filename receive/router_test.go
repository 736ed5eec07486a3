package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/write"
)

// answerWithin bounds how long a test waits for an answer that must come without waiting for a
// blocked replica; it only turns a hang into a failure.
const answerWithin = 20 * time.Second

// TestRouterQuorum drives the quorum rules through the real handler: every series is owned by every
// node (as many nodes as the replication factor), each node answers as its mode says, and the
// client must get the status code of the rules in quorum.go — under both replica wait policies.
// Slow nodes are released only after the answer. A slow or hung replica beyond the quorum must hold
// a WaitAll answer until the forward timeout, and must not hold a WaitQuorum answer for any time
// near it.
func TestRouterQuorum(t *testing.T) {
	for _, p := range []struct {
		name    string
		wait    ReplicaWait
		timeout time.Duration
	}{
		{"wait=all", WaitAll, 300 * time.Millisecond},
		{"wait=quorum", WaitQuorum, 2 * time.Second},
	} {
		t.Run(p.name, func(t *testing.T) { testRouterQuorum(t, p.wait, p.timeout) })
	}
}

func testRouterQuorum(t *testing.T, wait ReplicaWait, forwardTimeout time.Duration) {
	const (
		ok, conflict, invalid, unavailable = modeOK, modeConflict, modeInvalid, modeUnavailable
		timeout, slow, hang                = modeTimeout, modeSlow, modeHang
	)
	cases := []struct {
		name   string
		rf     int
		modes  []string
		local  int // index of the local node, -1 for none
		want   int
		reason string // weir_quorum_failures_total reason expected, if any
	}{
		{"rf1 ok", 1, []string{ok}, -1, http.StatusNoContent, ""},
		{"rf1 local ok", 1, []string{ok}, 0, http.StatusNoContent, ""},
		{"rf1 conflict", 1, []string{conflict}, -1, http.StatusBadRequest, ""},
		{"rf1 invalid", 1, []string{invalid}, -1, http.StatusBadRequest, "invalid"},
		{"rf1 unavailable", 1, []string{unavailable}, -1, http.StatusServiceUnavailable, "unavailable"},
		{"rf1 local unavailable", 1, []string{unavailable}, 0, http.StatusServiceUnavailable, "unavailable"},
		{"rf1 timeout", 1, []string{timeout}, -1, http.StatusServiceUnavailable, "timeout"},
		{"rf1 hang", 1, []string{hang}, -1, http.StatusServiceUnavailable, "timeout"},

		{"rf2 ok ok", 2, []string{ok, ok}, -1, http.StatusNoContent, ""},
		{"rf2 ok unavailable", 2, []string{ok, unavailable}, -1, http.StatusServiceUnavailable, "unavailable"},
		{"rf2 ok conflict", 2, []string{ok, conflict}, -1, http.StatusBadRequest, ""},
		{"rf2 conflict conflict", 2, []string{conflict, conflict}, -1, http.StatusBadRequest, ""},
		{"rf2 ok invalid", 2, []string{ok, invalid}, -1, http.StatusBadRequest, "invalid"},
		{"rf2 ok hang", 2, []string{ok, hang}, -1, http.StatusServiceUnavailable, "timeout"},

		{"rf3 ok ok ok", 3, []string{ok, ok, ok}, -1, http.StatusNoContent, ""},
		{"rf3 ok ok unavailable", 3, []string{ok, ok, unavailable}, -1, http.StatusNoContent, ""},
		{"rf3 ok ok slow", 3, []string{ok, ok, slow}, -1, http.StatusNoContent, ""},
		{"rf3 ok ok hang", 3, []string{ok, ok, hang}, -1, http.StatusNoContent, ""},
		{"rf3 local ok ok slow", 3, []string{ok, ok, slow}, 0, http.StatusNoContent, ""},
		{"rf3 local unavailable", 3, []string{unavailable, ok, ok}, 0, http.StatusNoContent, ""},
		{"rf3 ok unavailable unavailable", 3, []string{ok, unavailable, unavailable}, -1, http.StatusServiceUnavailable, "unavailable"},
		{"rf3 ok unavailable timeout", 3, []string{ok, unavailable, timeout}, -1, http.StatusServiceUnavailable, "timeout"},
		{"rf3 ok hang hang", 3, []string{ok, hang, hang}, -1, http.StatusServiceUnavailable, "timeout"},
		{"rf3 conflict conflict ok", 3, []string{conflict, conflict, ok}, -1, http.StatusBadRequest, ""},
		{"rf3 ok conflict unavailable", 3, []string{ok, conflict, unavailable}, -1, http.StatusBadRequest, ""},
		{"rf3 ok ok conflict", 3, []string{ok, ok, conflict}, -1, http.StatusNoContent, ""},
		{"rf3 invalid invalid ok", 3, []string{invalid, invalid, ok}, -1, http.StatusBadRequest, "invalid"},
		{"rf3 invalid unavailable ok", 3, []string{invalid, unavailable, ok}, -1, http.StatusServiceUnavailable, "unavailable"},

		{"rf5 three ok two unavailable", 5, []string{ok, ok, ok, unavailable, unavailable}, -1, http.StatusNoContent, ""},
		{"rf5 two ok three unavailable", 5, []string{ok, ok, unavailable, unavailable, unavailable}, -1, http.StatusServiceUnavailable, "unavailable"},
		{"rf5 three ok two slow", 5, []string{slow, ok, ok, slow, ok}, -1, http.StatusNoContent, ""},
		{"rf5 three conflict", 5, []string{conflict, conflict, conflict, ok, ok}, -1, http.StatusBadRequest, ""},
		{"rf5 two conflict", 5, []string{conflict, conflict, ok, ok, ok}, -1, http.StatusNoContent, ""},
		{"rf5 two ok three hang", 5, []string{ok, ok, hang, hang, hang}, -1, http.StatusServiceUnavailable, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClusterWait(t, tc.rf, tc.modes, tc.local, forwardTimeout, wait)
			h, _ := newTestHandler(t, testConfig(), c.router, alwaysReady)
			wr := &prompb.WriteRequest{Timeseries: testSeries(20, 2)}
			body := encodeWR(t, wr)

			answered := make(chan *httptest.ResponseRecorder, 1)
			start := time.Now()
			go func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, newPost(body, nil))
				answered <- w
			}()
			var w *httptest.ResponseRecorder
			select {
			case w = <-answered:
			case <-time.After(answerWithin):
				t.Fatal("no answer: the router waited for a replica beyond the quorum")
			}
			took := time.Since(start)
			require.Equal(t, tc.want, w.Code, w.Body.String())
			if tc.want == http.StatusNoContent && (slices.Contains(tc.modes, slow) || slices.Contains(tc.modes, hang)) {
				if wait == WaitAll {
					require.GreaterOrEqual(t, took, forwardTimeout, "WaitAll answered before the slow replica or the forward timeout")
				} else {
					require.Less(t, took, forwardTimeout/2, "WaitQuorum waited for a replica beyond the quorum")
				}
			}
			switch {
			case tc.want == http.StatusServiceUnavailable:
				require.Equal(t, "5", w.Header().Get("Retry-After"))
				require.Contains(t, w.Body.String(), "write quorum")
			case tc.reason == "invalid":
				require.Contains(t, w.Body.String(), "refused by their replicas")
			case tc.want == http.StatusBadRequest:
				require.Contains(t, w.Body.String(), "partial write: 20 points rejected, 20 written (out_of_order: 20)")
			}
			for _, reason := range []string{"unavailable", "invalid", "timeout", "canceled"} {
				want := 0.0
				if reason == tc.reason {
					want = 1
				}
				require.Equal(t, want, counterValue(t, c.reg, "weir_quorum_failures_total", "reason="+reason), reason)
			}

			// Stragglers finish after the answer and write everything.
			c.releaseAll()
			c.router.Close()
			for i, n := range c.nodes {
				if tc.modes[i] == slow {
					require.Len(t, n.series(), len(wr.Timeseries), "slow node %d", i)
				}
			}
		})
	}
}

// TestRouterPlacement: with a real ring, every series goes to exactly its RF distinct owners, the
// local node's share goes through the local storage (the fake forwarder does not know its address),
// and points are counted once, not once per replica.
func TestRouterPlacement(t *testing.T) {
	const rf = 3
	modes := slices.Repeat([]string{modeOK}, 6)
	c := newCluster(t, rf, modes, 2, time.Minute)
	series := testSeries(300, 2)
	for i := range series {
		if i%10 == 0 {
			series[i].Histograms = histogramsAt(5000)
			series[i].Exemplars = []prompb.Exemplar{{Labels: lbls("trace_id", "t"), Value: 1, Timestamp: 1000}}
		}
	}
	stats, err := c.router.Write(context.Background(), Batch{Tenant: "team-a", Series: cloneSeries(series)})
	require.NoError(t, err)
	require.Equal(t, [write.NumKinds]int{600, 30, 30}, stats.Appended)
	require.Empty(t, stats.Rejected)
	c.router.Close() // the replicas beyond the quorum may still be writing

	where := map[string][]string{}
	for _, n := range c.nodes {
		for _, ts := range n.series() {
			where[seriesKey(ts)] = append(where[seriesKey(ts)], n.addr)
		}
		require.NotEmpty(t, n.series(), "every node owns some series")
	}
	for _, ts := range series {
		got := where[seriesKey(ts)]
		slices.Sort(got)
		require.Equal(t, c.owners(t, "team-a", ts, rf), got, "series %s", seriesKey(ts))
		require.Len(t, slices.Compact(got), rf, "distinct replicas")
	}
	for _, n := range c.nodes {
		n.mu.Lock()
		require.Equal(t, slices.Repeat([]string{"team-a"}, len(n.tenants)), n.tenants)
		n.mu.Unlock()
	}
	// Each node got one write, the local one included, and it is accounted under its address.
	for _, n := range c.nodes {
		require.Equal(t, 1.0, counterValue(t, c.reg, "weir_forward_requests_total", "endpoint="+n.addr+",result=success"), n.addr)
		require.Equal(t, float64(len(n.series())), counterValue(t, c.reg, "weir_forward_series_total", "endpoint="+n.addr+",result=success"), n.addr)
	}
}

// TestRouterRejectionsMapBack: rejections come back with the index of the series in the request,
// once per series however many replicas reported them, and only for series whose quorum refused them.
func TestRouterRejectionsMapBack(t *testing.T) {
	c := newCluster(t, 3, slices.Repeat([]string{modeOK}, 4), 1, time.Minute)
	series := testSeries(50, 3)
	for i := range series {
		if i%5 == 0 {
			series[i].Exemplars = []prompb.Exemplar{{Value: 1, Timestamp: 1000}, {Value: 2, Timestamp: 2000}}
		}
	}
	bad := func(ts prompb.TimeSeries) bool {
		return strings.Contains(labelsString(ts.Labels), "host-7:") || strings.Contains(labelsString(ts.Labels), "host-21:")
	}
	for _, n := range c.nodes {
		n.rejectSeries = bad
		n.rejectExemplars = true
	}
	stats, err := c.router.Write(context.Background(), Batch{Tenant: "t", Series: cloneSeries(series)})
	require.NoError(t, err)

	var want []write.Rejection
	for i := range series {
		if bad(series[i]) {
			want = append(want, write.Rejection{Series: i, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 1})
		}
		if len(series[i].Exemplars) > 0 {
			want = append(want, write.Rejection{Series: i, Kind: write.KindExemplar, Reason: write.ReasonExemplarsDisabled, Count: 2})
		}
	}
	got := slices.Clone(stats.Rejected)
	for i := range got {
		require.Error(t, got[i].Err)
		got[i].Err = nil
	}
	require.Equal(t, want, got)
	require.Equal(t, [write.NumKinds]int{150 - 2, 0, 0}, stats.Appended)

	// Through the handler: a partial write naming the series by their index in the request.
	h, _ := newTestHandler(t, testConfig(), c.router, alwaysReady)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newPost(encodeWR(t, &prompb.WriteRequest{Timeseries: series}), nil))
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "partial write: 2 points rejected, 148 written (out_of_order: 2)")
	require.Contains(t, w.Body.String(), `series 7: 1 sample(s) rejected (out_of_order): {__name__="test_metric", instance="host-7:9100", job="node"}: out of order sample`)
	require.Contains(t, w.Body.String(), `series 21: 1 sample(s) rejected (out_of_order)`)
}

// TestRouterMinorityRejections: points refused by a minority of replicas are in a quorum of WALs:
// the write succeeds and nothing is reported rejected.
func TestRouterMinorityRejections(t *testing.T) {
	c := newCluster(t, 3, []string{modeConflict, modeOK, modeOK}, -1, time.Minute)
	series := testSeries(10, 2)
	stats, err := c.router.Write(context.Background(), Batch{Tenant: "t", Series: series})
	require.NoError(t, err)
	require.Empty(t, stats.Rejected)
	require.Equal(t, 20, stats.Appended[write.KindFloat])
}

// TestRouterMixedConflict: acked by a quorum but refused in part by some of it (rule 5): the largest
// count among the refusing replicas is reported.
func TestRouterMixedConflict(t *testing.T) {
	c := newCluster(t, 3, []string{modeConflict, modeOK, modeUnavailable}, -1, time.Minute)
	series := testSeries(4, 3)
	stats, err := c.router.Write(context.Background(), Batch{Tenant: "t", Series: series})
	require.NoError(t, err)
	require.Len(t, stats.Rejected, 4)
	for i, rj := range stats.Rejected {
		require.Equal(t, i, rj.Series)
		require.Equal(t, 1, rj.Count)
	}
	require.Equal(t, 8, stats.Appended[write.KindFloat])
}

// TestRouterDoesNotUseSeriesAfterReturn: the caller reuses the request's memory as soon as Write
// returns (the handler's pooled request); a straggler must still send the original series.
func TestRouterDoesNotUseSeriesAfterReturn(t *testing.T) {
	c := newCluster(t, 3, []string{modeOK, modeSlow, modeOK}, 0, time.Minute)
	series := testSeries(30, 2)
	want := cloneSeries(series)
	// The client gives up while the slow replica is still writing: that forward outlives Write.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-c.nodes[1].entered
		cancel()
	}()
	// The answer is a success when the two other replicas made the quorum before the cancel was seen,
	// else a 503; either way the slow forward is still running.
	_, err := c.router.Write(ctx, Batch{Tenant: "t", Series: series})
	if err != nil {
		require.ErrorIs(t, err, context.Canceled)
	}
	for i := range series { // scribble over everything the router was given
		for j := range series[i].Labels {
			series[i].Labels[j] = prompb.Label{Name: "x", Value: "scribbled"}
		}
		for j := range series[i].Samples {
			series[i].Samples[j] = prompb.Sample{}
		}
	}
	c.releaseAll()
	c.router.Close()
	require.ElementsMatch(t, want, c.nodes[1].series())
}

// TestRouterRequestCancelled: a client that goes away gets its answer at once; the forwards in flight
// end at the forward timeout, and Close waits for them.
func TestRouterRequestCancelled(t *testing.T) {
	c := newCluster(t, 3, []string{modeHang, modeHang, modeOK}, -1, 300*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-c.nodes[0].entered
		cancel()
	}()
	_, err := c.router.Write(ctx, Batch{Tenant: "t", Series: testSeries(5, 1)})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, ClassUnavailable, ClassOf(err))
	require.Equal(t, 1.0, counterValue(t, c.reg, "weir_quorum_failures_total", "reason=canceled"))
	c.router.Close()
	require.Equal(t, 1.0, counterValue(t, c.reg, "weir_forward_requests_total", "endpoint=node-0:10901,result=timeout"))
}

// TestRouterForwardTimeout: replicas that never answer cost the client the forward timeout, not more.
func TestRouterForwardTimeout(t *testing.T) {
	c := newCluster(t, 3, []string{modeHang, modeOK, modeHang}, 1, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, err := c.router.Write(ctx, Batch{Tenant: "t", Series: testSeries(5, 1)})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, http.StatusServiceUnavailable, StatusCode(err))
	require.Equal(t, 1.0, counterValue(t, c.reg, "weir_quorum_failures_total", "reason=timeout"))
}

// TestRouterRingErrors: no ring, or a ring that cannot place RF replicas, is a 503 naming the reason.
func TestRouterRingErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	noRing := func(string) (hashring.Ring, error) { return nil, ErrNoRing }
	r, err := NewRouter(RouterConfig{ReplicationFactor: 1, ForwardTimeout: time.Second}, noRing, nil, &fakePeers{}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	_, err = r.Write(context.Background(), Batch{Tenant: "t", Series: testSeries(1, 1)})
	require.ErrorIs(t, err, ErrNoRing)
	require.Equal(t, http.StatusServiceUnavailable, StatusCode(err))
	require.Equal(t, 1.0, counterValue(t, reg, "weir_quorum_failures_total", "reason=no_ring"))
	r.Close()

	ring, err := hashring.NewKetama([]hashring.Endpoint{{Address: "a:1"}, {Address: "b:1"}}, 10, 1)
	require.NoError(t, err)
	reg = prometheus.NewRegistry()
	r, err = NewRouter(RouterConfig{ReplicationFactor: 3, ForwardTimeout: time.Second}, func(string) (hashring.Ring, error) { return ring, nil },
		nil, &fakePeers{}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	_, err = r.Write(context.Background(), Batch{Tenant: "t", Series: testSeries(1, 1)})
	require.ErrorIs(t, err, hashring.ErrNotEnoughEndpoints)
	require.Equal(t, http.StatusServiceUnavailable, StatusCode(err))
	require.Equal(t, 1.0, counterValue(t, reg, "weir_quorum_failures_total", "reason=ring"))
	r.Close()

	// Nothing to write: no ring needed.
	stats, err := r.Write(context.Background(), Batch{Tenant: "t", Series: nil})
	require.NoError(t, err)
	require.Equal(t, write.Stats{}, stats)
}

type snapshotSource struct{ snap *hashring.Snapshot }

func (s snapshotSource) Current() *hashring.Snapshot { return s.snap }

func TestRingsFrom(t *testing.T) {
	_, err := RingsFrom(snapshotSource{})("t")
	require.ErrorIs(t, err, ErrNoRing)

	rings, err := hashring.Load([]byte(`[{"hashring": "a", "tenants": ["t"], "endpoints": ["x:1"]}]`), hashring.Options{})
	require.NoError(t, err)
	get := RingsFrom(snapshotSource{&hashring.Snapshot{Rings: rings, Version: 1}})
	ring, err := get("t")
	require.NoError(t, err)
	require.Equal(t, []hashring.Endpoint{{Address: "x:1"}}, ring.Endpoints())
	_, err = get("other")
	require.ErrorIs(t, err, hashring.ErrNoHashring)
}

func TestRouterClosed(t *testing.T) {
	c := newCluster(t, 1, []string{modeOK}, -1, time.Second)
	c.router.Close()
	_, err := c.router.Write(context.Background(), Batch{Tenant: "t", Series: testSeries(1, 1)})
	require.Equal(t, ClassUnavailable, ClassOf(err))
	c.router.Close() // idempotent
}

func TestNewRouterValidates(t *testing.T) {
	ring := func(string) (hashring.Ring, error) { return nil, ErrNoRing }
	logger, reg := slog.New(slog.DiscardHandler), prometheus.NewRegistry()
	for _, cfg := range []RouterConfig{
		{ReplicationFactor: 0, ForwardTimeout: time.Second},
		{ReplicationFactor: 256, ForwardTimeout: time.Second},
		{ReplicationFactor: 1},
	} {
		_, err := NewRouter(cfg, ring, nil, &fakePeers{}, logger, reg)
		require.Error(t, err, "%+v", cfg)
	}
	_, err := NewRouter(RouterConfig{ReplicationFactor: 1, ForwardTimeout: time.Second, LocalEndpoint: "a:1"}, ring, nil, &fakePeers{}, logger, reg)
	require.ErrorContains(t, err, "without local storage")
	_, err = NewRouter(RouterConfig{ReplicationFactor: 1, ForwardTimeout: time.Second}, ring, nil, nil, logger, reg)
	require.Error(t, err)
}

func TestForwardResult(t *testing.T) {
	for want, err := range map[string]error{
		"success":     nil,
		"down":        &Error{Class: ClassUnavailable, Err: fmt.Errorf("x: %w", ErrEndpointDown)},
		"overloaded":  &Error{Class: ClassUnavailable, Err: fmt.Errorf("x: %w", ErrOverloaded)},
		"timeout":     fmt.Errorf("x: %w", context.DeadlineExceeded),
		"invalid":     errorf(ClassInvalid, "bad"),
		"unavailable": tenant.ErrUnavailable,
		"error":       errors.New("disk on fire"),
	} {
		require.Equal(t, want, forwardResult(err))
	}
}

// TestRouterRingChanges: each request uses the ring of its own lookup, and pooled state sized for one
// ring is reused correctly with rings of other sizes, also by concurrent requests.
func TestRouterRingChanges(t *testing.T) {
	nodes := map[string]*fakeNode{}
	var rings []hashring.Ring
	for _, size := range []int{3, 7, 4} {
		var eps []hashring.Endpoint
		for i := range size {
			addr := fmt.Sprintf("n%d:1", i)
			if nodes[addr] == nil {
				nodes[addr] = newFakeNode(addr, modeOK)
			}
			eps = append(eps, hashring.Endpoint{Address: addr})
		}
		ring, err := hashring.NewKetama(eps, 50, 2)
		require.NoError(t, err)
		rings = append(rings, ring)
	}
	var calls atomic.Int64
	r, err := NewRouter(RouterConfig{ReplicationFactor: 2, ForwardTimeout: time.Minute},
		func(string) (hashring.Ring, error) { return rings[int(calls.Add(1))%len(rings)], nil },
		nil, &fakePeers{nodes: nodes}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for w := range 30 {
		wg.Go(func() {
			series := testSeries(20+w, 1)
			for i := range series {
				series[i].Labels = append(series[i].Labels, prompb.Label{Name: "writer", Value: fmt.Sprint(w)})
			}
			stats, err := r.Write(context.Background(), Batch{Tenant: "t", Series: series})
			if err == nil && stats.Appended[write.KindFloat] != len(series) {
				err = fmt.Errorf("writer %d: %d appended, want %d", w, stats.Appended[write.KindFloat], len(series))
			}
			errs <- err
		})
	}
	wg.Wait()
	r.Close()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	copies := map[string]int{}
	for _, n := range nodes {
		for _, ts := range n.series() {
			copies[seriesKey(ts)]++
		}
	}
	want := 0
	for w := range 30 {
		want += 20 + w
	}
	require.Len(t, copies, want)
	for k, n := range copies {
		require.Equal(t, 2, n, k)
	}
}
