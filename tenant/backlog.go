package tenant

import (
	"context"
	"errors"
	"slices"
	"time"
)

// The backlog is the tenants found on disk at start-up that the open guard had no room for
// (openguard.go). Their WALs hold acknowledged samples that no query sees and no shipper uploads while
// the tenant is not open. A write for such a tenant opens it like any other; the ones nobody writes to
// again are drained by Run, one at a time, as room appears: opened (the WAL replayed), their head cut
// into blocks, the blocks shipped, and closed again as an idle tenant is pruned, which gives the room
// back to the next. Pruning idle tenants makes room too.

// drainInterval is how often Run looks at the backlog (an empty one costs a look); drainBudget bounds the time
// of one try, so that shipping and pruning, which share Run's loop, are not held up by a long backlog.
const (
	drainInterval = time.Second
	drainBudget   = 10 * time.Second
)

// setBacklog records the tenants OpenExisting had no room for.
func (m *Manager) setBacklog(ids []string) {
	slices.Sort(ids)
	m.mu.Lock()
	m.backlog = ids
	m.mu.Unlock()
	m.metrics.backlog.Set(float64(len(ids)))
}

// drainBacklog drains backlog tenants until there is no room for the next one, the backlog is empty,
// or drainBudget has passed. It reports whether tenants are left. A tenant that fails to open for
// another reason than room leaves the backlog: like any tenant whose open fails, it is tried again by
// its next write.
func (m *Manager) drainBacklog(ctx context.Context) (left bool) {
	start := m.now()
	for m.now().Sub(start) < drainBudget && ctx.Err() == nil {
		m.mu.Lock()
		if len(m.backlog) == 0 {
			m.mu.Unlock()
			return false
		}
		id := m.backlog[0]
		_, written := m.tenants[id] // a write opened it: it is served and shipped like the rest
		m.mu.Unlock()
		if !written {
			d, err := m.get(ctx, id)
			if errors.Is(err, ErrNoRoom) || errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return true
			}
			if err != nil {
				m.logger.Error("tenant found on disk at start-up failed to open; its next write tries again", "tenant", id, "err", err)
			} else if err := m.drain(ctx, d); err != nil {
				// Open, it is pruned when idle like any other tenant.
				m.logger.Warn("draining a tenant found on disk at start-up failed; it stays open", "tenant", id, "err", err)
			}
		}
		m.mu.Lock()
		m.backlog = m.backlog[1:] // only the drain takes tenants out
		n := len(m.backlog)
		m.mu.Unlock()
		m.metrics.backlog.Set(float64(n))
	}
	return true
}

// drain flushes, ships and closes d, just opened for the backlog, unless it was written to since.
func (m *Manager) drain(ctx context.Context, d *db) error {
	opened := d.lastWrite.Load()
	closed, err := m.pruneTenant(ctx, d, func(lastWrite int64) bool { return lastWrite == opened })
	if closed {
		m.logger.Info("tenant found on disk at start-up drained: WAL replayed, head flushed and shipped, TSDB closed", "tenant", d.id)
	}
	return err
}
