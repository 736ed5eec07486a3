package hashring

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/weir-metrics/weir/internal/flags"
)

// DefaultLeaveTimeout bounds the wait of a stopping ingester for the routers to drop it (Mimir's
// -memberlist.leave-timeout has the same default). Gossip on a LAN converges in about a second; the
// bound only matters when a member does not answer.
const DefaultLeaveTimeout = 20 * time.Second

// MemberlistFlags are the --memberlist.* flags, as an operator gives them; Config turns them into a
// MemberlistConfig for a node of a given role.
type MemberlistFlags struct {
	Bind, Advertise string // host:port
	Join            []string
	SecretKeyFile   string
	NodeName        string // empty: the hostname
	Zone            string
	DeadTimeout     time.Duration
	ReclaimTime     time.Duration
	// LeaveTimeout bounds the wait of a stopping ingester until every member serves a ring without
	// it; LeaveOnShutdown false makes it stop like a crashed member instead (KeepOnShutdown).
	LeaveTimeout    time.Duration
	LeaveOnShutdown bool
	Timing          GossipTiming
}

// DefaultMemberlistFlags are the defaults of the --memberlist.* flags.
func DefaultMemberlistFlags() MemberlistFlags {
	return MemberlistFlags{
		Bind:            "0.0.0.0:7946",
		DeadTimeout:     DefaultDeadTimeout,
		ReclaimTime:     DefaultDeadNodeReclaimTime,
		LeaveTimeout:    DefaultLeaveTimeout,
		LeaveOnShutdown: true,
		Timing:          DefaultGossipTiming(),
	}
}

// RegisterFlags registers the --memberlist.* flags with their defaults. Names and defaults of the
// gossip timing flags follow Mimir's -memberlist.* flags where it has them; the timing defaults are
// memberlist's LAN configuration. The reclaim time is not memberlist's (nor Mimir's) 0: a recreated
// pod's new address would be refused for 30-60 s (see DefaultDeadNodeReclaimTime).
func (m *MemberlistFlags) RegisterFlags(r flags.Registry) {
	*m = DefaultMemberlistFlags()
	r.Flag("memberlist.bind-address", "host:port memberlist listens on (TCP and UDP), with --ring.membership=memberlist.").Default(m.Bind).StringVar(&m.Bind)
	r.Flag("memberlist.advertise-address", "host:port other members reach this one at (empty: derived from --memberlist.bind-address).").StringVar(&m.Advertise)
	flags.Repeated(r.Flag("memberlist.join", "Member to join, host:port (repeatable or comma-separated); DNS names are resolved again on every retry, e.g. a headless Service.").PlaceHolder("<host:port>"), func(s string) error {
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				m.Join = append(m.Join, a)
			}
		}
		return nil
	})
	r.Flag("memberlist.secret-key-file", "File holding the gossip encryption key (16, 24 or 32 bytes, raw or base64); the same on every member.").StringVar(&m.SecretKeyFile)
	r.Flag("memberlist.node-name", "Unique member name, e.g. the pod name (empty: the hostname).").StringVar(&m.NodeName)
	r.Flag("memberlist.zone", "This node's availability zone in the ring (empty: none; set on all ingesters or none).").StringVar(&m.Zone)
	flags.Duration(r.Flag("memberlist.dead-timeout", "How long a member memberlist declares dead stays in the ring (its writes fail, quorum covers them; a restart within it moves no series) before it is dropped. A graceful stop leaves at once."), &m.DeadTimeout)
	flags.Duration(r.Flag("memberlist.leave-timeout", "On SIGTERM, an ingester announces that it is leaving and keeps taking writes until every member serves a ring without it, "+
		"for at most this long; only then does it stop taking writes, flush and ship (0: do not wait; writes on the old ring then fail and the quorum covers them)."), &m.LeaveTimeout)
	r.Flag("memberlist.leave-on-shutdown", "On SIGTERM, an ingester leaves the ring (see --memberlist.leave-timeout): its series move to the others at once, and back when it returns. "+
		"--no-memberlist.leave-on-shutdown: it stops like a crashed member; the others keep it in the ring for --memberlist.dead-timeout (its writes fail, the quorum covers them), so a restart under the same name within it moves no series.").
		Default("true").BoolVar(&m.LeaveOnShutdown)
	flags.Duration(r.Flag("memberlist.dead-node-reclaim-time", "How long after a member was declared dead its name may be taken by a new address: a pod recreated under a new IP is refused by the others until then "+
		"(0: until memberlist forgot the dead member, 30-60s). A member that still answers probes keeps its address whatever this is."), &m.ReclaimTime)
	flags.Duration(r.Flag("memberlist.gossip-interval", "How often a member gossips its queued updates (joins, leaves, new rings) to --memberlist.gossip-nodes others; with the retransmit factor, how fast every router learns a change."), &m.Timing.GossipInterval)
	r.Flag("memberlist.gossip-nodes", "How many random members each gossip round goes to.").Default(strconv.Itoa(m.Timing.GossipNodes)).IntVar(&m.Timing.GossipNodes)
	r.Flag("memberlist.retransmit-factor", "Each update is gossiped factor × log10(members+1) times.").Default(strconv.Itoa(m.Timing.RetransmitMult)).IntVar(&m.Timing.RetransmitMult)
	flags.Duration(r.Flag("memberlist.probe-interval", "How often a member probes another one: a member that misses probes is suspected, then declared dead (and kept in the ring for --memberlist.dead-timeout)."), &m.Timing.ProbeInterval)
	flags.Duration(r.Flag("memberlist.probe-timeout", "How long a probe waits for its answer before others are asked to probe indirectly; shorter than --memberlist.probe-interval, above the network's round trip."), &m.Timing.ProbeTimeout)
	flags.Duration(r.Flag("memberlist.pullpush-interval", "How often a member exchanges its full state with a random other one (repairs what gossip missed)."), &m.Timing.PushPullInterval)
}

// IsDefault says whether no --memberlist.* flag changed anything.
func (m MemberlistFlags) IsDefault() bool {
	d := DefaultMemberlistFlags()
	return len(m.Join) == 0 && m.Bind == d.Bind && m.Advertise == d.Advertise && m.SecretKeyFile == d.SecretKeyFile &&
		m.NodeName == d.NodeName && m.Zone == d.Zone && m.DeadTimeout == d.DeadTimeout && m.ReclaimTime == d.ReclaimTime &&
		m.LeaveTimeout == d.LeaveTimeout && m.LeaveOnShutdown == d.LeaveOnShutdown && m.Timing == d.Timing
}

// Validate reports the first flag at fault.
func (m MemberlistFlags) Validate() error {
	if _, _, err := splitHostPort(m.Bind); err != nil {
		return fmt.Errorf("--memberlist.bind-address: %w", err)
	}
	if m.Advertise != "" {
		if _, _, err := splitHostPort(m.Advertise); err != nil {
			return fmt.Errorf("--memberlist.advertise-address: %w", err)
		}
	}
	for _, j := range m.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fmt.Errorf("--memberlist.join %q: %w", j, err)
		}
	}
	if m.DeadTimeout <= 0 {
		return fmt.Errorf("--memberlist.dead-timeout: %s must be positive", model.Duration(m.DeadTimeout))
	}
	if m.LeaveTimeout < 0 {
		return fmt.Errorf("--memberlist.leave-timeout: %s is negative (0: do not wait)", model.Duration(m.LeaveTimeout))
	}
	if m.ReclaimTime < 0 {
		return fmt.Errorf("--memberlist.dead-node-reclaim-time: %s is negative (0: never reclaim, wait until the dead member is forgotten)", model.Duration(m.ReclaimTime))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--memberlist.gossip-interval", m.Timing.GossipInterval},
		{"--memberlist.probe-interval", m.Timing.ProbeInterval},
		{"--memberlist.probe-timeout", m.Timing.ProbeTimeout},
		{"--memberlist.pullpush-interval", m.Timing.PushPullInterval},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s: %s must be positive", d.flag, model.Duration(d.v))
		}
	}
	if m.Timing.GossipNodes < 1 {
		return fmt.Errorf("--memberlist.gossip-nodes: %d must be at least 1", m.Timing.GossipNodes)
	}
	if m.Timing.RetransmitMult < 1 {
		return fmt.Errorf("--memberlist.retransmit-factor: %d must be at least 1", m.Timing.RetransmitMult)
	}
	if m.Timing.ProbeTimeout >= m.Timing.ProbeInterval {
		return fmt.Errorf("--memberlist.probe-timeout: %s must be shorter than --memberlist.probe-interval (%s)", model.Duration(m.Timing.ProbeTimeout), model.Duration(m.Timing.ProbeInterval))
	}
	return nil
}

// Config is the MemberlistConfig of a node: an ingester announcing endpoint (its ring endpoint), or a
// router when endpoint is empty. It reads the secret key file and, without a node name, the hostname.
func (m MemberlistFlags) Config(endpoint string, opts Options) (MemberlistConfig, error) {
	mc := MemberlistConfig{
		NodeName:       m.NodeName,
		Join:           m.Join,
		Role:           RoleRouter,
		Zone:           m.Zone,
		DeadTimeout:    m.DeadTimeout,
		KeepOnShutdown: !m.LeaveOnShutdown,
		Timing:         m.Timing,
		Options:        opts,
		// A recreated pod comes back with a new IP under its name: see MemberlistConfig.
		DeadNodeReclaimTime: m.ReclaimTime,
	}
	if endpoint != "" {
		mc.Role, mc.Endpoint = RoleIngester, endpoint
	}
	if mc.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return mc, fmt.Errorf("--memberlist.node-name: empty and no hostname: %w", err)
		}
		mc.NodeName = h
	}
	var err error
	if mc.BindAddr, mc.BindPort, err = splitHostPort(m.Bind); err != nil {
		return mc, fmt.Errorf("--memberlist.bind-address: %w", err)
	}
	if m.Advertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(m.Advertise); err != nil {
			return mc, fmt.Errorf("--memberlist.advertise-address: %w", err)
		}
	}
	if m.SecretKeyFile != "" {
		if mc.SecretKey, err = LoadSecretKey(m.SecretKeyFile); err != nil {
			return mc, fmt.Errorf("--memberlist.secret-key-file: %w", err)
		}
	}
	return mc, nil
}

// splitHostPort splits host:port with a numeric port.
func splitHostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("port %q: want 0-65535", port)
	}
	return host, p, nil
}
