package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// fetchMemberlistStatus is getMemberlistStatus returning an error rather than failing, for polling.
func fetchMemberlistStatus(n *weirNode) (memberlistStatus, error) {
	var st memberlistStatus
	code, body, err := httpGet(n.client, n.OpsURL+"/api/v1/status/ring")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("/api/v1/status/ring answered %d: %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return st, fmt.Errorf("/api/v1/status/ring: %w: %s", err, body)
	}
	return st, nil
}

// waitRingAgreement waits until every node in nodes serves a ring over exactly endpoints, all with the
// same config hash, and returns that hash.
func waitRingAgreement(t *testing.T, timeout time.Duration, what string, nodes []*weirNode, endpoints []string) string {
	t.Helper()
	var hash string
	waitFor(t, timeout, what, func() error {
		var first string
		for i, n := range nodes {
			st, err := fetchMemberlistStatus(n)
			if err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
			got := slices.Sorted(slices.Values(st.endpoints()))
			if !slices.Equal(got, endpoints) {
				return fmt.Errorf("node %d: ring %v (hash %s), want %v", i, got, st.ConfigHash, endpoints)
			}
			if i == 0 {
				first = st.ConfigHash
			} else if st.ConfigHash != first {
				return fmt.Errorf("node %d: config hash %s, node 0 has %s", i, st.ConfigHash, first)
			}
		}
		hash = first
		return nil
	})
	return hash
}

// memberByName finds a member of a status by name.
func memberByName(st memberlistStatus, name string) (state string, inRing, found bool) {
	for _, m := range st.Members {
		if m.Name == name {
			return m.State, m.InRing, true
		}
	}
	return "", false, false
}

// TestMemberlistIngesterFailure: four ingesters and a router find each other by gossip (RF=3). Under a
// continuous write load through the router, one ingester is SIGKILLed: writes keep being acknowledged
// (quorum 2 of 3; 503s are allowed but counted), the router reports the member dead and still in the
// ring, then, after --memberlist.dead-timeout, out of it, and the four live nodes agree on a ring of
// three. The killed ingester is restarted, rejoins as active and in the ring, and all five agree again.
// After a clean stop, every acknowledged sample is on at least two ingesters, with its exact value.
func TestMemberlistIngesterFailure(t *testing.T) {
	const (
		nIngesters  = 4
		deadTimeout = 3 * time.Second
		victim      = 2 // index of the ingester killed
		tn          = "gossip-failure"
	)
	addrs := testutil.LoopbackAddrs(t, 2*nIngesters+1)
	grpcAddrs, gossipAddrs := addrs[:nIngesters], addrs[nIngesters:]
	names := make([]string, nIngesters+1)
	common := func(i int) []string {
		names[i] = fmt.Sprintf("weir-%d", i)
		return []string{
			"--ring.membership=memberlist",
			"--memberlist.node-name=" + names[i],
			"--memberlist.bind-address=" + gossipAddrs[i],
			"--memberlist.join=" + gossipAddrs[0] + "," + gossipAddrs[1],
			"--memberlist.dead-timeout=" + deadTimeout.String(),
			"--receive.replication-factor=3",
			"--receive.forward-timeout=3s",
		}
	}
	ingesters := make([]*weirNode, nIngesters)
	for i := range ingesters {
		ingesters[i] = startWeir(t, t.TempDir(), append(common(i),
			"--grpc-address="+grpcAddrs[i],
			"--receive.local-endpoint="+grpcAddrs[i])...)
	}
	router := startWeir(t, t.TempDir(), common(nIngesters)...)
	all := append([]*weirNode{router}, ingesters...)

	allEndpoints := slices.Sorted(slices.Values(grpcAddrs))
	start := time.Now()
	hash0 := waitRingAgreement(t, 30*time.Second, "5 nodes to agree on a ring of 4 ingesters", all, allEndpoints)
	convergence := time.Since(start)
	st := getMemberlistStatus(t, router)
	require.Equal(t, "memberlist", st.Membership)
	require.Len(t, st.Members, nIngesters+1)
	for _, m := range st.Members {
		require.Equal(t, "active", m.State, "member %s", m.Name)
		if m.Name == names[nIngesters] {
			require.Equal(t, "router", m.Role)
			require.False(t, m.InRing)
		} else {
			require.Equal(t, "ingester", m.Role, "member %s", m.Name)
			require.True(t, m.InRing, "member %s", m.Name)
		}
	}
	t.Logf("5 nodes converged on ring %s in %s", hash0, convergence.Round(time.Millisecond))

	// The sender: one request after the other through the router until stopped.
	l := newRingLoad(20)
	var (
		mu       sync.Mutex
		codes    = map[int]int{}
		sendErrs []string
	)
	count := func() (acked, unavailable int) {
		mu.Lock()
		defer mu.Unlock()
		for code, n := range codes {
			switch {
			case code/100 == 2:
				acked += n
			case code == http.StatusServiceUnavailable:
				unavailable += n
			}
		}
		return acked, unavailable
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			k, r, err := l.send(router, tn)
			mu.Lock()
			codes[r.Code]++
			if err != nil {
				sendErrs = append(sendErrs, fmt.Sprintf("request %d: %v", k, err))
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	stopSender := func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-done
		}
	}
	t.Cleanup(stopSender)
	// waitAcks waits until the sender has had more acknowledgements than n.
	waitAcks := func(what string, n int) {
		t.Helper()
		waitFor(t, 20*time.Second, what, func() error {
			if a, _ := count(); a <= n {
				return fmt.Errorf("%d acknowledged, want more than %d", a, n)
			}
			return nil
		})
	}
	waitAcks("writes before the kill", 20)

	// SIGKILL an ingester.
	ackedBeforeKill, _ := count()
	ingesters[victim].Kill()
	killed := time.Now()
	var deadSeen, removed time.Time
	waitFor(t, 30*time.Second, "the router to see the killed member dead and still in the ring", func() error {
		st, err := fetchMemberlistStatus(router)
		if err != nil {
			return err
		}
		state, inRing, found := memberByName(st, names[victim])
		if !found || state != "dead" || !inRing {
			return fmt.Errorf("member %s: found %t, state %q, in ring %t", names[victim], found, state, inRing)
		}
		deadSeen = time.Now()
		return nil
	})
	waitAcks("writes while the killed member is in the ring", ackedBeforeKill+10)
	waitFor(t, deadTimeout+20*time.Second, "the router to drop the dead member from the ring", func() error {
		st, err := fetchMemberlistStatus(router)
		if err != nil {
			return err
		}
		if slices.Contains(st.endpoints(), grpcAddrs[victim]) {
			return fmt.Errorf("ring %v still holds %s", st.endpoints(), grpcAddrs[victim])
		}
		if state, inRing, found := memberByName(st, names[victim]); found && inRing {
			return fmt.Errorf("member %s: state %q, in ring", names[victim], state)
		}
		removed = time.Now()
		return nil
	})
	deadToRemoved := removed.Sub(deadSeen)
	// The router polls every pollInterval; it saw the member dead no later than deadSeen, so the
	// member was kept at least deadTimeout minus one poll.
	require.GreaterOrEqual(t, deadToRemoved, deadTimeout-time.Second, "dead member dropped before --memberlist.dead-timeout")
	live := []*weirNode{router}
	var liveEndpoints []string
	for i, n := range ingesters {
		if i != victim {
			live = append(live, n)
			liveEndpoints = append(liveEndpoints, grpcAddrs[i])
		}
	}
	slices.Sort(liveEndpoints)
	hash1 := waitRingAgreement(t, 20*time.Second, "4 live nodes to agree on a ring of 3 ingesters", live, liveEndpoints)
	require.NotEqual(t, hash0, hash1)
	ackedAfterRemoval, _ := count()
	waitAcks("writes on the ring of 3", ackedAfterRemoval+10)

	// Restart the killed ingester: it rejoins.
	ingesters[victim].Restart()
	restarted := time.Now()
	hash2 := waitRingAgreement(t, 30*time.Second, "5 nodes to agree on a ring of 4 ingesters again", all, allEndpoints)
	rejoin := time.Since(restarted)
	waitFor(t, 20*time.Second, "every node to see the restarted member active and in the ring", func() error {
		for i, n := range all {
			st, err := fetchMemberlistStatus(n)
			if err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
			if state, inRing, found := memberByName(st, names[victim]); !found || state != "active" || !inRing {
				return fmt.Errorf("node %d: member %s: found %t, state %q, in ring %t", i, names[victim], found, state, inRing)
			}
		}
		return nil
	})
	require.Equal(t, hash0, hash2, "the ring over the same 4 ingesters has the same hash")
	ackedAfterRejoin, _ := count()
	waitAcks("writes after the rejoin", ackedAfterRejoin+20)

	stopSender()
	stopAll(all...)

	mu.Lock()
	require.Empty(t, sendErrs, "transport errors talking to the router")
	for code := range codes {
		require.True(t, code/100 == 2 || code == http.StatusServiceUnavailable, "unexpected status %d (%d times): %v", code, codes[code], codes)
	}
	mu.Unlock()
	acked, unavailable := count()
	ackedReqs, sent := l.ackedRequests(tn)
	require.Len(t, ackedReqs, acked)
	stored := l.readAll(t, ingesters, tn)
	l.requireCopies(t, tn, stored, 2)
	t.Logf("convergence %s; kill→dead seen %s; dead→removed %s (dead timeout %s); rejoin %s; %d requests sent, %d acknowledged, %d answered 503",
		convergence.Round(time.Millisecond), deadSeen.Sub(killed).Round(time.Millisecond), deadToRemoved.Round(time.Millisecond), deadTimeout,
		rejoin.Round(time.Millisecond), sent, acked, unavailable)
}
