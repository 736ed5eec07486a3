package hashring

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/require"
)

// TestMemberlistAnnounceLeaving: when AnnounceLeaving returns, every other member already serves the
// ring without the leaver (nobody routes to it any more), while the leaver is still a member (it keeps
// gossiping and taking the writes sent on the old ring until it stops).
func TestMemberlistAnnounceLeaving(t *testing.T) {
	seed := startGossip(t, "ing-0", RoleIngester, "", time.Hour)
	a := startGossip(t, "ing-1", RoleIngester, "", time.Hour, seed.src.LocalAddr())
	b := startGossip(t, "ing-2", RoleIngester, "", time.Hour, seed.src.LocalAddr())
	r := startGossip(t, "router-0", RoleRouter, "", time.Hour, seed.src.LocalAddr())
	nodes := []*gossipNode{seed, a, b, r}
	eventually(t, "4 members converge on 3 ingesters", func() bool { return converged(nodes, 3) })
	want := hashString(seed.src.Current().ConfigHash)
	eventually(t, "every member announces the ring it serves", func() bool {
		ms := r.src.Members()
		for _, m := range ms {
			if m.Ring != want {
				return false
			}
		}
		return len(ms) == 4
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := b.src.AnnounceLeaving(ctx)
	require.True(t, p.Done, p.String())
	require.Empty(t, p.Skipped)
	require.Equal(t, "every member serves a ring without this one", p.String())

	// No waiting here: AnnounceLeaving returned only once the others served the new ring.
	left := b.src.Current().ConfigHash
	for _, n := range []*gossipNode{seed, a, r} {
		require.Equal(t, left, n.src.Current().ConfigHash)
		require.Equal(t, "[{ing-0:10901 } {ing-1:10901 }]", ringOf(n.src))
	}
	state, inRing := "", true
	for _, m := range r.src.Members() {
		if m.Name == "ing-2" {
			state, inRing = string(m.State), m.InRing
		}
	}
	require.Equal(t, string(StateLeaving), state, "the leaver is still a member, announcing leaving")
	require.False(t, inRing)

	// A router owns nothing: nothing to wait for.
	require.True(t, r.src.AnnounceLeaving(ctx).Done)
}

// TestMemberlistAnnounceLeavingWithoutRing: with as many ingesters as the replication factor, the
// ring cannot do without the leaver; every node keeps the last good ring and the leave does not wait.
func TestMemberlistAnnounceLeavingWithoutRing(t *testing.T) {
	start := func(name string, join ...string) *gossipNode {
		return startGossipWith(t, MemberlistConfig{
			NodeName: name, BindAddr: "127.0.0.1", Join: join, JoinRetry: 100 * time.Millisecond,
			Role: RoleIngester, Endpoint: name + ":10901", Options: Options{ReplicationFactor: 2}, tune: fastGossip,
		})
	}
	seed := start("ing-0")
	b := start("ing-1", seed.src.LocalAddr())
	nodes := []*gossipNode{seed, b}
	eventually(t, "2 ingesters", func() bool { return converged(nodes, 2) })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := b.src.AnnounceLeaving(ctx)
	require.True(t, p.Done)
	require.Contains(t, p.Skipped, "fewer than the replication factor")
	require.True(t, strings.HasPrefix(p.String(), "not waiting: "), p.String())
	require.NoError(t, ctx.Err(), "returned at once, not at the deadline")
}

func TestGossipTimingValidate(t *testing.T) {
	require.NoError(t, GossipTiming{}.Validate())
	require.NoError(t, DefaultGossipTiming().Validate())
	for name, g := range map[string]GossipTiming{
		"negative interval":       {GossipInterval: -time.Second},
		"negative nodes":          {GossipNodes: -1},
		"timeout above interval":  {ProbeInterval: time.Second, ProbeTimeout: 2 * time.Second},
		"timeout above default":   {ProbeTimeout: 5 * time.Second},
		"negative retransmission": {RetransmitMult: -4},
	} {
		require.Error(t, g.Validate(), name)
		require.Error(t, MemberlistConfig{NodeName: "n", Role: RoleRouter, Timing: g}.Validate(), name)
	}
}

// TestMemberlistKeepOnShutdown: a member that stops with KeepOnShutdown does not leave: the others
// declare it dead and keep it in the ring (same hash) for the dead timeout.
func TestMemberlistKeepOnShutdown(t *testing.T) {
	seed := startGossip(t, "ing-0", RoleIngester, "", time.Hour)
	a := startGossip(t, "ing-1", RoleIngester, "", time.Hour, seed.src.LocalAddr())
	b := startGossipWith(t, MemberlistConfig{
		NodeName: "ing-2", BindAddr: "127.0.0.1", Join: []string{seed.src.LocalAddr()}, JoinRetry: 100 * time.Millisecond,
		Role: RoleIngester, Endpoint: "ing-2:10901", DeadTimeout: time.Hour, KeepOnShutdown: true,
		Options: Options{ReplicationFactor: 1}, tune: fastGossip,
	})
	nodes := []*gossipNode{seed, a, b}
	eventually(t, "3 ingesters", func() bool { return converged(nodes, 3) })
	before := seed.src.Current().ConfigHash

	b.stop() // Run ends without leaving
	eventually(t, "the stopped member is seen dead", func() bool {
		for _, m := range seed.src.Members() {
			if m.Name == "ing-2" {
				return m.State == StateDead && m.InRing
			}
		}
		return false
	})
	require.Equal(t, before, seed.src.Current().ConfigHash)
	require.Equal(t, before, a.src.Current().ConfigHash)
}

// deafTransport is memberlist's UDP and TCP transport that drops the UDP packets it receives while
// deaf is set: gossip lost on the way to this member. Probes fall back to TCP, so nobody is
// declared dead for it.
type deafTransport struct {
	*memberlist.NetTransport
	deaf    atomic.Bool
	packets chan *memberlist.Packet
	stop    chan struct{}
}

func newDeafTransport(t *testing.T) *deafTransport {
	t.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}})
	require.NoError(t, err)
	d := &deafTransport{NetTransport: nt, packets: make(chan *memberlist.Packet), stop: make(chan struct{})}
	go func() {
		for {
			select {
			case p := <-nt.PacketCh():
				if d.deaf.Load() {
					continue
				}
				select {
				case d.packets <- p:
				case <-d.stop:
					return
				}
			case <-d.stop:
				return
			}
		}
	}()
	return d
}

func (d *deafTransport) PacketCh() <-chan *memberlist.Packet { return d.packets }

func (d *deafTransport) Shutdown() error {
	close(d.stop)
	return d.NetTransport.Shutdown()
}

// TestMemberlistAnnounceLeavingWithoutGossip: a leaving member whose incoming gossip is lost (UDP
// dropped, and no periodic full exchange within the test) still learns that the others serve the
// ring without it, by exchanging state with the members it waits for.
func TestMemberlistAnnounceLeavingWithoutGossip(t *testing.T) {
	slowPushPull := func(c *memberlist.Config) {
		fastGossip(c)
		c.PushPullInterval = time.Hour
	}
	member := func(name string, tr memberlist.Transport, join ...string) *gossipNode {
		return startGossipWith(t, MemberlistConfig{
			NodeName: name, BindAddr: "127.0.0.1", Join: join, JoinRetry: 100 * time.Millisecond,
			Role: RoleIngester, Endpoint: name + ":10901", DeadTimeout: time.Hour,
			Options: Options{ReplicationFactor: 1},
			tune: func(c *memberlist.Config) {
				slowPushPull(c)
				if tr != nil {
					c.Transport = tr
				}
			},
		})
	}
	seed := member("ing-0", nil)
	a := member("ing-1", nil, seed.src.LocalAddr())
	deaf := newDeafTransport(t)
	leaver := member("ing-2", deaf, seed.src.LocalAddr())
	nodes := []*gossipNode{seed, a, leaver}
	eventually(t, "3 members converge on 3 ingesters", func() bool { return converged(nodes, 3) })
	want := hashString(seed.src.Current().ConfigHash)
	eventually(t, "the leaver hears every member announce the ring", func() bool {
		for _, m := range leaver.src.Members() {
			if m.Ring != want {
				return false
			}
		}
		return len(leaver.src.Members()) == 3
	})

	deaf.deaf.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := leaver.src.AnnounceLeaving(ctx)
	require.True(t, p.Done, p.String())
	for _, n := range []*gossipNode{seed, a} {
		require.Equal(t, "[{ing-0:10901 } {ing-1:10901 }]", ringOf(n.src))
	}
}
