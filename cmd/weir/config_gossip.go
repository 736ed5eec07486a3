package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/weir-metrics/weir/internal/flags"
)

// defaultLeaveTimeout bounds the wait of a stopping ingester for the routers to drop it (Mimir's
// -memberlist.leave-timeout has the same default). Gossip on a LAN converges in about a second; the
// bound only matters when a member does not answer.
const defaultLeaveTimeout = 20 * time.Second

// registerFlags registers the --memberlist.* flags. Names and defaults of the gossip timing flags
// follow Mimir's -memberlist.* flags where it has them; the timing defaults are memberlist's LAN
// configuration. The reclaim time is not memberlist's (nor Mimir's) 0: a recreated pod's new address
// would be refused for 30-60 s (see hashring.DefaultDeadNodeReclaimTime).
func (m *memberlistFlags) registerFlags(r flags.Registry) {
	*m = defaultMemberlistFlags()
	r.Flag("memberlist.bind-address", "host:port memberlist listens on (TCP and UDP), with --ring.membership=memberlist.").Default(m.bind).StringVar(&m.bind)
	r.Flag("memberlist.advertise-address", "host:port other members reach this one at (empty: derived from --memberlist.bind-address).").StringVar(&m.advertise)
	flags.Repeated(r.Flag("memberlist.join", "Member to join, host:port (repeatable or comma-separated); DNS names are resolved again on every retry, e.g. a headless Service.").PlaceHolder("<host:port>"), func(s string) error {
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				m.join = append(m.join, a)
			}
		}
		return nil
	})
	r.Flag("memberlist.secret-key-file", "File holding the gossip encryption key (16, 24 or 32 bytes, raw or base64); the same on every member.").StringVar(&m.secretKeyFile)
	r.Flag("memberlist.node-name", "Unique member name, e.g. the pod name (empty: the hostname).").StringVar(&m.nodeName)
	r.Flag("memberlist.zone", "This node's availability zone in the ring (empty: none; set on all ingesters or none).").StringVar(&m.zone)
	flags.Duration(r.Flag("memberlist.dead-timeout", "How long a member memberlist declares dead stays in the ring (its writes fail, quorum covers them; a restart within it moves no series) before it is dropped. A graceful stop leaves at once."), &m.deadTimeout)
	flags.Duration(r.Flag("memberlist.leave-timeout", "On SIGTERM, an ingester announces that it is leaving and keeps taking writes until every member serves a ring without it, "+
		"for at most this long; only then does it stop taking writes, flush and ship (0: do not wait; writes on the old ring then fail and the quorum covers them)."), &m.leaveTimeout)
	r.Flag("memberlist.leave-on-shutdown", "On SIGTERM, an ingester leaves the ring (see --memberlist.leave-timeout): its series move to the others at once, and back when it returns. "+
		"--no-memberlist.leave-on-shutdown: it stops like a crashed member; the others keep it in the ring for --memberlist.dead-timeout (its writes fail, the quorum covers them), so a restart under the same name within it moves no series.").
		Default("true").BoolVar(&m.leaveOnShutdown)
	flags.Duration(r.Flag("memberlist.dead-node-reclaim-time", "How long after a member was declared dead its name may be taken by a new address: a pod recreated under a new IP is refused by the others until then "+
		"(0: until memberlist forgot the dead member, 30-60s). A member that still answers probes keeps its address whatever this is."), &m.reclaimTime)
	flags.Duration(r.Flag("memberlist.gossip-interval", "How often a member gossips its queued updates (joins, leaves, new rings) to --memberlist.gossip-nodes others; with the retransmit factor, how fast every router learns a change."), &m.timing.GossipInterval)
	r.Flag("memberlist.gossip-nodes", "How many random members each gossip round goes to.").Default(strconv.Itoa(m.timing.GossipNodes)).IntVar(&m.timing.GossipNodes)
	r.Flag("memberlist.retransmit-factor", "Each update is gossiped factor × log10(members+1) times.").Default(strconv.Itoa(m.timing.RetransmitMult)).IntVar(&m.timing.RetransmitMult)
	flags.Duration(r.Flag("memberlist.probe-interval", "How often a member probes another one: a member that misses probes is suspected, then declared dead (and kept in the ring for --memberlist.dead-timeout)."), &m.timing.ProbeInterval)
	flags.Duration(r.Flag("memberlist.probe-timeout", "How long a probe waits for its answer before others are asked to probe indirectly; shorter than --memberlist.probe-interval, above the network's round trip."), &m.timing.ProbeTimeout)
	flags.Duration(r.Flag("memberlist.pullpush-interval", "How often a member exchanges its full state with a random other one (repairs what gossip missed)."), &m.timing.PushPullInterval)
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
