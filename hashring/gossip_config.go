package hashring

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberlistConfig configures a MemberlistSource.
type MemberlistConfig struct {
	// NodeName is the unique name of this member (a pod name).
	NodeName string
	// BindAddr and BindPort are where memberlist listens (TCP and UDP). Port 0 picks a free port.
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what other members dial (empty/0: derived from the bind
	// address).
	AdvertiseAddr string
	AdvertisePort int
	// Join lists members to join, host:port; names are resolved again on every attempt, so a
	// headless Service that has no address yet is retried until it has.
	Join []string
	// JoinRetry is how long to wait between join attempts (zero: 2s).
	JoinRetry time.Duration
	// SecretKey, when set, encrypts gossip (16, 24 or 32 bytes, AES); see LoadSecretKey.
	SecretKey []byte
	// Role, Endpoint and Zone describe this member (see NodeMeta).
	Role     Role
	Endpoint string
	Zone     string
	// DeadTimeout is how long a member memberlist declared dead stays in the ring (zero:
	// DefaultDeadTimeout).
	DeadTimeout time.Duration
	// DeadNodeReclaimTime is how long after memberlist declared a member dead its name may be taken
	// by another address (memberlist's DeadNodeReclaimTime). A pod that Kubernetes recreates comes
	// back under its name with a new IP: until the name is reclaimed every member refuses it
	// ("conflicting address"). Zero is memberlist's default: never, the name is free only once the dead
	// member was forgotten (GossipToTheDeadTime, 30 s) and the new one gossips its state again. Only a
	// dead member can be reclaimed: a member that answers probes (alive or suspect) keeps its
	// address. The flag's default is DefaultDeadNodeReclaimTime.
	DeadNodeReclaimTime time.Duration
	// KeepOnShutdown: when Run ends, the member stops like a crashed one instead of leaving. The
	// others declare it dead and keep it in the ring for DeadTimeout (its writes fail, the quorum
	// covers them), so a restart under the same name within that time moves no series: what a
	// rolling restart of a StatefulSet wants. Without it (the default) a stopping member leaves: its
	// series move to the others at once, and back when it returns.
	KeepOnShutdown bool
	// Timing tunes gossip and failure detection (zero fields: memberlist's LAN defaults).
	Timing GossipTiming
	// Options are the ring options (replication factor, ketama points). The algorithm is always
	// ketama.
	Options Options

	// tune adjusts memberlist's configuration (tests: faster failure detection).
	tune func(*memberlist.Config)
}

// GossipTiming are the knobs of memberlist that decide how fast a change reaches every member and
// how fast a silent member is declared dead. A zero field keeps memberlist's LAN default (see
// DefaultGossipTiming); the same values should be set on every member.
type GossipTiming struct {
	// GossipInterval is how often a member sends queued updates to GossipNodes random members: the
	// main factor of how fast a join or a leave reaches every router.
	GossipInterval time.Duration
	GossipNodes    int
	// ProbeInterval is how often a member probes a random other one; ProbeTimeout is how long it
	// waits for the ack before asking others to probe indirectly. A member that fails the probes is
	// suspected, then declared dead (it stays in the ring for DeadTimeout).
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// RetransmitMult: each update is sent RetransmitMult × log10(members+1) times.
	RetransmitMult int
	// PushPullInterval is how often a member exchanges its full state with a random other one (repairs
	// what gossip missed).
	PushPullInterval time.Duration
}

// DefaultGossipTiming returns memberlist's LAN defaults, the values a zero GossipTiming stands for.
func DefaultGossipTiming() GossipTiming {
	c := memberlist.DefaultLANConfig()
	return GossipTiming{
		GossipInterval:   c.GossipInterval,
		GossipNodes:      c.GossipNodes,
		ProbeInterval:    c.ProbeInterval,
		ProbeTimeout:     c.ProbeTimeout,
		RetransmitMult:   c.RetransmitMult,
		PushPullInterval: c.PushPullInterval,
	}
}

// withDefaults fills the zero fields with memberlist's LAN defaults.
func (g GossipTiming) withDefaults() GossipTiming {
	d := DefaultGossipTiming()
	if g.GossipInterval == 0 {
		g.GossipInterval = d.GossipInterval
	}
	if g.GossipNodes == 0 {
		g.GossipNodes = d.GossipNodes
	}
	if g.ProbeInterval == 0 {
		g.ProbeInterval = d.ProbeInterval
	}
	if g.ProbeTimeout == 0 {
		g.ProbeTimeout = d.ProbeTimeout
	}
	if g.RetransmitMult == 0 {
		g.RetransmitMult = d.RetransmitMult
	}
	if g.PushPullInterval == 0 {
		g.PushPullInterval = d.PushPullInterval
	}
	return g
}

// Validate checks the timing: nothing negative, and a probe timeout shorter than the probe interval
// (memberlist would otherwise start a probe before the last one timed out).
func (g GossipTiming) Validate() error {
	if g.GossipInterval < 0 || g.ProbeInterval < 0 || g.ProbeTimeout < 0 || g.PushPullInterval < 0 {
		return errors.New("memberlist: negative gossip, probe or push/pull interval")
	}
	if g.GossipNodes < 0 || g.RetransmitMult < 0 {
		return errors.New("memberlist: negative gossip nodes or retransmit factor")
	}
	if e := g.withDefaults(); e.ProbeTimeout >= e.ProbeInterval {
		return fmt.Errorf("memberlist: probe timeout %s must be shorter than the probe interval %s", e.ProbeTimeout, e.ProbeInterval)
	}
	return nil
}

// apply sets the timing on a memberlist configuration.
func (g GossipTiming) apply(mc *memberlist.Config) {
	e := g.withDefaults()
	mc.GossipInterval, mc.GossipNodes = e.GossipInterval, e.GossipNodes
	mc.ProbeInterval, mc.ProbeTimeout = e.ProbeInterval, e.ProbeTimeout
	mc.RetransmitMult, mc.PushPullInterval = e.RetransmitMult, e.PushPullInterval
}

// Validate checks the configuration.
func (c MemberlistConfig) Validate() error {
	if c.NodeName == "" {
		return errors.New("memberlist: no node name")
	}
	switch c.Role {
	case RoleIngester:
		if c.Endpoint == "" {
			return errors.New("memberlist: an ingester needs its write endpoint")
		}
	case RoleRouter:
	default:
		return fmt.Errorf("memberlist: role %q is neither %q nor %q", c.Role, RoleIngester, RoleRouter)
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return errors.New("memberlist: port out of range")
	}
	if c.DeadTimeout < 0 || c.JoinRetry < 0 {
		return errors.New("memberlist: negative dead timeout or join retry")
	}
	if c.DeadNodeReclaimTime < 0 {
		return fmt.Errorf("memberlist: negative dead node reclaim time %s", c.DeadNodeReclaimTime)
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("memberlist: secret key of %d bytes, want 16, 24 or 32", len(c.SecretKey))
	}
	if err := c.Timing.Validate(); err != nil {
		return err
	}
	// The largest metadata this member announces: leaving, with a ring hash.
	meta, err := json.Marshal(NodeMeta{Role: c.Role, Endpoint: c.Endpoint, Zone: c.Zone, State: StateLeaving, Ring: fmt.Sprintf("%016x", uint64(0))})
	if err != nil {
		return err
	}
	if len(meta) > maxMetaSize {
		return fmt.Errorf("memberlist: node metadata of %d bytes exceeds %d (endpoint or zone too long)", len(meta), maxMetaSize)
	}
	return c.Options.Validate()
}

// LoadSecretKey reads a gossip encryption key from a file: 16, 24 or 32 bytes, raw or base64
// (surrounding white space is ignored).
func LoadSecretKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if k := bytes.TrimSpace(data); len(k) > 0 {
		if dec, err := base64.StdEncoding.DecodeString(string(k)); err == nil && validKeyLen(len(dec)) {
			return dec, nil
		}
		if validKeyLen(len(k)) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("secret key file %s: want 16, 24 or 32 bytes, raw or base64", path)
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }
