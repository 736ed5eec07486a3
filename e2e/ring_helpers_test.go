package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/internal/testutil"
)

// Helpers of the hashring tests (ring_test.go): clusters of weir processes on loopback, the hashrings
// file they follow, a deterministic write load and the checks of what each node stored.

// ---------------------------------------------------------------------------------------------------
// Nodes and the hashrings file.

// hashringsJSON is a Thanos hashrings file with one default (tenant-less) hashring over endpoints.
// The algorithm is left to --receive.hashrings-algorithm.
func hashringsJSON(t testing.TB, endpoints ...string) []byte {
	t.Helper()
	b, err := json.Marshal([]map[string]any{{"hashring": "default", "endpoints": endpoints}})
	require.NoError(t, err)
	return b
}

// writeFileAtomic replaces path with data the way operators (and Kubernetes) do it: a temporary file
// in the same directory renamed over the old one, so a reader never sees half a file.
func writeFileAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	require.NoError(t, err)
	_, err = tmp.Write(data)
	require.NoError(t, err)
	require.NoError(t, tmp.Close())
	require.NoError(t, os.Rename(tmp.Name(), path))
}

// writeHashrings writes a hashrings file over endpoints (atomically) and returns its content.
func writeHashrings(t testing.TB, path string, endpoints ...string) []byte {
	t.Helper()
	data := hashringsJSON(t, endpoints...)
	writeFileAtomic(t, path, data)
	return data
}

// startIngester starts a node without a hashrings file (it stores every write it gets, on its remote
// write port or node-to-node on grpcAddr). The gRPC address is fixed by the caller, who has written
// it into a hashrings file, and is kept across restarts (extra arguments override the harness'); take
// it from testutil.LoopbackAddrs, which hands a port to no other test while this one may restart a
// node on it.
func startIngester(t testing.TB, grpcAddr string, extraArgs ...string) *weirNode {
	t.Helper()
	return startWeir(t, t.TempDir(), append([]string{"--grpc-address=" + grpcAddr}, extraArgs...)...)
}

// startIngesters starts one ingester per gRPC address.
func startIngesters(t testing.TB, grpcAddrs []string) []*weirNode {
	t.Helper()
	nodes := make([]*weirNode, len(grpcAddrs))
	for i, addr := range grpcAddrs {
		nodes[i] = startIngester(t, addr)
	}
	return nodes
}

// routerArgs are the flags of a node that routes with a hashrings file.
func routerArgs(file string, rf int, alg string, extra ...string) []string {
	return append([]string{
		"--receive.hashrings-file=" + file,
		"--receive.hashrings-algorithm=" + alg,
		"--receive.replication-factor=" + strconv.Itoa(rf),
		"--receive.forward-timeout=3s",
	}, extra...)
}

// startRouterIngesters starts one node per data directory, each both router and ingester of one ring
// (a hashrings file of their gRPC addresses, ketama, replication factor rf), with extraArgs appended.
func startRouterIngesters(t testing.TB, rf int, dirs []string, extraArgs ...string) []*weirNode {
	t.Helper()
	addrs := testutil.LoopbackAddrs(t, len(dirs))
	file := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, file, addrs...)
	nodes := make([]*weirNode, len(dirs))
	for i, dir := range dirs {
		args := append(routerArgs(file, rf, "ketama", "--receive.local-endpoint="+addrs[i], "--grpc-address="+addrs[i]), extraArgs...)
		nodes[i] = startWeir(t, dir, args...)
	}
	return nodes
}

// ringStatus is what a node answers on /api/v1/status/ring.
type ringStatus struct {
	ReplicationFactor int    `json:"replication_factor"`
	Quorum            int    `json:"quorum"`
	LocalEndpoint     string `json:"local_endpoint"`
	Version           uint64 `json:"version"`
	ConfigHash        string `json:"config_hash"`
	Error             string `json:"error"`
	Hashrings         []struct {
		Name      string `json:"name"`
		Algorithm string `json:"algorithm"`
		Endpoints []struct {
			Address string `json:"address"`
		} `json:"endpoints"`
	} `json:"hashrings"`
}

// endpoints lists the addresses of every hashring, in order.
func (s ringStatus) endpoints() []string {
	var out []string
	for _, h := range s.Hashrings {
		for _, e := range h.Endpoints {
			out = append(out, e.Address)
		}
	}
	return out
}

func getRingStatus(t testing.TB, n *weirNode) ringStatus {
	t.Helper()
	code, body := n.Get(t, "/api/v1/status/ring")
	require.Equal(t, http.StatusOK, code, "/api/v1/status/ring: %s", body)
	var st ringStatus
	require.NoError(t, json.Unmarshal([]byte(body), &st), "/api/v1/status/ring: %s", body)
	return st
}

// stopAll stops nodes cleanly (SIGTERM, exit 0), routers first so that forwards in flight finish
// while their ingesters still run.
func stopAll(nodes ...*weirNode) {
	for _, n := range nodes {
		n.t.Helper()
		n.Stop()
	}
}

// ---------------------------------------------------------------------------------------------------
// Load.

// ringLoad is a deterministic write load: request k of any tenant holds one sample for each of the
// series 0…series-1, at t0+k milliseconds, value k·1000+i for series i. A stored point thus says
// which request wrote it, and a point with any other value was never sent.
type ringLoad struct {
	t0     int64
	series int

	mu      sync.Mutex
	tenants map[string]*ringTenant
}

// ringTenant is what was sent for one tenant. Requests of a tenant are sent one after the other.
type ringTenant struct {
	next  int          // index of the next request
	codes map[int]int  // request → status code (0: transport error)
	acked map[int]bool // requests answered 2xx
}

func newRingLoad(series int) *ringLoad {
	return &ringLoad{t0: baseTime(), series: series, tenants: map[string]*ringTenant{}}
}

func (l *ringLoad) labels(i int) []string {
	return lbls("__name__", "e2e_ring", "job", "ring", "series", fmt.Sprintf("%03d", i))
}

func (l *ringLoad) seriesKey(i int) string { return key(l.labels(i)...) }

func (l *ringLoad) point(k, i int) sample {
	return sample{T: l.t0 + int64(k), V: float64(k)*1000 + float64(i)}
}

func (l *ringLoad) request(k int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, l.series)}
	for i := range l.series {
		p := l.point(k, i)
		req.Timeseries[i] = series(l.labels(i), smp(p.T, p.V))
	}
	return req
}

func (l *ringLoad) tenant(name string) *ringTenant {
	tn := l.tenants[name]
	if tn == nil {
		tn = &ringTenant{codes: map[int]int{}, acked: map[int]bool{}}
		l.tenants[name] = tn
	}
	return tn
}

// send posts tenant's next request to n and records the answer. It never fails the test (goroutines
// use it): a transport error is returned, with code 0 recorded. Calls for one tenant must not overlap.
func (l *ringLoad) send(n *weirNode, tenantID string) (int, response, error) {
	l.mu.Lock()
	tn := l.tenant(tenantID)
	k := tn.next
	tn.next++
	l.mu.Unlock()

	b, err := l.request(k).Marshal()
	if err != nil {
		return k, response{}, err
	}
	r, err := post(n.client, n.RemoteWriteURL, bytes.NewReader(snappy.Encode(nil, b)), rwHeaders("THANOS-TENANT", tenantID))

	l.mu.Lock()
	defer l.mu.Unlock()
	tn.codes[k] = r.Code // 0 on a transport error
	if err == nil && r.Code/100 == 2 {
		tn.acked[k] = true
	}
	return k, r, err
}

// mustSend sends and requires status code want.
func (l *ringLoad) mustSend(t testing.TB, n *weirNode, tenantID string, want int) response {
	t.Helper()
	k, r, err := l.send(n, tenantID)
	require.NoError(t, err, "tenant %s request %d", tenantID, k)
	require.Equal(t, want, r.Code, "tenant %s request %d: %s", tenantID, k, r)
	return r
}

// ackedRequests returns the acknowledged requests of tenantID, ascending, and how many were sent.
func (l *ringLoad) ackedRequests(tenantID string) (acked []int, sent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tn := l.tenant(tenantID)
	for k := range tn.acked {
		acked = append(acked, k)
	}
	slices.Sort(acked)
	return acked, tn.next
}

// tenantNames returns the tenants written to, sorted.
func (l *ringLoad) tenantNames() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	for name := range l.tenants {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// want is every point of the requests ks, by series.
func (l *ringLoad) want(ks []int) map[string][]sample {
	out := map[string][]sample{}
	for i := range l.series {
		pts := make([]sample, 0, len(ks))
		for _, k := range ks {
			pts = append(pts, l.point(k, i))
		}
		out[l.seriesKey(i)] = pts
	}
	return out
}

// ---------------------------------------------------------------------------------------------------
// Checking what the nodes stored.

// readNode reads tenantID's TSDB on a stopped node; an empty map when the node has none.
func readNode(t testing.TB, n *weirNode, tenantID string) map[string][]sample {
	t.Helper()
	if _, err := os.Stat(filepath.Join(n.Dir, tenantID)); os.IsNotExist(err) {
		return map[string][]sample{}
	}
	return readTenant(t, n.Dir, tenantID)
}

// checkSent requires every point stored on a node to be one that was sent: a known series, a request
// that was sent, the value of that request.
func (l *ringLoad) checkSent(t testing.TB, node string, tenantID string, got map[string][]sample) {
	t.Helper()
	_, sent := l.ackedRequests(tenantID)
	seriesIdx := map[string]int{}
	for i := range l.series {
		seriesIdx[l.seriesKey(i)] = i
	}
	for s, pts := range got {
		i, ok := seriesIdx[s]
		require.True(t, ok, "%s, tenant %s: unknown series %s", node, tenantID, s)
		for _, p := range pts {
			k := int(p.T - l.t0)
			require.True(t, k >= 0 && k < sent, "%s, tenant %s, series %s: point %s of a request never sent (%d sent)", node, tenantID, s, p, sent)
			require.Equal(t, l.point(k, i), p, "%s, tenant %s, series %s: value of request %d", node, tenantID, s, k)
		}
	}
}

// copies counts, for every series i and request k, the nodes (indexes into stored) holding the point.
func (l *ringLoad) holders(stored []map[string][]sample, i, k int) []int {
	want := l.point(k, i)
	var on []int
	for j, got := range stored {
		if _, found := slices.BinarySearchFunc(got[l.seriesKey(i)], want.T, func(s sample, ts int64) int {
			return int(s.T - ts)
		}); found {
			on = append(on, j)
		}
	}
	return on
}

// blockDirs lists the TSDB blocks (directories with a meta.json) of a tenant on a node.
func blockDirs(t testing.TB, n *weirNode, tenantID string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.Dir, tenantID))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var blocks []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(n.Dir, tenantID, e.Name(), "meta.json")); err == nil {
			blocks = append(blocks, e.Name())
		}
	}
	return blocks
}

// ringOwners loads a hashrings file as the nodes do and returns, per series of l, the indexes into
// nodes (the gRPC addresses of the nodes, in the order the test keeps them) of the rf endpoints that
// own it for tenantID.
func (l *ringLoad) ringOwners(t testing.TB, file []byte, alg string, rf int, tenantID string, nodes []string) [][]int {
	t.Helper()
	rings, err := hashring.Load(file, hashring.Options{DefaultAlgorithm: hashring.Algorithm(alg), ReplicationFactor: rf})
	require.NoError(t, err)
	ring, _, err := rings.For(tenantID)
	require.NoError(t, err)
	eps := ring.Endpoints()
	out := make([][]int, l.series)
	for i := range l.series {
		ts := series(l.labels(i))
		owners, err := ring.Owners(hashring.SeriesHash(tenantID, ts.Labels), rf, nil)
		require.NoError(t, err)
		for _, o := range owners {
			j := slices.Index(nodes, eps[o].Address)
			require.GreaterOrEqual(t, j, 0, "endpoint %s is no node", eps[o].Address)
			out[i] = append(out[i], j)
		}
	}
	return out
}

// requireSameSeries requires got to hold exactly the series and points of want. On a difference it
// reports how many points are missing and extra in total, and the first differing series (rather than
// printing both maps whole).
func requireSameSeries(t testing.TB, what string, want, got map[string][]sample) {
	t.Helper()
	var missing, extra, points, diffSeries int
	var example string
	for _, s := range slices.Sorted(maps.Keys(want)) {
		w := want[s]
		points += len(w)
		g := got[s]
		if slices.Equal(w, g) {
			continue
		}
		diffSeries++
		have := map[sample]bool{}
		for _, p := range g {
			have[p] = true
		}
		var lost []string
		for _, p := range w {
			if !have[p] {
				missing++
				lost = append(lost, p.String())
			}
			delete(have, p)
		}
		extra += len(have)
		if example == "" {
			example = fmt.Sprintf("series %s has %d points, want %d; missing %v", s, len(g), len(w), lost)
		}
	}
	for s, g := range got {
		if _, ok := want[s]; !ok {
			diffSeries++
			extra += len(g)
			if example == "" {
				example = fmt.Sprintf("unexpected series %s", s)
			}
		}
	}
	if diffSeries > 0 {
		t.Fatalf("%s: %d of %d series differ: %d of %d points missing, %d extra; first: %s", what, diffSeries, len(want), missing, points, extra, example)
	}
}

// readAll reads tenantID on every (stopped) node and checks that each holds only points that were sent.
func (l *ringLoad) readAll(t testing.TB, nodes []*weirNode, tenantID string) []map[string][]sample {
	t.Helper()
	stored := make([]map[string][]sample, len(nodes))
	for j, n := range nodes {
		stored[j] = readNode(t, n, tenantID)
		l.checkSent(t, fmt.Sprintf("node %d", j), tenantID, stored[j])
	}
	return stored
}

// requireCopies requires every point of the acknowledged requests of tenantID to be, with its exact
// value, on at least atLeast of the nodes whose data is stored.
func (l *ringLoad) requireCopies(t testing.TB, tenantID string, stored []map[string][]sample, atLeast int) {
	t.Helper()
	acked, _ := l.ackedRequests(tenantID)
	require.NotEmpty(t, acked, "tenant %s: nothing acknowledged", tenantID)
	for _, k := range acked {
		for i := range l.series {
			on := l.holders(stored, i, k)
			require.GreaterOrEqual(t, len(on), atLeast, "tenant %s, series %s, acknowledged request %d: point %s only on nodes %v",
				tenantID, l.seriesKey(i), k, l.point(k, i), on)
		}
	}
}
