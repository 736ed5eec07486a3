package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
)

// defaultLeaveTimeout bounds the wait of a stopping ingester for the routers to drop it (Mimir's
// -memberlist.leave-timeout has the same default). Gossip on a LAN converges in about a second; the
// bound only matters when a member does not answer.
const defaultLeaveTimeout = 20 * time.Second

// registerGossipFlags registers the gossip timing flags, --memberlist.leave-timeout and
// --memberlist.dead-node-reclaim-time. Names and defaults follow Mimir's -memberlist.* flags where it
// has them; the timing defaults are memberlist's LAN configuration, which the flags were before they
// existed. The reclaim time is not memberlist's (nor Mimir's) 0: a recreated pod's new address would
// be refused for 30-60 s (see hashring.DefaultDeadNodeReclaimTime).
func (c *config) registerGossipFlags(fs *flag.FlagSet) {
	m := &c.memberlist
	durationFlag(fs, &m.leaveTimeout, "memberlist.leave-timeout", "On SIGTERM, an ingester announces that it is leaving and keeps taking writes until every member serves a ring without it, "+
		"for at most this long; only then does it stop taking writes, flush and ship (0: do not wait; writes on the old ring then fail and the quorum covers them).")
	fs.BoolVar(&m.leaveOnShutdown, "memberlist.leave-on-shutdown", m.leaveOnShutdown, "On SIGTERM, an ingester leaves the ring (see --memberlist.leave-timeout): its series move to the others at once, and back when it returns. "+
		"false: it stops like a crashed member; the others keep it in the ring for --memberlist.dead-timeout (its writes fail, the quorum covers them), so a restart under the same name within it moves no series.")
	durationFlag(fs, &m.reclaimTime, "memberlist.dead-node-reclaim-time", "How long after a member was declared dead its name may be taken by a new address: a pod recreated under a new IP is refused by the others until then "+
		"(0: until memberlist forgot the dead member, 30-60s). A member that still answers probes keeps its address whatever this is.")
	durationFlag(fs, &m.timing.GossipInterval, "memberlist.gossip-interval", "How often a member gossips its queued updates (joins, leaves, new rings) to --memberlist.gossip-nodes others; with the retransmit factor, how fast every router learns a change.")
	fs.IntVar(&m.timing.GossipNodes, "memberlist.gossip-nodes", m.timing.GossipNodes, "How many random members each gossip round goes to.")
	fs.IntVar(&m.timing.RetransmitMult, "memberlist.retransmit-factor", m.timing.RetransmitMult, "Each update is gossiped factor × log10(members+1) times.")
	durationFlag(fs, &m.timing.ProbeInterval, "memberlist.probe-interval", "How often a member probes another one: a member that misses probes is suspected, then declared dead (and kept in the ring for --memberlist.dead-timeout).")
	durationFlag(fs, &m.timing.ProbeTimeout, "memberlist.probe-timeout", "How long a probe waits for its answer before others are asked to probe indirectly; shorter than --memberlist.probe-interval, above the network's round trip.")
	durationFlag(fs, &m.timing.PushPullInterval, "memberlist.pullpush-interval", "How often a member exchanges its full state with a random other one (repairs what gossip missed).")
}

// validateGossip checks the gossip timing flags, naming the flag at fault.
func (m memberlistFlags) validateGossip() error {
	if m.leaveTimeout < 0 {
		return fmt.Errorf("--memberlist.leave-timeout: %s is negative (0: do not wait)", model.Duration(m.leaveTimeout))
	}
	if m.reclaimTime < 0 {
		return fmt.Errorf("--memberlist.dead-node-reclaim-time: %s is negative (0: never reclaim, wait until the dead member is forgotten)", model.Duration(m.reclaimTime))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--memberlist.gossip-interval", m.timing.GossipInterval},
		{"--memberlist.probe-interval", m.timing.ProbeInterval},
		{"--memberlist.probe-timeout", m.timing.ProbeTimeout},
		{"--memberlist.pullpush-interval", m.timing.PushPullInterval},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s: %s must be positive", d.flag, model.Duration(d.v))
		}
	}
	if m.timing.GossipNodes < 1 {
		return fmt.Errorf("--memberlist.gossip-nodes: %d must be at least 1", m.timing.GossipNodes)
	}
	if m.timing.RetransmitMult < 1 {
		return fmt.Errorf("--memberlist.retransmit-factor: %d must be at least 1", m.timing.RetransmitMult)
	}
	if m.timing.ProbeTimeout >= m.timing.ProbeInterval {
		return fmt.Errorf("--memberlist.probe-timeout: %s must be shorter than --memberlist.probe-interval (%s)", model.Duration(m.timing.ProbeTimeout), model.Duration(m.timing.ProbeInterval))
	}
	return nil
}
