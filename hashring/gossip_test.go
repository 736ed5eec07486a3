package hashring

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// fastGossip makes failure detection and gossip quick enough for tests on loopback, and no quicker:
// with 25 ms probe timeouts and a suspicion multiplier of 1, a member of a loaded CI machine (race
// detector, packages in parallel) was declared dead while it ran (TestMemberlistConverges).
func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 80 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 200 * time.Millisecond
	c.SuspicionMult = 2
	c.SuspicionMaxTimeoutMult = 1
	c.TCPTimeout = time.Second
}

type gossipNode struct {
	src    *MemberlistSource
	cancel context.CancelFunc
	done   chan error
}

// startGossip starts a member named name on 127.0.0.1 (a free port) joining join, and stops it at the
// end of the test (gracefully, unless the test already did).
func startGossip(t *testing.T, name string, role Role, zone string, deadTimeout time.Duration, join ...string) *gossipNode {
	t.Helper()
	cfg := MemberlistConfig{
		NodeName:    name,
		BindAddr:    "127.0.0.1",
		Join:        join,
		JoinRetry:   100 * time.Millisecond,
		Role:        role,
		Zone:        zone,
		DeadTimeout: deadTimeout,
		Options:     Options{ReplicationFactor: 1},
		tune:        fastGossip,
	}
	if role == RoleIngester {
		cfg.Endpoint = name + ":10901"
	}
	return startGossipWith(t, cfg)
}

// startGossipWith starts a member configured by cfg (tests tune it with fastGossip) and stops it at
// the end of the test.
func startGossipWith(t *testing.T, cfg MemberlistConfig) *gossipNode {
	t.Helper()
	src, err := NewMemberlistSource(cfg, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	n := &gossipNode{src: src, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- src.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

func (n *gossipNode) stop() {
	n.cancel()
	<-n.done
	n.done <- nil // stop is idempotent
}

// ringOf returns the endpoints of a source's ring ("" before it has one).
func ringOf(s *MemberlistSource) string {
	snap := s.Current()
	if snap == nil {
		return ""
	}
	return fmt.Sprint(snap.Rings.Hashrings()[0].Ring.Endpoints())
}

// converged reports whether every node serves the same ring hash with want ingesters.
func converged(nodes []*gossipNode, want int) bool {
	var hash uint64
	for i, n := range nodes {
		snap := n.src.Current()
		if snap == nil || len(snap.Rings.Hashrings()[0].Ring.Endpoints()) != want {
			return false
		}
		if i == 0 {
			hash = snap.ConfigHash
		} else if snap.ConfigHash != hash {
			return false
		}
	}
	return true
}

func TestMemberlistConverges(t *testing.T) {
	seed := startGossip(t, "ing-0", RoleIngester, "a", time.Minute)
	nodes := []*gossipNode{seed}
	for i := 1; i < 4; i++ {
		nodes = append(nodes, startGossip(t, fmt.Sprintf("ing-%d", i), RoleIngester, string(rune('a'+i%3)), time.Minute, seed.src.LocalAddr()))
	}
	// A router that joins a formed cluster has its ring by the time it has settled (what its
	// readiness waits for).
	eventually(t, "4 ingesters converge", func() bool { return converged(nodes, 4) })
	router := startGossip(t, "router-0", RoleRouter, "", time.Minute, seed.src.LocalAddr())
	select {
	case <-router.src.Settled():
	case <-time.After(30 * time.Second):
		t.Fatal("the router did not settle")
	}
	require.NotNil(t, router.src.Current(), "settled without the ring of the cluster it joined: %v", router.src.Err())
	nodes = append(nodes, router)
	eventually(t, "5 members converge on 4 ingesters", func() bool { return converged(nodes, 4) })
	require.Equal(t, "[{ing-0:10901 a} {ing-1:10901 b} {ing-2:10901 c} {ing-3:10901 a}]", ringOf(nodes[4].src))

	ms := nodes[4].src.Members()
	require.Len(t, ms, 5)
	for _, m := range ms {
		require.Equal(t, StateActive, m.State, m.Name)
		require.Equal(t, m.Role == RoleIngester, m.InRing, m.Name)
	}
}

func TestMemberlistGracefulLeave(t *testing.T) {
	seed := startGossip(t, "ing-0", RoleIngester, "", time.Hour)
	a := startGossip(t, "ing-1", RoleIngester, "", time.Hour, seed.src.LocalAddr())
	b := startGossip(t, "ing-2", RoleIngester, "", time.Hour, seed.src.LocalAddr())
	nodes := []*gossipNode{seed, a, b}
	eventually(t, "3 ingesters", func() bool { return converged(nodes, 3) })

	b.stop() // Run ends: state=leaving, Leave, Shutdown
	eventually(t, "the leaver is dropped at once despite the hour-long dead timeout", func() bool { return converged(nodes[:2], 2) })
	require.Equal(t, "[{ing-0:10901 } {ing-1:10901 }]", ringOf(a.src))
	for _, m := range seed.src.Members() {
		require.NotEqual(t, "ing-2", m.Name)
	}
}

func TestMemberlistDeadTimeout(t *testing.T) {
	const deadTimeout = 1500 * time.Millisecond
	seed := startGossip(t, "ing-0", RoleIngester, "", deadTimeout)
	a := startGossip(t, "ing-1", RoleIngester, "", deadTimeout, seed.src.LocalAddr())
	b := startGossip(t, "ing-2", RoleIngester, "", deadTimeout, seed.src.LocalAddr())
	nodes := []*gossipNode{seed, a, b}
	eventually(t, "3 ingesters", func() bool { return converged(nodes, 3) })
	before := seed.src.Current().ConfigHash

	require.NoError(t, b.src.Shutdown()) // a crash: no leave
	eventually(t, "the crashed member is seen dead", func() bool {
		for _, m := range seed.src.Members() {
			if m.Name == "ing-2" && m.State == StateDead {
				return m.InRing && m.DeadSince != nil
			}
		}
		return false
	})
	// Still in the ring while the dead timeout runs.
	require.Equal(t, before, seed.src.Current().ConfigHash)
	require.Equal(t, before, a.src.Current().ConfigHash)

	eventually(t, "the dead member is dropped after the dead timeout", func() bool { return converged(nodes[:2], 2) })
	require.NotEqual(t, before, seed.src.Current().ConfigHash)
}

func TestMemberlistNotEnoughIngesters(t *testing.T) {
	reg := prometheus.NewRegistry()
	src, err := NewMemberlistSource(MemberlistConfig{
		NodeName: "ing-0", BindAddr: "127.0.0.1", Role: RoleIngester, Endpoint: "ing-0:10901",
		Options: Options{ReplicationFactor: 3}, tune: fastGossip,
	}, nil, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	eventually(t, "a reason for no ring", func() bool {
		err := src.Err()
		return err != nil && strings.Contains(err.Error(), "fewer than the replication factor")
	})
	require.Nil(t, src.Current())
	require.ErrorContains(t, src.Err(), "fewer than the replication factor")
	eventually(t, "the member gauge", func() bool {
		return testutil.ToFloat64(src.memberGauge.WithLabelValues("ingester", "active")) == 1
	})
	require.Equal(t, 1.0, testutil.ToFloat64(src.m.reloadsFailure))
	cancel()
	require.NoError(t, <-done)
}

func TestMemberlistConfigValidate(t *testing.T) {
	ok := MemberlistConfig{NodeName: "n", Role: RoleRouter}
	require.NoError(t, ok.Validate())
	for name, c := range map[string]MemberlistConfig{
		"no name":           {Role: RoleRouter},
		"bad role":          {NodeName: "n", Role: "boss"},
		"ingester endpoint": {NodeName: "n", Role: RoleIngester},
		"key length":        {NodeName: "n", Role: RoleRouter, SecretKey: []byte("short")},
		"meta too large":    {NodeName: "n", Role: RoleIngester, Endpoint: string(make([]byte, 600))},
		"negative reclaim":  {NodeName: "n", Role: RoleRouter, DeadNodeReclaimTime: -time.Second},
	} {
		require.Error(t, c.Validate(), name)
	}
}

func TestLoadSecretKey(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw")
	require.NoError(t, os.WriteFile(raw, []byte("0123456789abcdef\n"), 0o600))
	k, err := LoadSecretKey(raw)
	require.NoError(t, err)
	require.Equal(t, []byte("0123456789abcdef"), k)

	b64 := filepath.Join(dir, "b64")
	require.NoError(t, os.WriteFile(b64, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600))
	k, err = LoadSecretKey(b64)
	require.NoError(t, err)
	require.Len(t, k, 32)

	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("nope"), 0o600))
	_, err = LoadSecretKey(bad)
	require.Error(t, err)
}

func TestMemberlistEncrypted(t *testing.T) {
	key := []byte("0123456789abcdef")
	mk := func(name string, key []byte, join ...string) *MemberlistSource {
		src, err := NewMemberlistSource(MemberlistConfig{
			NodeName: name, BindAddr: "127.0.0.1", Role: RoleIngester, Endpoint: name + ":10901",
			SecretKey: key, Join: join, JoinRetry: 50 * time.Millisecond, tune: fastGossip,
		}, nil, nil)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return src
	}
	a := mk("ing-0", key)
	b := mk("ing-1", key, a.LocalAddr())
	eventually(t, "encrypted members converge", func() bool {
		return a.Current() != nil && b.Current() != nil && a.Current().ConfigHash == b.Current().ConfigHash &&
			len(a.Current().Rings.Hashrings()[0].Ring.Endpoints()) == 2
	})
}

// TestMemberlistReclaimNewAddress: a member that crashed and comes back under its name at another
// address (a recreated pod's new IP) is taken at that address once the others declared the old one
// dead and DeadNodeReclaimTime passed, without waiting for a push/pull (an hour here): the restarted
// member joins again until every member it contacts lists it at its new address.
func TestMemberlistReclaimNewAddress(t *testing.T) {
	slowPushPull := func(c *memberlist.Config) {
		fastGossip(c)
		c.PushPullInterval = time.Hour // only the joins carry the new address
	}
	cfg := func(name string, join ...string) MemberlistConfig {
		return MemberlistConfig{
			NodeName: name, BindAddr: "127.0.0.1", Join: join, JoinRetry: 100 * time.Millisecond,
			Role: RoleIngester, Endpoint: name + ":10901", DeadTimeout: time.Hour, KeepOnShutdown: true,
			DeadNodeReclaimTime: 300 * time.Millisecond, Options: Options{ReplicationFactor: 1}, tune: slowPushPull,
		}
	}
	seed := startGossipWith(t, cfg("ing-0"))
	other := startGossipWith(t, cfg("ing-2", seed.src.LocalAddr()))
	old := startGossipWith(t, cfg("ing-1", seed.src.LocalAddr()))
	eventually(t, "3 ingesters", func() bool { return converged([]*gossipNode{seed, other, old}, 3) })
	oldAddr := old.src.LocalAddr()
	old.stop() // KeepOnShutdown: stops like a crash

	restarted := startGossipWith(t, cfg("ing-1", seed.src.LocalAddr())) // port 0: another address
	newAddr := restarted.src.LocalAddr()
	require.NotEqual(t, oldAddr, newAddr)
	at := func(n *gossipNode) func() bool {
		return func() bool {
			for _, m := range n.src.Members() {
				if m.Name == "ing-1" {
					return m.Address == newAddr && m.State == StateActive && m.InRing
				}
			}
			return false
		}
	}
	eventually(t, "the seed to take ing-1's new address", at(seed))
	eventually(t, "ing-2, not in the join list, to take it", at(other))
	eventually(t, "the restarted member to list itself", at(restarted))
}

// TestMemberlistRejoiningMemberKeepsItsPlace: a member in the ring that comes back (a restart after a
// crash, or without leaving) announces joining until it has joined; it must stay in the ring
// meanwhile, so that the restart moves no series. A member nobody knew stays out while joining.
func TestMemberlistRejoiningMemberKeepsItsPlace(t *testing.T) {
	seed := startGossip(t, "ing-0", RoleIngester, "", time.Hour)
	eventually(t, "a ring of one", func() bool { return converged([]*gossipNode{seed}, 1) })
	src := seed.src
	node := func(name string, st MemberState) *memberlist.Node {
		meta, err := json.Marshal(NodeMeta{Role: RoleIngester, Endpoint: name + ":10901", State: st})
		require.NoError(t, err)
		return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 9), Port: 7946, Meta: meta, State: memberlist.StateAlive}
	}
	inRing := func(name string) bool {
		src.rebuild()
		for _, m := range src.Members() {
			if m.Name == name {
				return m.InRing
			}
		}
		return false
	}

	src.notify(node("ing-1", StateActive), false)
	require.True(t, inRing("ing-1"))
	before := src.Current().ConfigHash
	dead := node("ing-1", StateActive)
	dead.State = memberlist.StateDead
	src.notify(dead, true)
	require.True(t, inRing("ing-1"), "a dead member stays in the ring for the dead timeout")
	src.notify(node("ing-1", StateJoining), false) // restarted, not joined yet
	require.True(t, inRing("ing-1"), "the restarted member left the ring while joining")
	require.Equal(t, before, src.Current().ConfigHash)

	src.notify(node("ing-2", StateJoining), false)
	require.False(t, inRing("ing-2"), "a new member owns series before it has joined")
}
