package tenant

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A tenant's TSDB applies --tsdb.retention to its blocks only while it is open, and a pruned tenant
// stays closed until its next write: without more, the blocks of every tenant that stopped writing
// (a decommissioned cluster, one-shot tenants) would stay on local disk for good. So, as Thanos
// Receive does, a tenant whose newest sample is older than the retention when it is pruned, or later
// while it stays closed, has its directory removed: everything in it is past retention, and with a
// bucket every block of it is there.
//
// Only tenants this process pruned are removed: their head was cut into blocks before the close, so
// nothing of theirs is in the WAL alone. A tenant closed any other way (a failed open, a WAL failure,
// the end of the process) holds data only a replay can read, and is left to its next open.

// deletingSuffix marks a tenant directory being removed. '~' is no tenant ID character, so no tenant
// can be named so and existingTenants never takes it for one; leftovers of a crash are removed at the
// next start.
const deletingSuffix = "~deleting"

// pruned records that d, being closed by a prune, holds nothing past its blocks (its head was cut),
// and when its newest data expires. With a bucket it is recorded only if every block reached it. The
// caller holds d.mu exclusively, with the TSDB still open.
func (m *Manager) recordPruned(d *db) {
	newest := d.tsdb.Head().MaxTime() // math.MinInt64 when the head never held a sample
	uploaded := map[string]bool{}
	if d.ship != nil {
		for id := range d.ship.Uploaded() {
			uploaded[id.String()] = true
		}
	}
	for _, b := range d.tsdb.Blocks() {
		if d.ship != nil && !uploaded[b.Meta().ULID.String()] {
			return
		}
		newest = max(newest, b.Meta().MaxTime)
	}
	m.mu.Lock()
	m.expiries[d.id] = time.UnixMilli(newest).Add(m.cfg.Retention)
	m.mu.Unlock()
}

// expireTenants removes the directories of the pruned tenants, not reopened since, whose data is
// past retention. It returns their IDs.
func (m *Manager) expireTenants() []string {
	now := m.now()
	var removed []string
	for _, id := range m.dueExpiries(now) {
		dir := filepath.Join(m.cfg.Dir, id)
		gone := dir + deletingSuffix
		if err := os.RemoveAll(gone); err != nil {
			m.logger.Error("removing an expired tenant's directory", "tenant", id, "dir", gone, "err", err)
			continue
		}
		m.metrics.expired.Inc()
		m.logger.Info("tenant expired: its newest sample is older than --tsdb.retention and every block of it was shipped; its directory is removed",
			"tenant", id, "retention", m.cfg.Retention)
		removed = append(removed, id)
	}
	return removed
}

// dueExpiries renames the directories of the tenants due to expire at now out of the tenants' way
// and returns the tenants. Renaming under m.mu, where get creates a tenant's db, orders it with a new
// write: that either reopened the tenant before (it is no longer due) or opens a new, empty one after.
func (m *Manager) dueExpiries(now time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var due []string
	for id, at := range m.expiries {
		if now.Before(at) {
			continue
		}
		delete(m.expiries, id)
		if _, open := m.tenants[id]; open {
			continue // get deletes the record when it creates a db: not reached
		}
		dir := filepath.Join(m.cfg.Dir, id)
		if err := os.Rename(dir, dir+deletingSuffix); err != nil {
			m.logger.Error("cannot remove an expired tenant's directory; it stays", "tenant", id, "dir", dir, "err", err)
			continue
		}
		due = append(due, id)
	}
	return due
}

// removeLeftovers removes what a removal cut short by a crash left in Dir.
func (m *Manager) removeLeftovers() error {
	entries, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return fmt.Errorf("read storage directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), deletingSuffix) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(m.cfg.Dir, e.Name())); err != nil {
			return fmt.Errorf("remove the rest of an expired tenant: %w", err)
		}
		m.logger.Info("removed what was left of an expired tenant's directory", "dir", e.Name())
	}
	return nil
}
