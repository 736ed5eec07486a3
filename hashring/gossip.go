package hashring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Role is what a member does in the cluster.
type Role string

const (
	// RoleIngester stores series: an active ingester owns a share of the ring.
	RoleIngester Role = "ingester"
	// RoleRouter only routes writes; it is a member (it learns the ring) but owns nothing.
	RoleRouter Role = "router"
)

// MemberState is the lifecycle state a member announces in its metadata.
type MemberState string

const (
	// StateJoining is a member started and not yet part of the ring.
	StateJoining MemberState = "joining"
	// StateActive is a member running; an active ingester owns a share of the ring.
	StateActive MemberState = "active"
	// StateLeaving is a member stopping gracefully, dropped from the ring at once.
	StateLeaving MemberState = "leaving"
	// StateDead is never announced: it is what the status reports for a member memberlist declared
	// dead and that is kept in the ring until MemberlistConfig.DeadTimeout.
	StateDead MemberState = "dead"
)

// DefaultDeadTimeout is the default of MemberlistConfig.DeadTimeout (--memberlist.dead-timeout).
const DefaultDeadTimeout = 5 * time.Minute

// DefaultDeadNodeReclaimTime is the default of --memberlist.dead-node-reclaim-time
// (MemberlistConfig.DeadNodeReclaimTime): long enough that a dead message has reached every member
// (a few gossip rounds, well under a second on a LAN) and that two processes wrongly sharing a name
// cannot swap it faster than that; short enough that a pod recreated under a new address is a member
// again about 5 s after it was declared dead, instead of the 30–60 s of memberlist's default.
const DefaultDeadNodeReclaimTime = 5 * time.Second

// DefaultGossipPort is memberlist's usual port.
const DefaultGossipPort = 7946

// maxMetaSize bounds a member's encoded NodeMeta (memberlist's own limit is memberlist.MetaMaxSize).
const maxMetaSize = 512

// rebuildDelay debounces ring rebuilds: a burst of membership events produces one new snapshot.
const rebuildDelay = 200 * time.Millisecond

// NodeMeta is what each member publishes about itself, as JSON in its memberlist metadata (at most
// 512 bytes).
type NodeMeta struct {
	// Role is ingester or router.
	Role Role `json:"role"`
	// Endpoint is the member's write address (its --grpc-address as others reach it); the ring
	// identity of an ingester. Empty for a router.
	Endpoint string `json:"endpoint,omitempty"`
	// Zone is the member's availability zone (empty: none).
	Zone string `json:"zone,omitempty"`
	// State is joining, active or leaving.
	State MemberState `json:"state"`
	// Ring is the config hash (16 hex digits) of the ring the member serves, empty before it has
	// one: a leaving ingester waits until every member announces a ring without it (see
	// MemberlistSource.AnnounceLeaving), and operators can compare rings from one status page.
	Ring string `json:"ring,omitempty"`
}

// MemberStatus is one member as this node sees it.
type MemberStatus struct {
	Name     string      `json:"name"`
	Address  string      `json:"address"` // gossip address
	Role     Role        `json:"role"`
	Endpoint string      `json:"endpoint,omitempty"`
	Zone     string      `json:"zone,omitempty"`
	State    MemberState `json:"state"`
	// DeadSince is set for a dead member kept in the ring.
	DeadSince *time.Time `json:"dead_since,omitempty"`
	// Ring is the config hash of the ring the member announces it serves.
	Ring string `json:"ring,omitempty"`
	// InRing says whether the member owns a share of the ring serving now.
	InRing bool `json:"in_ring"`
}

type member struct {
	name      string
	addr      string
	meta      NodeMeta
	dead      bool
	deadSince time.Time
}

// MemberlistSource builds the ring from the members of a memberlist cluster: the ketama ring
// ("default" hashring, every tenant) over the active ingesters, sorted by endpoint, zones as AZs. It
// has the consumer surface of FileSource (Current, Changed, Err, Run).
//
// Dead-member rule: a member that memberlist declares dead (it stopped answering probes) stays in
// the ring for DeadTimeout: writes to it fail and the write quorum covers them, and a restart within
// the timeout (same node name) moves no series. After the timeout it is dropped and its share moves.
// A member that leaves gracefully (announces state=leaving, then memberlist Leave) is dropped at once.
//
// Snapshot.ConfigHash is the xxhash64 of the ring's member set (endpoints and zones), equal on every
// node that sees the same members; Version grows by one with every new member set.
type MemberlistSource struct {
	cfg    MemberlistConfig
	logger *slog.Logger
	m      *metrics
	ml     *memberlist.Memberlist
	now    func() time.Time

	localAddr   string
	memberGauge *prometheus.GaugeVec

	cur     atomic.Pointer[Snapshot]
	running atomic.Bool
	stopped atomic.Bool
	kick    chan struct{}
	// staleSelf is set when a member's state, received while joining, has this member's name at
	// another address: this member restarted under a new address and that member has not taken it
	// yet (see join).
	staleSelf atomic.Bool
	// settled is closed after Run's first ring build that follows the join: from then on the ring
	// (or the reason there is none) reflects the cluster, not a node that has not met it yet.
	settled    chan struct{}
	settleOnce sync.Once

	mu      sync.Mutex // guards the fields below
	self    NodeMeta
	members map[string]*member
	changed chan struct{}
	updated chan struct{} // closed (and replaced) on every membership event and rebuild
	err     error
}

// NewMemberlistSource starts memberlist (listening on the bind address) announcing this member as
// joining, and registers the source's metrics on reg (nil: none). Run joins the cluster and serves
// the ring; call Shutdown (or let Run end) to stop memberlist.
func NewMemberlistSource(cfg MemberlistConfig, logger *slog.Logger, reg prometheus.Registerer) (*MemberlistSource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DeadTimeout == 0 {
		cfg.DeadTimeout = DefaultDeadTimeout
	}
	if cfg.JoinRetry == 0 {
		cfg.JoinRetry = 2 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &MemberlistSource{
		cfg:     cfg,
		logger:  logger.With("component", "hashring", "membership", "memberlist", "node", cfg.NodeName),
		m:       newMetrics(),
		now:     time.Now,
		kick:    make(chan struct{}, 1),
		settled: make(chan struct{}),
		self:    NodeMeta{Role: cfg.Role, Endpoint: cfg.Endpoint, Zone: cfg.Zone, State: StateJoining},
		members: map[string]*member{},
		changed: make(chan struct{}),
		updated: make(chan struct{}),
		err:     errors.New("memberlist: no active ingester yet"),
		memberGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_hashring_members",
			Help: "Memberlist members this node knows, by role and state (dead: declared dead, kept in the ring until --memberlist.dead-timeout).",
		}, []string{"role", "state"}),
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr
	if mc.BindAddr == "" {
		mc.BindAddr = "0.0.0.0"
	}
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = cfg.BindPort
	}
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = cfg.SecretKey
	}
	mc.Delegate = (*delegate)(s)
	mc.Events = (*events)(s)
	mc.Merge = (*merges)(s)
	mc.Conflict = (*conflicts)(s)
	mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	mc.LogOutput = &logWriter{s.logger}
	cfg.Timing.apply(mc)
	if cfg.tune != nil {
		cfg.tune(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("memberlist: %w", err)
	}
	s.ml = ml
	// Read once, before Run: memberlist's LocalNode races with UpdateNode.
	n := ml.LocalNode()
	s.localAddr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	if err := s.m.register(reg); err != nil {
		_ = ml.Shutdown()
		return nil, err
	}
	if reg != nil {
		if err := reg.Register(s.memberGauge); err != nil {
			_ = ml.Shutdown()
			return nil, fmt.Errorf("register hashring metrics: %w", err)
		}
	}
	return s, nil
}

// Current returns the snapshot serving now: nil until the first ring could be built.
func (s *MemberlistSource) Current() *Snapshot { return s.cur.Load() }

// Changed returns a channel closed when a newer snapshot is published. Call it again after it fires.
func (s *MemberlistSource) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Err returns why the current member set gives no ring (the last good snapshot keeps serving), or nil.
func (s *MemberlistSource) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Settled returns a channel closed once Run has joined (or tried to join) the cluster and built a
// first ring from what it learnt, successfully or not; a starting node waits for it before it says
// ready, so that it does not refuse writes for want of a ring it is about to have.
func (s *MemberlistSource) Settled() <-chan struct{} { return s.settled }

// LocalAddr is this member's gossip address (host:port), to give other members to join.
func (s *MemberlistSource) LocalAddr() string { return s.localAddr }

// Members returns every member known, sorted by name, as this node sees it.
func (s *MemberlistSource) Members() []MemberStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	inRing := map[string]bool{}
	if snap := s.cur.Load(); snap != nil {
		for _, h := range snap.Rings.Hashrings() {
			for _, e := range h.Ring.Endpoints() {
				inRing[e.Address] = true
			}
		}
	}
	out := make([]MemberStatus, 0, len(s.members))
	for _, m := range s.members {
		st := MemberStatus{Name: m.name, Address: m.addr, Role: m.meta.Role, Endpoint: m.meta.Endpoint, Zone: m.meta.Zone, State: m.meta.State, Ring: m.meta.Ring}
		if m.dead {
			st.State = StateDead
			t := m.deadSince
			st.DeadSince = &t
		}
		st.InRing = m.meta.Role == RoleIngester && inRing[m.meta.Endpoint]
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Run joins the cluster (retrying every JoinRetry until a member answers), announces this member as
// active and rebuilds the ring on membership changes until ctx is done; every new ring is announced
// (NodeMeta.Ring). It then leaves gracefully (Leave) and shuts memberlist down, or only shuts it down
// with KeepOnShutdown. It may be called once and leaves no goroutine behind.
func (s *MemberlistSource) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("hashring: MemberlistSource.Run called twice")
	}
	defer func() {
		if s.cfg.KeepOnShutdown {
			s.logger.Info("stopping without leaving: the others keep this member in the ring for the dead timeout", "dead_timeout", s.cfg.DeadTimeout)
			_ = s.Shutdown()
			return
		}
		_ = s.Leave(leaveAnnounceTimeout)
	}()
	// Announcements wait for a gossip round: in their own goroutine, so that membership events keep
	// being handled meanwhile; several new rings in a row are announced once.
	announce := make(chan struct{}, 1)
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		for range announce {
			s.announce()
		}
	}()
	defer func() { close(announce); <-announced }()

	joined := len(s.cfg.Join) == 0
	if !joined {
		joined = s.join()
	}
	// Active even when nobody answered yet: the first member of a cluster has nobody to join. Not
	// when a stop began meanwhile (AnnounceLeaving): leaving is final.
	s.mu.Lock()
	joining := s.self.State == StateJoining
	if joining {
		s.self.State = StateActive
	}
	s.mu.Unlock()
	if joining {
		s.announce()
	}

	joinTimer := time.NewTimer(s.cfg.JoinRetry)
	if joined {
		joinTimer.Stop()
	}
	defer joinTimer.Stop()
	rebuild := time.NewTimer(0)
	defer rebuild.Stop()
	var expire *time.Timer
	var expireC <-chan time.Time
	defer func() {
		if expire != nil {
			expire.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-joinTimer.C:
			if !s.join() {
				joinTimer.Reset(s.cfg.JoinRetry)
			}
		case <-s.kick:
			rebuild.Reset(rebuildDelay)
		case <-expireC:
			rebuild.Reset(0)
		case <-rebuild.C:
			next, published := s.rebuild()
			s.settleOnce.Do(func() { close(s.settled) })
			if published {
				select {
				case announce <- struct{}{}:
				default:
				}
			}
			if next > 0 {
				if expire == nil {
					expire = time.NewTimer(next)
				} else {
					expire.Reset(next)
				}
				expireC = expire.C
			}
		}
	}
}

// join tries the join list once (names resolved now), together with every member known alive, and
// reports whether this member is in: a member answered, and none of those that answered has this
// member's name at another address. A member restarted under a new address (a recreated pod) is
// refused by the others until they declared its old address dead and DeadNodeReclaimTime passed;
// nothing in memberlist tells it when that happened, and it gossips its state again only every
// PushPullInterval. So it joins again (every JoinRetry) until every member it contacts lists it at
// its address. A member sends its state before it merges the joiner's, so the join that made a
// member take the new address is confirmed by the next one.
func (s *MemberlistSource) join() bool {
	targets := slices.Clone(s.cfg.Join)
	for _, n := range s.ml.Members() {
		// Alive only: a suspect member may not answer, and Join waits for each in turn.
		if n.Name != s.cfg.NodeName && n.State == memberlist.StateAlive {
			targets = append(targets, n.Address())
		}
	}
	s.staleSelf.Store(false)
	n, err := s.ml.Join(targets)
	if n > 0 {
		if s.staleSelf.Swap(false) {
			s.logger.Warn("some members still know this member's name at another address (restarted under a new address?); joining again until they take this one, which they do once they declared the old one dead and --memberlist.dead-node-reclaim-time passed",
				"address", s.localAddr, "dead_node_reclaim_time", s.cfg.DeadNodeReclaimTime, "retry", s.cfg.JoinRetry)
			return false
		}
		s.logger.Info("joined the memberlist cluster", "contacted", n)
		return true
	}
	s.logger.Warn("cannot join the memberlist cluster yet; retrying", "join", strings.Join(s.cfg.Join, ","), "err", err, "retry", s.cfg.JoinRetry)
	return false
}

// setState announces a new state of this member to the cluster.
func (s *MemberlistSource) setState(st MemberState) {
	s.mu.Lock()
	s.self.State = st
	s.mu.Unlock()
	s.announce()
}

// announce gossips this member's metadata (state and the ring it serves now) and waits until it was
// sent to one member at least.
func (s *MemberlistSource) announce() {
	if s.stopped.Load() {
		return
	}
	if err := s.ml.UpdateNode(5 * time.Second); err != nil {
		s.logger.Warn("announcing member metadata", "err", err)
	}
}

// Leave announces state=leaving, so that every node drops this member from its ring at once, then
// leaves the cluster and shuts memberlist down. timeout bounds each of the two broadcasts.
func (s *MemberlistSource) Leave(timeout time.Duration) error {
	if s.stopped.Load() {
		return nil
	}
	s.mu.Lock()
	s.self.State = StateLeaving
	s.mu.Unlock()
	err := s.ml.UpdateNode(timeout)
	err = errors.Join(err, s.ml.Leave(timeout))
	return errors.Join(err, s.Shutdown())
}

// Shutdown stops memberlist without leaving: the other members will declare this one dead (as for
// a crash). Safe to call more than once.
func (s *MemberlistSource) Shutdown() error {
	if !s.stopped.CompareAndSwap(false, true) {
		return nil
	}
	return s.ml.Shutdown()
}

// rebuild publishes the ring of the current members if it changed (published) and returns how long
// until the next dead member expires (0: none).
func (s *MemberlistSource) rebuild() (next time.Duration, published bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.wakeLocked()
	now := s.now()
	eps := map[string]*member{}
	for name, m := range s.members {
		if m.dead {
			left := s.cfg.DeadTimeout - now.Sub(m.deadSince)
			if left <= 0 {
				s.logger.Info("dead member dropped from the ring after the dead timeout", "member", name, "endpoint", m.meta.Endpoint)
				delete(s.members, name)
				continue
			}
			if next == 0 || left < next {
				next = left
			}
		}
		if m.meta.Role != RoleIngester || m.meta.State != StateActive || m.meta.Endpoint == "" {
			continue
		}
		// Two members claiming one endpoint (a restart under a new name): the live one wins, then
		// the smaller name, so that every node picks the same.
		if o := eps[m.meta.Endpoint]; o == nil || (o.dead && !m.dead) || (o.dead == m.dead && m.name < o.name) {
			eps[m.meta.Endpoint] = m
		}
	}
	s.memberGauge.Reset()
	for _, m := range s.members {
		st := m.meta.State
		if m.dead {
			st = StateDead
		}
		s.memberGauge.WithLabelValues(string(m.meta.Role), string(st)).Inc()
	}
	endpoints := make([]Endpoint, 0, len(eps))
	for _, m := range eps {
		endpoints = append(endpoints, Endpoint{Address: m.meta.Endpoint, AZ: m.meta.Zone})
	}
	sort.Slice(endpoints, func(i, j int) bool { return endpoints[i].Address < endpoints[j].Address })
	h := xxhash.New()
	for _, e := range endpoints {
		_, _ = h.WriteString(e.Address)
		_, _ = h.Write([]byte{0})
		_, _ = h.WriteString(e.AZ)
		_, _ = h.Write([]byte{'\n'})
	}
	sum := h.Sum64()
	prev := s.cur.Load()
	if prev != nil && prev.ConfigHash == sum {
		s.err = nil
		return next, false
	}
	if len(endpoints) == 0 {
		s.err = errors.New("memberlist: no active ingester")
		return next, false
	}
	rings, err := NewRings([]RingConfig{{Name: "default", Endpoints: endpoints, Algorithm: AlgorithmKetama}}, s.cfg.Options)
	if err != nil {
		if s.err == nil || s.err.Error() != err.Error() {
			s.logger.Error("cannot build a ring from the members; the last good ring keeps serving", "err", err, "ingesters", len(endpoints))
			s.m.reloadsFailure.Inc()
		}
		s.err = fmt.Errorf("memberlist ring: %w", err)
		s.m.lastSuccess.Set(0)
		return next, false
	}
	snap := &Snapshot{Rings: rings, Version: 1, ConfigHash: sum, LoadedAt: now}
	if prev != nil {
		snap.Version = prev.Version + 1
	}
	s.cur.Store(snap)
	s.err = nil
	close(s.changed)
	s.changed = make(chan struct{})
	s.m.serving(snap)
	s.m.reloadsSuccess.Inc()
	s.logger.Info("ring rebuilt from members", "version", snap.Version, "config_hash", fmt.Sprintf("%016x", sum), "ingesters", len(endpoints))
	return next, true
}

// wakeLocked wakes those waiting for a membership event or a rebuild (AnnounceLeaving).
func (s *MemberlistSource) wakeLocked() {
	close(s.updated)
	s.updated = make(chan struct{})
}
