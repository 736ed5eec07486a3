package hashring

import (
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/hashicorp/memberlist"
)

// The callbacks memberlist calls on a MemberlistSource: membership events, this member's metadata,
// the state merged at a join, name conflicts, and its log lines. Each is a distinct type over the
// same struct, so that its method set is exactly the memberlist interface it implements. memberlist
// calls them from its own goroutines, some with its locks held: none of them may block.

// notify records a membership event and wakes Run. Called by memberlist: it must not block.
func (s *MemberlistSource) notify(n *memberlist.Node, gone bool) {
	var meta NodeMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil && !gone {
		s.logger.Warn("member with unreadable metadata ignored", "member", n.Name, "err", err)
		return
	}
	s.mu.Lock()
	switch {
	case !gone:
		// A member the ring counts (active, or dead within the dead timeout) that comes back, as a
		// restarted pod does, announces joining until its Run has joined; it keeps its place
		// meanwhile, or the ring would drop it for that moment and move its series twice.
		if old := s.members[n.Name]; old != nil && old.meta.State == StateActive && meta.State == StateJoining &&
			old.meta.Endpoint == meta.Endpoint && old.meta.Role == meta.Role {
			meta.State = StateActive
		}
		s.members[n.Name] = &member{name: n.Name, addr: n.Address(), meta: meta}
	case n.State == memberlist.StateLeft || meta.State == StateLeaving:
		delete(s.members, n.Name)
	default:
		if m := s.members[n.Name]; m != nil && !m.dead {
			m.dead, m.deadSince = true, s.now()
			s.logger.Warn("member declared dead; it stays in the ring until the dead timeout", "member", n.Name, "endpoint", m.meta.Endpoint, "dead_timeout", s.cfg.DeadTimeout)
		}
	}
	s.wakeLocked()
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// delegate publishes this member's metadata.
type delegate MemberlistSource

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	meta := d.self
	d.mu.Unlock()
	if snap := d.cur.Load(); snap != nil {
		meta.Ring = hashString(snap.ConfigHash)
	}
	b, _ := json.Marshal(meta) // size checked by Validate
	if len(b) > limit {
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg([]byte)                {}
func (d *delegate) GetBroadcasts(_, _ int) [][]byte { return nil }
func (d *delegate) LocalState(bool) []byte          { return nil }
func (d *delegate) MergeRemoteState([]byte, bool)   {}

// merges checks, in the state a member sends when this one joins, how that member knows this one
// (see MemberlistSource.join).
type merges MemberlistSource

// NotifyMerge never refuses a merge; it only notes whether peers list this member's name at another
// address than its own. Called by memberlist: it must not block.
func (d *merges) NotifyMerge(peers []*memberlist.Node) error {
	s := (*MemberlistSource)(d)
	if !s.running.Load() { // localAddr is written before Run, which sets running
		return nil
	}
	for _, p := range peers {
		if p.Name == s.cfg.NodeName && p.Address() != s.localAddr {
			s.staleSelf.Store(true)
		}
	}
	return nil
}

// conflicts logs the names claimed by two addresses: memberlist logs them at debug level only, and
// they are why a pod recreated under a new address is not a member yet.
type conflicts MemberlistSource

// NotifyConflict is called by memberlist with its node lock held: it only logs.
func (d *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	d.logger.Warn("member name claimed from another address: the known address keeps it until it is declared dead and --memberlist.dead-node-reclaim-time has passed",
		"member", existing.Name, "known", existing.Address(), "other", other.Address(), "reclaim_time", d.cfg.DeadNodeReclaimTime)
}

// events feeds memberlist's membership events to the source.
type events MemberlistSource

func (e *events) NotifyJoin(n *memberlist.Node)   { (*MemberlistSource)(e).notify(n, false) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*MemberlistSource)(e).notify(n, false) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*MemberlistSource)(e).notify(n, true) }

// logWriter sends memberlist's log lines to slog at debug level.
type logWriter struct{ l *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	// memberlist's logger prefixes the standard "2006/01/02 15:04:05 " date; slog has its own.
	if len(line) > 20 && line[4] == '/' && line[7] == '/' && line[19] == ' ' {
		line = line[20:]
	}
	w.l.Debug(line)
	return len(p), nil
}
