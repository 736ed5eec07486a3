package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/write"
)

// Modes of a fake node: how it answers every write.
const (
	modeOK          = "ok"          // writes everything
	modeConflict    = "conflict"    // refuses the first sample of every series as out of order
	modeInvalid     = "invalid"     // refuses the whole write as invalid (gRPC InvalidArgument)
	modeUnavailable = "unavailable" // fails as unavailable
	modeTimeout     = "timeout"     // fails as a timed-out forward
	modeSlow        = "slow"        // writes everything, once the test closes release
	modeHang        = "hang"        // never answers before its context ends
)

// fakeNode is an endpoint that answers as its mode says and records what it wrote. It serves both as
// a remote endpoint (through fakePeers) and as local storage (Write).
type fakeNode struct {
	addr    string
	mode    string
	release chan struct{} // modeSlow: closed by the test
	entered chan struct{} // receives once per write, when it starts (buffered)

	mu        sync.Mutex
	written   []prompb.TimeSeries // everything written, in order (copies)
	tenants   []string
	deadlines []time.Time
	// rejectSeries, when set, picks series whose first sample is refused even in modeOK.
	rejectSeries func(prompb.TimeSeries) bool
	// rejectExemplars refuses every exemplar (exemplar storage off), in any accepting mode.
	rejectExemplars bool
}

func newFakeNode(addr, mode string) *fakeNode {
	return &fakeNode{addr: addr, mode: mode, release: make(chan struct{}), entered: make(chan struct{}, 64)}
}

// Write implements TenantStorage (the local endpoint).
func (n *fakeNode) Write(ctx context.Context, tenantID string, series []prompb.TimeSeries, _ []write.SeriesExtra, _ []uint64) (write.Stats, error) {
	select {
	case n.entered <- struct{}{}:
	default:
	}
	switch n.mode {
	case modeSlow:
		<-n.release
	case modeHang:
		<-ctx.Done()
		return write.Stats{}, fmt.Errorf("write to %s: %w", n.addr, ctx.Err())
	case modeInvalid:
		return write.Stats{}, &Error{Class: ClassInvalid, Err: status.Error(codes.InvalidArgument, "refused")}
	case modeUnavailable:
		return write.Stats{}, &Error{Class: ClassUnavailable, Err: status.Error(codes.Unavailable, "node down")}
	case modeTimeout:
		return write.Stats{}, &Error{Class: ClassUnavailable, Err: status.Error(codes.DeadlineExceeded, "too slow")}
	}
	var st write.Stats
	for i, ts := range series {
		reject := n.mode == modeConflict || n.rejectSeries != nil && n.rejectSeries(ts)
		fs := len(ts.Samples)
		if reject && fs > 0 {
			st.Rejected = append(st.Rejected, write.Rejection{Series: i, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 1, Err: errors.New("out of order sample")})
			fs--
		}
		st.Appended[write.KindFloat] += fs
		st.Appended[write.KindHistogram] += len(ts.Histograms)
		if n.rejectExemplars && len(ts.Exemplars) > 0 {
			st.Rejected = append(st.Rejected, write.Rejection{Series: i, Kind: write.KindExemplar, Reason: write.ReasonExemplarsDisabled, Count: len(ts.Exemplars), Err: errors.New("exemplars disabled")})
		} else {
			st.Appended[write.KindExemplar] += len(ts.Exemplars)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.written = append(n.written, cloneSeries(series)...)
	n.tenants = append(n.tenants, tenantID)
	dl, _ := ctx.Deadline()
	n.deadlines = append(n.deadlines, dl)
	return st, nil
}

// series returns a copy of what n wrote.
func (n *fakeNode) series() []prompb.TimeSeries {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.written)
}

// fakePeers is a Forwarder over fake nodes, by address. It decodes every payload as an ingester would.
type fakePeers struct {
	t     testing.TB
	nodes map[string]*fakeNode
}

func (p *fakePeers) Forward(ctx context.Context, endpoint string, s Share) (write.Stats, error) {
	n, ok := p.nodes[endpoint]
	if !ok {
		return write.Stats{}, fmt.Errorf("no such endpoint %q", endpoint)
	}
	decode := DecodeRaw
	if s.Compressed {
		decode = DecodeBytes
	}
	req, err := decode(s.Payload, 64<<20)
	if err != nil {
		return write.Stats{}, fmt.Errorf("decode payload for %s: %w", endpoint, err)
	}
	defer req.Release()
	return n.Write(ctx, s.Tenant, req.Write.Timeseries, nil, s.Hashes)
}

// cluster is a set of fake nodes behind a router.
type cluster struct {
	router *Router
	reg    *prometheus.Registry
	ring   hashring.Ring
	nodes  []*fakeNode
	local  *fakeNode // nil when the router has no local endpoint
}

// newCluster builds a router over one fake node per mode (addresses node-0, node-1, …) on a ketama
// ring, with replication factor rf. local is the index of the local node, or -1.
func newCluster(t *testing.T, rf int, modes []string, local int, timeout time.Duration) *cluster {
	t.Helper()
	return newClusterWait(t, rf, modes, local, timeout, WaitAll)
}

// newClusterWait is newCluster with the router's replica wait policy.
func newClusterWait(t *testing.T, rf int, modes []string, local int, timeout time.Duration, wait ReplicaWait) *cluster {
	t.Helper()
	c := &cluster{reg: prometheus.NewRegistry()}
	peers := &fakePeers{t: t, nodes: map[string]*fakeNode{}}
	var eps []hashring.Endpoint
	for i, m := range modes {
		n := newFakeNode(fmt.Sprintf("node-%d:10901", i), m)
		c.nodes = append(c.nodes, n)
		eps = append(eps, hashring.Endpoint{Address: n.addr})
		if i == local {
			c.local = n
		} else {
			peers.nodes[n.addr] = n
		}
	}
	ring, err := hashring.NewKetama(eps, hashring.DefaultKetamaPoints, rf)
	require.NoError(t, err)
	c.ring = ring
	cfg := RouterConfig{ReplicationFactor: rf, ForwardTimeout: timeout, Wait: wait}
	var localStorage TenantStorage
	if c.local != nil {
		cfg.LocalEndpoint, localStorage = c.local.addr, c.local
	}
	c.router, err = NewRouter(cfg, func(string) (hashring.Ring, error) { return ring, nil }, localStorage, peers, slog.New(slog.DiscardHandler), c.reg)
	require.NoError(t, err)
	t.Cleanup(func() {
		c.releaseAll()
		c.router.Close()
	})
	return c
}

// releaseAll lets every slow node finish.
func (c *cluster) releaseAll() {
	for _, n := range c.nodes {
		select {
		case <-n.release:
		default:
			close(n.release)
		}
	}
}

// owners returns the addresses that own series ts of tenantID.
func (c *cluster) owners(t *testing.T, tenantID string, ts prompb.TimeSeries, rf int) []string {
	t.Helper()
	idx, err := c.ring.Owners(hashring.SeriesHash(tenantID, ts.Labels), rf, nil)
	require.NoError(t, err)
	var out []string
	for _, i := range idx {
		out = append(out, c.ring.Endpoints()[i].Address)
	}
	slices.Sort(out)
	return out
}

// testSeries returns n distinct valid series with sorted labels and k samples each.
func testSeries(n, k int) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, n)
	for i := range out {
		ts := make([]int64, k)
		for j := range ts {
			ts[j] = int64(1000 * (j + 1))
		}
		out[i] = prompb.TimeSeries{
			Labels:  lbls("__name__", "test_metric", "instance", fmt.Sprintf("host-%d:9100", i), "job", "node"),
			Samples: samples(ts...),
		}
	}
	return out
}

// seriesKey identifies a series by its labels.
func seriesKey(ts prompb.TimeSeries) string { return labelsString(ts.Labels) }

// counterValue reads one sample of a counter or gauge vector from reg; labels as "name=value,…" in
// name order.
func counterValue(t *testing.T, reg *prometheus.Registry, name, labels string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, lp := range m.GetLabel() {
				parts = append(parts, lp.GetName()+"="+lp.GetValue())
			}
			if joined := fmt.Sprint(parts); joined == fmt.Sprint(splitLabels(labels)) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func splitLabels(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
