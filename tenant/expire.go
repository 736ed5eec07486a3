package tenant

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// A tenant's TSDB applies --tsdb.retention to its blocks only while it is open, and a pruned tenant
// stays closed until its next write: without more, the blocks of every tenant that stopped writing
// (a decommissioned cluster, one-shot tenants) would stay on local disk for good. So, as Thanos
// Receive does, a tenant whose newest sample is older than the retention when it is pruned, or later
// while it stays closed, has its directory removed: everything in it is past retention, and with a
// bucket every block of it is there.
//
// Only pruned tenants are removed (by this process, or by an earlier one: prunedFile): their head was
// cut into blocks before the close, so nothing of theirs is in the WAL alone. A tenant closed any
// other way (a failed open, a WAL failure, the end of the process) holds data only a replay can read,
// and is left to its next open.

// deletingSuffix marks a tenant directory being removed. '~' is no tenant ID character, so no tenant
// can be named so and existingTenants never takes it for one; leftovers of a crash are removed at the
// next start.
const deletingSuffix = "~deleting"

// prunedFile marks the directory of a tenant a prune closed: its head was cut into blocks, so its
// WAL holds nothing its blocks do not, and the next start need not open it (a restart costs what the
// active tenants cost, not every tenant that ever wrote). Opening the tenant removes the file first;
// a file that cannot be read counts as absent, and the tenant is opened as any other.
const prunedFile = "weir-pruned.json"

// prunedState is what prunedFile holds.
type prunedState struct {
	// Newest is the time of the tenant's newest sample, ms (math.MinInt64 when it had none).
	Newest int64 `json:"newest"`
}

// stateOfPruned is the prunedState of d, being closed by a prune, and whether every local block of
// it is in the bucket (always, without one): only then is it marked and may it expire. The caller
// holds d.mu exclusively, with the TSDB still open.
func stateOfPruned(d *db) (st prunedState, shipped bool) {
	st.Newest = d.tsdb.Head().MaxTime()
	var uploaded map[ulid.ULID]struct{}
	if d.ship != nil {
		uploaded = d.ship.Uploaded()
	}
	shipped = true
	for _, b := range d.tsdb.Blocks() {
		if _, ok := uploaded[b.Meta().ULID]; d.ship != nil && !ok {
			shipped = false
		}
		st.Newest = max(st.Newest, b.Meta().MaxTime)
	}
	return st, shipped
}

// markPruned records that a prune closed tenant id, every block of it shipped: on disk for the next
// start, and for expiry. Failing to write the file only costs an open at the next start.
func (m *Manager) markPruned(id string, st prunedState) {
	if err := writePruned(filepath.Join(m.cfg.Dir, id), st); err != nil {
		m.logger.Warn("cannot mark a pruned tenant; the next start opens it", "tenant", id, "err", err)
	}
	m.expireAfter(id, st)
}

// expireAfter schedules the removal of pruned tenant id's directory for when its data is past
// retention.
func (m *Manager) expireAfter(id string, st prunedState) {
	m.mu.Lock()
	m.expiries[id] = time.UnixMilli(st.Newest).Add(m.cfg.Retention)
	m.mu.Unlock()
}

func writePruned(dir string, st prunedState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, prunedFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, prunedFile))
}

// readPruned returns the prunedState of the tenant in dir, if a prune closed it last.
func readPruned(dir string) (prunedState, bool) {
	var st prunedState
	b, err := os.ReadFile(filepath.Join(dir, prunedFile))
	if err != nil || json.Unmarshal(b, &st) != nil {
		return prunedState{}, false
	}
	return st, true
}

// unmarkPruned removes the mark before the tenant's TSDB opens: from then on its WAL may hold what
// its blocks do not. A mark that stays, or comes back after a power loss, would make the next start
// leave such data unread: the removal is made durable first.
func unmarkPruned(dir string) error {
	err := os.Remove(filepath.Join(dir, prunedFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("remove %s: %w", prunedFile, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s after removing %s: %w", dir, prunedFile, err)
	}
	return nil
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
