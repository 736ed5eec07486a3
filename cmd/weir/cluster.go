package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/receive"
)

// ringSource is where the ring comes from: a hashrings file (hashring.FileSource) or gossip
// (hashring.MemberlistSource).
type ringSource interface {
	Current() *hashring.Snapshot
	Changed() <-chan struct{}
	Err() error
	Run(ctx context.Context) error
}

// cluster is what a node needs to take part in a hashring: the ring source it follows, the router in
// front of its storage, and the connections to the other nodes. Built only with a hashrings file or
// --ring.membership=memberlist.
type cluster struct {
	ring   ringSource
	gossip *hashring.MemberlistSource // nil in file mode
	router *receive.Router
	peers  *receive.PeerWriter
	cfg    config
	logger *slog.Logger
}

// newCluster builds the routing side of a node. local is this node's storage, nil for a router that
// stores nothing. A missing or invalid hashrings file is not a start-up error: the node starts, answers
// remote write with 503 and the reason, and takes the file as soon as it is fixed.
func newCluster(cfg config, local receive.TenantStorage, logger *slog.Logger, reg prometheus.Registerer) (*cluster, error) {
	var (
		src    ringSource
		gossip *hashring.MemberlistSource
	)
	opts := hashring.Options{DefaultAlgorithm: hashring.Algorithm(cfg.hashringsAlg), ReplicationFactor: cfg.router.ReplicationFactor}
	switch {
	case cfg.ringMembership == "memberlist":
		g, err := newMemberlistSource(cfg, logger, reg)
		if err != nil {
			return nil, err
		}
		src, gossip = g, g
	case cfg.hashrings != "":
		s, err := hashring.NewStaticSource([]byte(cfg.hashrings), opts, logger, reg)
		if err != nil {
			return nil, fmt.Errorf("--receive.hashrings: %w", err)
		}
		src = s
	default:
		fsrc, err := hashring.NewFileSource(hashring.FileConfig{
			Path:          cfg.hashringsFile,
			Interval:      cfg.hashringsRefresh,
			Options:       opts,
			StartDegraded: true,
		}, logger, reg)
		if err != nil {
			return nil, fmt.Errorf("--receive.hashrings-file: %w", err)
		}
		if fsrc.Current() == nil {
			logger.Error("no usable hashring: remote write answers 503 until the hashrings file is fixed", "file", cfg.hashringsFile, "err", fsrc.Err())
		}
		src = fsrc
	}
	peers, err := receive.NewPeerWriter(cfg.peerConfig(), logger, reg)
	if err != nil {
		if gossip != nil {
			_ = gossip.Shutdown()
		}
		return nil, err
	}
	rings := receive.RingsFrom(src)
	ringFunc := func(tenantID string) (hashring.Ring, error) {
		if src.Current() == nil {
			if err := src.Err(); err != nil {
				return nil, fmt.Errorf("%w: %w", receive.ErrNoRing, err)
			}
			return nil, receive.ErrNoRing
		}
		return rings(tenantID)
	}
	router, err := receive.NewRouter(cfg.router, ringFunc, local, peers, logger, reg)
	if err != nil {
		_ = peers.Close()
		if gossip != nil {
			_ = gossip.Shutdown()
		}
		return nil, err
	}
	logger.Info("hashring routing on", "membership", cfg.ringMembership, "file", cfg.hashringsFile, "replication_factor", cfg.router.ReplicationFactor,
		"quorum", receive.Quorum(cfg.router.ReplicationFactor), "local_endpoint", cfg.router.LocalEndpoint)
	return &cluster{ring: src, gossip: gossip, router: router, peers: peers, cfg: cfg, logger: logger}, nil
}

// newMemberlistSource starts gossip: the node is an ingester (its --receive.local-endpoint is its
// ring endpoint) when it stores data, else a router.
func newMemberlistSource(cfg config, logger *slog.Logger, reg prometheus.Registerer) (*hashring.MemberlistSource, error) {
	mc, err := cfg.memberlist.Config(cfg.router.LocalEndpoint, hashring.Options{ReplicationFactor: cfg.router.ReplicationFactor})
	if err != nil {
		return nil, err
	}
	src, err := hashring.NewMemberlistSource(mc, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("--ring.membership=memberlist: %w", err)
	}
	logger.Info("memberlist started", "node", mc.NodeName, "role", mc.Role, "gossip_address", src.LocalAddr(), "join", strings.Join(mc.Join, ","))
	return src, nil
}

// firstRingWait bounds how long a starting memberlist node stays unready waiting for gossip to settle.
const firstRingWait = 10 * time.Second

// waitFirstRing holds readiness until gossip has settled (joined and built a first ring from the
// members it met), so that a starting node does not take client writes it could only refuse (503: no
// ring yet, for the few hundred milliseconds between joining and the first ring). It does not wait
// for a ring that cannot form yet: membership is not readiness, and a node of a cluster with fewer
// ingesters than the replication factor becomes ready and answers 503 with the reason. A hashrings
// file is loaded (or refused) before the node starts.
func (c *cluster) waitFirstRing(ctx context.Context, limit time.Duration) {
	if c.gossip == nil {
		return
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-c.gossip.Settled():
		if c.ring.Current() == nil {
			c.logger.Info("no ring yet: remote write answers 503 until enough ingesters are active", "reason", c.ring.Err())
		}
	case <-timer.C:
		c.logger.Warn("gossip has not settled: ready anyway", "waited", limit)
	case <-ctx.Done():
	}
}

// run follows the ring source until ctx ends, dropping the connections of endpoints that left. A
// ring change never touches local storage: no flush, no readiness change.
func (c *cluster) run(ctx context.Context) error {
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		c.pruneLoop(ctx)
	}()
	err := c.ring.Run(ctx)
	<-pruned
	return err
}

// pruneLoop closes the connections to endpoints that left the ring, one forward timeout after the
// change: a request that took the old ring just before may still be forwarding to a member that
// left (a leaving ingester takes writes until every router dropped it), and closing the connection
// under it would fail a write that is about to succeed.
func (c *cluster) pruneLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	defer timer.Stop()
	for {
		changed := c.ring.Changed()
		select {
		case <-ctx.Done():
			return
		case <-changed:
			timer.Reset(c.cfg.router.ForwardTimeout)
			continue
		case <-timer.C:
		}
		snap := c.ring.Current()
		if snap == nil {
			continue
		}
		keep := map[string]bool{}
		for _, h := range snap.Rings.Hashrings() {
			for _, e := range h.Ring.Endpoints() {
				keep[e.Address] = true
			}
		}
		if n := c.peers.Prune(func(addr string) bool { return keep[addr] }); n > 0 {
			c.logger.Info("closed the connections to endpoints that left the ring", "endpoints", n)
		}
	}
}

// leave runs first on SIGTERM, while the node still takes every write: with gossip, an ingester
// announces that it is leaving and waits (at most --memberlist.leave-timeout) until every member
// serves a ring without it, so that no router sends it new writes once it stops taking them. With a
// hashrings file the operator edits the file; there is nothing to announce.
func (c *cluster) leave() {
	if c.gossip == nil {
		return
	}
	if !c.cfg.memberlist.LeaveOnShutdown {
		c.logger.Info("--memberlist.leave-on-shutdown=false: staying in the ring; writes here fail once they stop and the quorum covers them",
			"dead_timeout", c.cfg.memberlist.DeadTimeout)
		return
	}
	start := time.Now()
	c.logger.Info("leaving the ring: announcing it, still taking writes", "leave_timeout", c.cfg.memberlist.LeaveTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.memberlist.LeaveTimeout)
	defer cancel()
	p := c.gossip.AnnounceLeaving(ctx)
	took := time.Since(start).Round(time.Millisecond)
	if p.Done {
		c.logger.Info("left the ring: no router sends new writes here any more", "progress", p.String(), "took", took)
		return
	}
	c.logger.Warn("--memberlist.leave-timeout: some members may still send writes here; they fail once writes stop and the quorum covers them",
		"progress", p.String(), "took", took)
}

// close waits for forwards still in flight, then drops the connections. Gossip has stopped with run
// (graceful leave); Shutdown covers a node that never ran.
func (c *cluster) close() error {
	c.router.Close()
	err := c.peers.Close()
	if c.gossip != nil {
		err = errors.Join(err, c.gossip.Shutdown())
	}
	return err
}

// ringStatus is the JSON of /api/v1/status/ring: what operators and tests compare across nodes.
type ringStatus struct {
	ReplicationFactor int        `json:"replication_factor"`
	Quorum            int        `json:"quorum"`
	LocalEndpoint     string     `json:"local_endpoint"`
	Version           uint64     `json:"version"`
	ConfigHash        string     `json:"config_hash"`
	LoadedAt          string     `json:"loaded_at,omitempty"`
	Error             string     `json:"error,omitempty"`
	Hashrings         []ringJSON `json:"hashrings"`
	// Membership is file or memberlist; Members are the gossip members (memberlist only).
	Membership string                  `json:"membership"`
	Members    []hashring.MemberStatus `json:"members,omitempty"`
}

type ringJSON struct {
	Name           string            `json:"name"`
	Algorithm      string            `json:"algorithm"`
	Tenants        []string          `json:"tenants"`
	Endpoints      []endpointJSON    `json:"endpoints"`
	ExternalLabels map[string]string `json:"external_labels,omitempty"`
}

type endpointJSON struct {
	Address string `json:"address"`
	AZ      string `json:"az,omitempty"`
}

func (c *cluster) statusHandler(w http.ResponseWriter, _ *http.Request) {
	st := ringStatus{
		ReplicationFactor: c.cfg.router.ReplicationFactor,
		Quorum:            receive.Quorum(c.cfg.router.ReplicationFactor),
		LocalEndpoint:     c.cfg.router.LocalEndpoint,
		Hashrings:         []ringJSON{},
		Membership:        c.cfg.ringMembership,
	}
	if c.gossip != nil {
		st.Members = c.gossip.Members()
	}
	if err := c.ring.Err(); err != nil {
		st.Error = err.Error()
	}
	if snap := c.ring.Current(); snap != nil {
		st.Version, st.ConfigHash = snap.Version, fmt.Sprintf("%016x", snap.ConfigHash)
		st.LoadedAt = snap.LoadedAt.UTC().Format("2006-01-02T15:04:05.000Z")
		for _, h := range snap.Rings.Hashrings() {
			r := ringJSON{Name: h.Name, Algorithm: string(h.Config.Algorithm), Tenants: h.Config.Tenants, ExternalLabels: h.Config.ExternalLabels.Map()}
			for _, e := range h.Ring.Endpoints() {
				r.Endpoints = append(r.Endpoints, endpointJSON{Address: e.Address, AZ: e.AZ})
			}
			st.Hashrings = append(st.Hashrings, r)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}
