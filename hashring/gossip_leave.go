package hashring

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// hashString is how ring hashes appear in member metadata and on the status page.
func hashString(h uint64) string { return fmt.Sprintf("%016x", h) }

// LeaveProgress is where a graceful leave stands: the members that still announce a ring other than
// the one this member serves without itself.
type LeaveProgress struct {
	// Done: every live member serves the ring without this one (or there is nothing to wait for).
	Done bool
	// Pending names the members still announcing another ring ("(this member)" until its's own ring
	// dropped it).
	Pending []string
	// Skipped says why the leave did not wait (the ring cannot do without this member), or "".
	Skipped string
}

// AnnounceLeaving announces state=leaving and waits until every other live member announces the ring
// this member serves without itself, so that no router sends it new writes; or until ctx is done (the
// returned progress then names the members that had not caught up). It neither leaves memberlist nor
// stops it: the member keeps gossiping, and the caller keeps taking writes, so that those a router
// sent on the old ring still land; Run's end (or Leave) leaves the cluster afterwards.
//
// A router owns no series: it announces leaving and returns at once. When the ring cannot be built
// without this member (fewer active ingesters than the replication factor), every node keeps the
// last good ring, with this member in it: waiting would not change that, so it returns at once too,
// and the write quorum covers this member's absence.
func (s *MemberlistSource) AnnounceLeaving(ctx context.Context) LeaveProgress {
	if s.stopped.Load() {
		return LeaveProgress{Done: true}
	}
	s.setState(StateLeaving)
	sync := time.NewTicker(leaveSyncInterval)
	defer sync.Stop()
	for {
		s.mu.Lock()
		p := s.leaveProgressLocked()
		updated := s.updated
		s.mu.Unlock()
		if p.Done {
			return p
		}
		select {
		case <-ctx.Done():
			return p
		case <-updated:
		case <-sync.C:
			s.syncWith(p.Pending)
		}
	}
}

// leaveSyncInterval is how often a leaving member exchanges its state with the members it still
// waits for. Their new ring reaches it by gossip, over UDP, which a loaded node can drop; the next
// full exchange (--memberlist.pullpush-interval, 30s by default) would come after the leave timeout.
const leaveSyncInterval = 2 * time.Second

// syncWith exchanges the full state with the named members over TCP (memberlist's push/pull, which
// a join is): this member's leaving reaches them, and their current metadata, the ring they serve
// among it, reaches this member.
func (s *MemberlistSource) syncWith(names []string) {
	var addrs []string
	for _, n := range s.ml.Members() {
		if slices.Contains(names, n.Name) {
			addrs = append(addrs, n.Address())
		}
	}
	if len(addrs) == 0 {
		return
	}
	if _, err := s.ml.Join(addrs); err != nil {
		s.logger.Debug("state exchange with the members a leave waits for", "members", strings.Join(names, ","), "err", err)
	}
}

// leaveProgressLocked compares what the other members announce with the ring this member serves.
func (s *MemberlistSource) leaveProgressLocked() LeaveProgress {
	if s.self.Role != RoleIngester {
		return LeaveProgress{Done: true}
	}
	snap := s.cur.Load()
	if snap == nil {
		return LeaveProgress{Done: true}
	}
	for _, h := range snap.Rings.Hashrings() {
		if !slices.ContainsFunc(h.Ring.Endpoints(), func(e Endpoint) bool { return e.Address == s.self.Endpoint }) {
			continue
		}
		if s.err != nil {
			return LeaveProgress{Done: true, Skipped: s.err.Error()}
		}
		return LeaveProgress{Pending: []string{"(this member)"}}
	}
	mine := hashString(snap.ConfigHash)
	var p LeaveProgress
	for name, m := range s.members {
		if name == s.cfg.NodeName || m.dead || m.meta.State == StateLeaving || m.meta.Ring == "" {
			continue // not routing, or not yet: nothing to wait for
		}
		if m.meta.Ring != mine {
			p.Pending = append(p.Pending, name)
		}
	}
	slices.Sort(p.Pending)
	p.Done = len(p.Pending) == 0
	return p
}

// String is the progress for a log line.
func (p LeaveProgress) String() string {
	switch {
	case p.Skipped != "":
		return "not waiting: " + p.Skipped
	case p.Done:
		return "every member serves a ring without this one"
	default:
		return "waiting for " + strings.Join(p.Pending, ", ")
	}
}

// leaveAnnounceTimeout bounds each broadcast of Leave when Run ends.
const leaveAnnounceTimeout = 5 * time.Second
