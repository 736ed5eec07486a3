package e2e

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// End-to-end tests of hashrings, replication and write quorum with real weir processes on loopback.
// Every node's gRPC address is chosen before the hashrings file is written (the file lists them) and
// kept across restarts (nodeAddrs); the harness picks the other ports. With RF=3 the quorum is 2.

// TestRingRouterReplicatesToIngesters: a router that stores nothing in front of three ingesters,
// RF=3, ketama. Three tenants write concurrently through the router; every request is answered 204.
// After a clean stop every ingester holds every series of every tenant with exactly the points sent
// (each series on exactly RF=3 nodes, identical), and the router holds no tenant at all.
//
//	client ──HTTP──▶ router (no TSDB) ──gRPC──┬──▶ ingester 0
//	                 RF=3, ketama             ├──▶ ingester 1
//	                                          └──▶ ingester 2
func TestRingRouterReplicatesToIngesters(t *testing.T) {
	t.Parallel()
	grpcAddrs := testutil.LoopbackAddrs(t, 3)
	file := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, file, grpcAddrs...)
	ingesters := startIngesters(t, grpcAddrs)
	router := startWeir(t, t.TempDir(), routerArgs(file, 3, "ketama")...)

	st := getRingStatus(t, router)
	require.Equal(t, 3, st.ReplicationFactor)
	require.Equal(t, 2, st.Quorum)
	require.Empty(t, st.LocalEndpoint)
	require.Equal(t, uint64(1), st.Version)
	require.NotEmpty(t, st.ConfigHash)
	require.Empty(t, st.Error)
	require.ElementsMatch(t, grpcAddrs, st.endpoints())

	l := newRingLoad(100)
	tenants := []string{"ring-a", "ring-b", "ring-c"}
	const requests = 20
	require.NoError(t, sendAll(l, tenants, requests, func(int, int) *weirNode { return router }))

	failures, ok := router.Metric(t, "weir_quorum_failures_total")
	require.True(t, ok)
	require.Zero(t, failures)

	stopAll(append([]*weirNode{router}, ingesters...)...)
	require.Empty(t, tenantDirs(t, router.Dir), "a router without --receive.local-endpoint stores nothing")
	for _, tn := range tenants {
		acked, sent := l.ackedRequests(tn)
		require.Len(t, acked, requests)
		require.Equal(t, requests, sent)
		stored := l.readAll(t, ingesters, tn)
		l.requireCopies(t, tn, stored, 2) // the quorum: implied by the check below, but a clearer failure
		want := l.want(acked)
		for j := range ingesters {
			requireSameSeries(t, fmt.Sprintf("ingester %d, tenant %s", j, tn), want, stored[j])
		}
	}
}

// TestRingRouterIngesterNodes: three nodes that are router and ingester at once, RF=3, hashmod, each
// with --receive.local-endpoint set to its own gRPC address (its share is written locally). Each
// tenant's requests go to the three nodes in turn; every request is answered 204, and after a clean
// stop every node holds every series with exactly the points sent. Each node: router + ingester, local
// endpoint = its own --grpc-address; RF=3, hashmod; one node forwards uncompressed.
//
//	client: request k of tenant j to node (j+k) mod 3
//	     ╱                  │                  ╲
//	node 0 ◀────gRPC────▶ node 1 ◀────gRPC────▶ node 2
//	  ▲──────────────────gRPC────────────────────▲
func TestRingRouterIngesterNodes(t *testing.T) {
	t.Parallel()
	grpcAddrs := testutil.LoopbackAddrs(t, 3)
	file := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, file, grpcAddrs...)
	// Node 1 forwards uncompressed frames, the others snappy: every ingester gets both kinds, as in a
	// cluster that is switching --receive.grpc-compression. Node 0 has 2 write slots.
	extra := [][]string{{"--receive.write-slots=2"}, {"--receive.grpc-compression=none"}, nil}
	nodes := make([]*weirNode, 3)
	for i, addr := range grpcAddrs {
		args := append([]string{"--grpc-address=" + addr, "--receive.local-endpoint=" + addr}, extra[i]...)
		nodes[i] = startWeir(t, t.TempDir(), routerArgs(file, 3, "hashmod", args...)...)
	}
	slots, ok := nodes[0].Metric(t, "weir_write_slots")
	require.True(t, ok, "weir_write_slots")
	require.Equal(t, 2.0, slots)
	var hash string
	for i, n := range nodes {
		st := getRingStatus(t, n)
		require.Equal(t, grpcAddrs[i], st.LocalEndpoint, "node %d", i)
		require.Equal(t, 3, st.ReplicationFactor)
		require.Equal(t, 2, st.Quorum)
		require.ElementsMatch(t, grpcAddrs, st.endpoints(), "node %d", i)
		if i == 0 {
			hash = st.ConfigHash
		}
		require.Equal(t, hash, st.ConfigHash, "node %d: the same file has the same hash everywhere", i)
	}

	l := newRingLoad(100)
	tenants := []string{"both-a", "both-b", "both-c"}
	const requests = 21
	require.NoError(t, sendAll(l, tenants, requests, func(j, k int) *weirNode { return nodes[(j+k)%3] }))

	stopAll(nodes...)
	for _, tn := range tenants {
		acked, _ := l.ackedRequests(tn)
		require.Len(t, acked, requests)
		stored := l.readAll(t, nodes, tn)
		l.requireCopies(t, tn, stored, 2)
		want := l.want(acked)
		for j := range nodes {
			requireSameSeries(t, fmt.Sprintf("node %d, tenant %s", j, tn), want, stored[j])
		}
	}
}

// TestRingQuorumWithKilledIngesters: router + three ingesters, RF=3 (quorum 2). With one ingester
// SIGKILLed writes are still answered 204; with two, 503 with Retry-After and a body that names the
// missed quorum; once both are restarted (same data directory and gRPC address) writes are answered
// 204 again. After a clean stop every acknowledged point is, with its exact value, on at least two of
// the three ingesters, and no node holds a point that was never sent.
//
//	client ──▶ router ──gRPC──┬──▶ ingester 0   SIGKILL first  ─┐
//	           RF=3, ketama   ├──▶ ingester 1   SIGKILL second ─┴─ restarted together
//	                          └──▶ ingester 2   always up
func TestRingQuorumWithKilledIngesters(t *testing.T) {
	t.Parallel()
	grpcAddrs := testutil.LoopbackAddrs(t, 3)
	file := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, file, grpcAddrs...)
	ingesters := startIngesters(t, grpcAddrs)
	router := startWeir(t, t.TempDir(), routerArgs(file, 3, "ketama")...)

	l := newRingLoad(60)
	tenants := []string{"kill-a", "kill-b"}
	sendEach := func(times, want int) {
		t.Helper()
		for range times {
			for _, tn := range tenants {
				l.mustSend(t, router, tn, want)
			}
		}
	}

	sendEach(5, http.StatusNoContent) // all up

	ingesters[0].Kill()
	sendEach(5, http.StatusNoContent) // 2 of 3: quorum

	ingesters[1].Kill()
	for range 3 { // 1 of 3: no quorum
		for _, tn := range tenants {
			r := l.mustSend(t, router, tn, http.StatusServiceUnavailable)
			require.NotEmpty(t, r.Header.Get("Retry-After"), "503 without Retry-After: %s", r)
			require.Contains(t, r.Body, "quorum", "the 503 names the missed quorum")
		}
	}
	failures, ok := router.Metric(t, "weir_quorum_failures_total")
	require.True(t, ok)
	require.GreaterOrEqual(t, failures, float64(3*len(tenants)))

	ingesters[0].Restart()
	ingesters[1].Restart()
	restarted := time.Now()
	for _, tn := range tenants {
		waitFor(t, 30*time.Second, "writes of "+tn+" acknowledged again after the restarts", func() error {
			k, r, err := l.send(router, tn)
			if err != nil {
				return err
			}
			if r.Code != http.StatusNoContent {
				return fmt.Errorf("request %d: %s", k, r)
			}
			return nil
		})
	}
	t.Logf("writes acknowledged again %s after both ingesters were ready", time.Since(restarted).Round(time.Millisecond))
	sendEach(5, http.StatusNoContent)

	stopAll(append([]*weirNode{router}, ingesters...)...)
	for _, tn := range tenants {
		acked, sent := l.ackedRequests(tn)
		t.Logf("tenant %s: %d of %d requests acknowledged", tn, len(acked), sent)
		l.requireCopies(t, tn, l.readAll(t, ingesters, tn), 2)
	}
}

// TestRingGrowsUnderLoad: router + three ingesters, RF=3, ketama; one sender per tenant writes
// continuously. A fourth ingester is started, then the hashrings file is rewritten (temporary file
// renamed over it) to list four endpoints. Asserted:
//   - no request is answered 4xx or fails in transport; 5xx only within 10 s of the rewrite (counted);
//   - the router's /api/v1/status/ring shows the new version, hash and four endpoints;
//   - no node turns unready at any point of the change (every /-/ready polled throughout), and no
//     head was cut into a block (a ring change flushes nothing);
//   - after a clean stop, every acknowledged point is on at least 2 nodes with its exact value: for a
//     request answered before the rewrite, on 2 of the 3 old nodes and not on the new one; for a
//     request sent after the router showed the new ring, on 2 of the series' 3 owners in that ring
//     (placement computed with the hashring package) and on no other node.
//
// Topology:
//
//	                        before                       after the rewrite
//	sender ──▶ router ──┬──▶ ingester 0            ──┬──▶ ingester 0
//	           RF=3     ├──▶ ingester 1              ├──▶ ingester 1
//	           ketama   └──▶ ingester 2              ├──▶ ingester 2
//	                         ingester 3 (ready, idle)└──▶ ingester 3
func TestRingGrowsUnderLoad(t *testing.T) {
	t.Parallel()
	const alg, rf = "ketama", 3
	grpcAddrs := testutil.LoopbackAddrs(t, 4)
	file := filepath.Join(t.TempDir(), "hashrings.json")
	oldFile := writeHashrings(t, file, grpcAddrs[:3]...)
	ingesters := startIngesters(t, grpcAddrs[:3])
	router := startWeir(t, t.TempDir(), routerArgs(file, rf, alg)...)
	before := getRingStatus(t, router)
	require.Equal(t, uint64(1), before.Version)

	l := newRingLoad(50)
	tenants := []string{"grow-a", "grow-b"}
	g := startGrowLoad(l, router, tenants)
	defer g.stop()
	g.waitAcked(t, 0, 20)

	ingesters = append(ingesters, startIngester(t, grpcAddrs[3]))
	readyChecks := pollReady(append([]*weirNode{router}, ingesters...))
	defer readyChecks.stop()

	g.phase.Store(phaseChanging)
	changedAt := time.Now()
	newFile := writeHashrings(t, file, grpcAddrs...)
	waitFor(t, 30*time.Second, "the router to load the new hashrings file", func() error {
		st := getRingStatus(t, router)
		if st.Version != 2 || len(st.endpoints()) != 4 {
			return fmt.Errorf("version %d, endpoints %v (error %q)", st.Version, st.endpoints(), st.Error)
		}
		return nil
	})
	t.Logf("new ring serving %s after the rewrite", time.Since(changedAt).Round(time.Millisecond))
	g.phase.Store(phaseChanged)
	after := getRingStatus(t, router)
	require.ElementsMatch(t, grpcAddrs, after.endpoints())
	require.NotEqual(t, before.ConfigHash, after.ConfigHash)
	require.Empty(t, after.Error)
	g.waitAcked(t, phaseChanged, 30)

	g.stop()
	readyChecks.stop()
	require.Empty(t, readyChecks.failures(), "a node turned unready while the ring changed")
	for j, n := range ingesters {
		for _, tn := range tenants {
			require.Empty(t, blockDirs(t, n, tn), "ingester %d, tenant %s: a head was cut into a block", j, tn)
		}
	}

	// Answers: only 2xx, but for 5xx shortly after the rewrite.
	var n5xx int
	for _, a := range g.answers() {
		switch {
		case a.err != nil:
			t.Fatalf("tenant %s request %d: transport error %v", a.tenant, a.k, a.err)
		case a.code/100 == 2:
		case a.code/100 == 5:
			n5xx++
			require.True(t, a.start.After(changedAt) && a.start.Before(changedAt.Add(10*time.Second)),
				"tenant %s request %d answered %d at %s, %s after the rewrite: %s", a.tenant, a.k, a.code, a.start.Format(time.RFC3339Nano), a.start.Sub(changedAt), a.body)
		default:
			t.Fatalf("tenant %s request %d answered %d: %s", a.tenant, a.k, a.code, a.body)
		}
	}
	t.Logf("%d requests, %d answered 5xx", len(g.answers()), n5xx)

	stopAll(append([]*weirNode{router}, ingesters...)...)
	for _, tn := range tenants {
		oldOwners := l.ringOwners(t, oldFile, alg, rf, tn, grpcAddrs)
		newOwners := l.ringOwners(t, newFile, alg, rf, tn, grpcAddrs)
		stored := l.readAll(t, ingesters, tn)
		var oldRing, newRing, between, onAllOwners int
		for _, a := range g.answers() {
			if a.tenant != tn || a.code/100 != 2 {
				continue
			}
			for i := range l.series {
				on := l.holders(stored, i, a.k)
				what := fmt.Sprintf("tenant %s, series %s, acknowledged request %d: point %s on ingesters %v", tn, l.seriesKey(i), a.k, l.point(a.k, i), on)
				require.GreaterOrEqual(t, len(on), 2, what)
				switch {
				case a.endPhase == phaseBefore:
					oldRing++
					require.Subset(t, oldOwners[i], on, "%s: old owners %v", what, oldOwners[i])
					if len(on) == rf {
						onAllOwners++
					}
				case a.startPhase == phaseChanged:
					newRing++
					require.Subset(t, newOwners[i], on, "%s: new owners %v", what, newOwners[i])
					if len(on) == rf {
						onAllOwners++
					}
				default:
					between++
				}
			}
		}
		t.Logf("tenant %s: acknowledged points written with the old ring %d, the new ring %d, during the change %d; on all %d owners: %d of %d",
			tn, oldRing, newRing, between, rf, onAllOwners, oldRing+newRing)
		require.NotZero(t, newRing)
		require.NotEmpty(t, stored[3], "ingester 3 got no series of %s", tn)
	}
}

// TestRingDegradedStart: routers whose hashrings file is unusable at start still start (healthy and
// ready) and answer remote write with 503, Retry-After and the reason: router A's file lists 2
// endpoints for RF=3, router B's file does not exist. Once the files are fixed (3 endpoints) both
// pick them up and writes are answered 204. A broken file written afterwards is refused and the last
// good ring keeps serving (writes still 204, the status names the error).
//
//	router A: file lists ingesters 0, 1 (RF=3)  ──┐   503 until the files list 0, 1, 2;
//	router B: file missing              (RF=3)  ──┤   then 204
//	                                              └──gRPC──▶ ingesters 0, 1, 2
func TestRingDegradedStart(t *testing.T) {
	t.Parallel()
	grpcAddrs := testutil.LoopbackAddrs(t, 3)
	ingesters := startIngesters(t, grpcAddrs)
	fileA := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, fileA, grpcAddrs[:2]...)
	fileB := filepath.Join(t.TempDir(), "hashrings.json")
	routerA := startWeir(t, t.TempDir(), routerArgs(fileA, 3, "hashmod")...)
	routerB := startWeir(t, t.TempDir(), routerArgs(fileB, 3, "hashmod")...)

	l := newRingLoad(30)
	for _, c := range []struct {
		name   string
		router *weirNode
		tenant string
		reason string
	}{
		{"A (2 endpoints, RF=3)", routerA, "degraded-a", "replication factor"},
		{"B (no file)", routerB, "degraded-b", "no such file"},
	} {
		code, body := c.router.Get(t, "/-/healthy")
		require.Equal(t, http.StatusOK, code, "router %s /-/healthy: %s", c.name, body)
		for range 2 {
			r := l.mustSend(t, c.router, c.tenant, http.StatusServiceUnavailable)
			require.NotEmpty(t, r.Header.Get("Retry-After"), "router %s: 503 without Retry-After: %s", c.name, r)
			require.Contains(t, r.Body, c.reason, "router %s: the 503 names the reason", c.name)
		}
		st := getRingStatus(t, c.router)
		require.Zero(t, st.Version, "router %s", c.name)
		require.Contains(t, st.Error, c.reason, "router %s: the status names the reason", c.name)
	}

	writeHashrings(t, fileA, grpcAddrs...)
	writeHashrings(t, fileB, grpcAddrs...)
	for _, c := range []struct {
		router *weirNode
		tenant string
	}{{routerA, "degraded-a"}, {routerB, "degraded-b"}} {
		waitFor(t, 30*time.Second, "writes of "+c.tenant+" acknowledged once the file is fixed", func() error {
			k, r, err := l.send(c.router, c.tenant)
			if err != nil {
				return err
			}
			if r.Code != http.StatusNoContent {
				return fmt.Errorf("request %d: %s", k, r)
			}
			return nil
		})
		st := getRingStatus(t, c.router)
		require.Equal(t, uint64(1), st.Version)
		require.ElementsMatch(t, grpcAddrs, st.endpoints())
		require.Empty(t, st.Error)
	}

	// A bad file is refused; the last good ring keeps serving.
	writeFileAtomic(t, fileA, []byte(`[{"hashring": "default", "endpoints": [`))
	waitFor(t, 30*time.Second, "router A to refuse the broken file", func() error {
		if st := getRingStatus(t, routerA); st.Error == "" {
			return errors.New("no error in the status yet")
		}
		return nil
	})
	st := getRingStatus(t, routerA)
	require.Equal(t, uint64(1), st.Version)
	require.ElementsMatch(t, grpcAddrs, st.endpoints())
	for range 3 {
		l.mustSend(t, routerA, "degraded-a", http.StatusNoContent)
	}
	code, _ := routerA.Get(t, "/-/ready")
	require.Equal(t, http.StatusOK, code)

	stopAll(routerA, routerB)
	stopAll(ingesters...)
	for _, tn := range l.tenantNames() {
		l.requireCopies(t, tn, l.readAll(t, ingesters, tn), 2)
	}
}

// ---------------------------------------------------------------------------------------------------
// Load helpers of these tests.

// sendAll sends requests requests per tenant, tenants concurrently (each tenant's requests one after
// the other, request k of tenant j to node(j, k)), and returns the first answer that was not 204.
func sendAll(l *ringLoad, tenants []string, requests int, node func(j, k int) *weirNode) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for j, tn := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range requests {
				n := node(j, k)
				k, r, err := l.send(n, tn)
				if err == nil && r.Code != http.StatusNoContent {
					err = fmt.Errorf("tenant %s request %d to %s: %s", tn, k, n.RemoteWriteAddr, r)
				}
				if err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// Phases of TestRingGrowsUnderLoad, as the sender sees them when a request starts and ends.
const (
	phaseBefore   int32 = iota // the old file is the only one written
	phaseChanging              // the new file may be written; the router may serve either ring
	phaseChanged               // the router's status shows the new ring
)

// growLoad is one sequential sender per tenant, each writing as fast as it gets answers (at most
// one request per 5 ms) until stopped, recording every answer with the phases around it.
type growLoad struct {
	phase atomic.Int32
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu  sync.Mutex
	log []growAnswer
}

type growAnswer struct {
	tenant               string
	k                    int
	start                time.Time
	startPhase, endPhase int32
	code                 int
	body                 string
	err                  error
}

func startGrowLoad(l *ringLoad, router *weirNode, tenants []string) *growLoad {
	g := &growLoad{done: make(chan struct{})}
	for _, tn := range tenants {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-g.done:
					return
				case <-tick.C:
				}
				a := growAnswer{tenant: tn, start: time.Now(), startPhase: g.phase.Load()}
				var r response
				a.k, r, a.err = l.send(router, tn)
				a.code, a.body = r.Code, r.Body
				a.endPhase = g.phase.Load()
				g.mu.Lock()
				g.log = append(g.log, a)
				g.mu.Unlock()
			}
		}()
	}
	return g
}

func (g *growLoad) stop() {
	g.once.Do(func() { close(g.done) })
	g.wg.Wait()
}

func (g *growLoad) answers() []growAnswer {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.log)
}

// waitAcked waits until every tenant has n acknowledged requests that started in phase p or later.
func (g *growLoad) waitAcked(t testing.TB, p int32, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d acknowledged requests per tenant from phase %d on", n, p), func() error {
		acked := map[string]int{}
		tenants := map[string]bool{}
		for _, a := range g.answers() {
			tenants[a.tenant] = true
			if a.err != nil || a.code/100 == 4 {
				return nil // fails later, with the details
			}
			if a.startPhase >= p && a.code/100 == 2 {
				acked[a.tenant]++
			}
		}
		var short []string
		for tn := range tenants {
			if acked[tn] < n {
				short = append(short, fmt.Sprintf("%s: %d", tn, acked[tn]))
			}
		}
		if len(tenants) == 0 || len(short) > 0 {
			return fmt.Errorf("acknowledged so far: %s", strings.Join(short, ", "))
		}
		return nil
	})
}

// readyPoller polls /-/ready of nodes until stopped and records every answer that was not 200.
type readyPoller struct {
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	mu   sync.Mutex
	bad  []string
}

func pollReady(nodes []*weirNode) *readyPoller {
	p := &readyPoller{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(pollInterval)
		defer tick.Stop()
		for {
			for j, n := range nodes {
				code, body, err := httpGet(n.client, n.OpsURL+"/-/ready")
				if err != nil || code != http.StatusOK {
					p.mu.Lock()
					p.bad = append(p.bad, fmt.Sprintf("%s node %d (%s): %d %q %v", time.Now().Format(time.RFC3339Nano), j, n.OpsURL, code, body, err))
					p.mu.Unlock()
				}
			}
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *readyPoller) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}

func (p *readyPoller) failures() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.bad)
}
