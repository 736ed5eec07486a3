package tenant

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// The life of a tenant's TSDB, one db value per open attempt:
//
//	               open error
//	┌───────────┐ ───────────▶ ┌────────┐
//	│  opening  │              │ failed │   (the next write starts a new db: opening)
//	└───────────┘              └────────┘
//	      │ tsdb.Open ok
//	      ▼              idle for IdleTimeout: head flushed           still idle after the
//	┌───────────┐        (exclusive lock)               ┌─────────┐   upload: TSDB closed,   ┌────────┐
//	│   open    │ ────────────────────────────────────▶ │ pruning │ ───────────────────────▶ │ closed │
//	│           │ ◀──────────────────────────────────── │         │   metrics unregistered,  │        │
//	└───────────┘   a write came in while uploading,    └─────────┘   db out of the map      └────────┘
//	      │         or the flush or the upload failed        │                                 ▲
//	      └──────────────────── Manager.Close ───────────────┴─────────────────────────────────┘
//
// Who moves a db from one state to the next:
//   - opening → open | failed: the goroutine that opens the TSDB (Manager.open), before it closes ready;
//   - open → pruning → open | closed: the pruner (pruneTenant, from Manager.Run or Manager.Prune);
//   - open | pruning → closed: Manager.Close, or Manager.reopen after a failed WAL write (walguard.go),
//     which then forgets d like a prune does, so that the next write opens the tenant again.
//
// closed and failed are final: a write for such a tenant finds the db gone from the Manager's map (the
// pruner removes it before it lets go of the tenant; a failed open removes itself) and opens a new one.
// Every transition goes through setState, under db.mu held exclusively, and anything else is refused.
//
// The invariants this buys, together with db.mu (writers hold it shared from the state check through
// append and commit; pruning and closing take it exclusively):
//   - A write is never acknowledged into a closed TSDB: the state is checked under the same lock that
//     is held until the commit, and a TSDB is closed only under the exclusive lock.
//   - A write racing with pruning is neither lost nor refused: it either takes the lock before the
//     pruner, and is flushed into a block with the rest of the head; or during the upload, and cancels
//     the prune (the tenant stays open); or after the pruner closed the TSDB, and then finds the state
//     closed, goes back to the Manager and reopens the tenant. ErrClosed is only ever the answer of a
//     Manager that is closing.
//   - Pruning deletes nothing. Blocks are cut from the head and closed with the TSDB; their upload is
//     the shipper's, which records them in thanos.shipper.json only once the bucket took meta.json. A
//     failed upload leaves the tenant open, so the shipping loop keeps retrying and the next prune
//     round closes it once shipped; a tenant closed with blocks still unshipped (by Manager.Close, say)
//     has them shipped by the shipper of its next open, as its TSDB's retention never deletes a block
//     that the shipper has not recorded.
type state uint8

const (
	stateOpening state = iota // TSDB being opened; writers wait on db.ready
	stateOpen                 // serving writes
	statePruning              // idle: head flushed, blocks being uploaded; writes still land (and cancel the prune)
	stateClosed               // TSDB closed; final
	stateFailed               // open failed; final
)

func (s state) String() string {
	switch s {
	case stateOpening:
		return "opening"
	case stateOpen:
		return "open"
	case statePruning:
		return "pruning"
	case stateClosed:
		return "closed"
	case stateFailed:
		return "failed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// live reports whether a db in this state has an open TSDB that takes writes.
func (s state) live() bool { return s == stateOpen || s == statePruning }

// transitions lists, for each state, the states it may move to. It is the whole state machine.
var transitions = [...][]state{
	stateOpening: {stateOpen, stateFailed},
	stateOpen:    {statePruning, stateClosed},
	statePruning: {stateOpen, stateClosed},
	stateClosed:  nil,
	stateFailed:  nil,
}

// errInvalidTransition marks a state change the state machine does not allow: a bug in this package.
var errInvalidTransition = errors.New("invalid tenant state transition")

// setState moves d to state to, or refuses (d unchanged) when the state machine does not allow it. The
// caller holds d.mu exclusively.
func (d *db) setState(to state) error {
	if int(d.state) < len(transitions) {
		for _, s := range transitions[d.state] {
			if s == to {
				d.state = to
				return nil
			}
		}
	}
	return fmt.Errorf("%w: tenant %s from %s to %s", errInvalidTransition, d.id, d.state, to)
}

// mustSetState is setState where the caller has checked the current state: a refusal is a bug.
func (d *db) mustSetState(to state) {
	if err := d.setState(to); err != nil {
		panic(err)
	}
}

// testHooks let tests stop a prune or a write at the points where they race. All nil outside tests.
type testHooks struct {
	// beforeWriteLock runs in a write between finding the tenant's db and locking it.
	beforeWriteLock func(d *db)
	// pruneLocked runs when the pruner holds the tenant exclusively, before it looks at idleness.
	pruneLocked func(d *db)
	// pruneShipping runs after the head was flushed and the lock released, before the upload.
	pruneShipping func(d *db)
	// headCompaction runs when a round holds the tenant for its head compaction, before it compacts.
	headCompaction func(d *db)
	// drained runs after each of Run's looks at the backlog.
	drained func()
}

// clock is the Manager's time for idleness: nanoseconds since its epoch (monotonic with time.Now).
func (m *Manager) clock() int64 { return int64(m.now().Sub(m.epoch)) }

// idle reports whether a tenant last written at lastWrite (Manager.clock) received no write for
// Config.IdleTimeout: what Prune closes a tenant for.
func (m *Manager) idle(lastWrite int64) bool {
	return m.cfg.IdleTimeout > 0 && time.Duration(m.clock()-lastWrite) >= m.cfg.IdleTimeout
}

// pruneCheckInterval is how often Run looks for idle tenants: often enough that a tenant is pruned
// soon after its timeout (a quarter of it, at most a minute), cheap since a check reads one atomic per
// open tenant.
func pruneCheckInterval(idle time.Duration) time.Duration {
	return min(time.Minute, max(idle/4, 100*time.Millisecond))
}

// expireCheckInterval is how often Run looks for pruned tenants past retention: as often as it
// prunes, and every minute when it does not (tenants drained from the backlog expire too).
func expireCheckInterval(idle time.Duration) time.Duration {
	if idle <= 0 {
		return time.Minute
	}
	return pruneCheckInterval(idle)
}

// acquire returns the tenant's db holding d.mu for reading, in a state that takes writes, and records
// the write for idleness. It reopens a tenant that a prune closed meanwhile: the pruner removed that db
// from the map before releasing it, so the next get opens a new one. The caller appends, commits, and
// then releases d.mu.RUnlock.
func (m *Manager) acquire(ctx context.Context, id string) (*db, error) {
	for {
		d, err := m.get(ctx, id) // ErrClosed once the Manager is closing
		if err != nil {
			return nil, err
		}
		if m.hooks.beforeWriteLock != nil {
			m.hooks.beforeWriteLock(d)
		}
		d.mu.RLock()
		if d.state.live() && !d.walFailed.Load() {
			d.lastWrite.Store(m.clock())
			return d, nil
		}
		d.mu.RUnlock()
		if d.walFailed.Load() {
			if err := m.reopen(d); err != nil {
				return nil, err
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("waiting for tenant %s to reopen: %w", id, err)
		}
	}
}

// reopen closes d, whose WAL failed a write, and takes it out of the map, so that the next get opens
// the tenant again: the open replays the WAL and repairs it, and the head holds again exactly what the
// WAL holds (walguard.go). Writers that held d finished before it closes; the ones that find it closed
// ask the Manager again, as after a prune. Until the volume has room for the repair, d stays open for
// reads and the write is refused: closing needs room too (the WAL's last page).
func (m *Manager) reopen(d *db) error {
	if err := roomToRepair(filepath.Join(m.cfg.Dir, d.id), m.space.statfs); err != nil {
		return fmt.Errorf("%w: %w", errWALFailed(d.id), err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.state.live() { // another writer, a prune or Close got there first
		return nil
	}
	if err := m.closeLocked(d); err != nil {
		m.logger.Warn("closing a tenant whose WAL failed a write", "tenant", d.id, "err", err)
	}
	m.forget(d)
	m.logger.Info("tenant closed after a failed WAL write: reopening it, with a WAL repair", "tenant", d.id)
	return nil
}

// Prune prunes, one at a time, every open tenant that received no write for Config.IdleTimeout: its
// head is cut into blocks, the blocks are shipped (when a bucket is configured), and its TSDB is closed
// and its metrics unregistered; the next write reopens it. It returns the tenants it closed. A tenant
// whose flush or upload fails stays open (nothing is deleted) and is tried again by the next call;
// its error is logged and returned. With IdleTimeout 0 it does nothing.
//
// Pruning holds only the tenant it prunes, and that one exclusively only while it cuts the head and
// while it closes the TSDB: other tenants' writes never wait for it, and the pruned tenant's writes do
// not wait for the upload.
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	if m.cfg.IdleTimeout <= 0 {
		return nil, nil
	}
	var pruned []string
	var errs []error
	for _, d := range m.openDBs() {
		if err := ctx.Err(); err != nil {
			return pruned, errors.Join(append(errs, err)...)
		}
		closed, err := m.pruneTenant(ctx, d, m.idle)
		if err != nil && ctx.Err() != nil { // shutting down: not a failure; Flush takes over
			return pruned, errors.Join(append(errs, err)...)
		}
		if err != nil {
			m.metrics.pruneFailures.Inc()
			m.logger.Warn("pruning idle tenant failed; it stays open and is retried", "tenant", d.id, "err", err)
			errs = append(errs, fmt.Errorf("prune tenant %s: %w", d.id, err))
		}
		if closed {
			pruned = append(pruned, d.id)
		}
	}
	return pruned, errors.Join(errs...)
}

// pruneTenant prunes d if quiet says it may, given when d was last written (Manager.clock): Prune asks
// m.idle, the backlog drain whether any write came since it opened d (backlog.go). It reports whether
// it closed d (an error may come with a close: the TSDB failed to close cleanly, but is closed). In
// three steps:
//
//  1. Exclusively: check that d is open and quiet, move it to pruning, and cut its head into blocks.
//  2. Shared (when shipping): upload the blocks. Writes land meanwhile; they make the tenant active.
//  3. Exclusively: if a write came in during step 2, or the upload failed, back to open; otherwise
//     close the TSDB and remove d from the map.
//
// Without a bucket, steps 1 and 3 run under one lock.
func (m *Manager) pruneTenant(ctx context.Context, d *db, quiet func(lastWrite int64) bool) (closed bool, err error) {
	d.mu.Lock()
	if m.hooks.pruneLocked != nil {
		m.hooks.pruneLocked(d)
	}
	if d.state != stateOpen || !quiet(d.lastWrite.Load()) {
		d.mu.Unlock()
		return false, nil
	}
	d.mustSetState(statePruning)
	stamp := d.lastWrite.Load()
	start := m.now()
	if err := d.flushLocked(); err != nil {
		d.mustSetState(stateOpen)
		d.mu.Unlock()
		return false, fmt.Errorf("flush head: %w", err)
	}

	if d.ship != nil {
		d.mu.Unlock()
		if m.hooks.pruneShipping != nil {
			m.hooks.pruneShipping(d)
		}
		_, shipErr := d.ship.Sync(ctx)
		d.mu.Lock()
		if shipErr != nil {
			if d.state == statePruning {
				d.mustSetState(stateOpen)
			}
			d.mu.Unlock()
			return false, fmt.Errorf("ship blocks: %w", shipErr)
		}
	}
	defer d.mu.Unlock()
	switch {
	case d.state != statePruning: // Manager.Close closed it during the upload
		return false, nil
	case d.lastWrite.Load() != stamp: // written to during the upload: not idle any more
		d.mustSetState(stateOpen)
		return false, nil
	}
	st, shipped := stateOfPruned(d)
	err = m.closeLocked(d)
	// A TSDB that did not close cleanly, or with a block not in the bucket, is opened again at the
	// next start (and its shipper tries again).
	if err == nil && shipped {
		m.markPruned(d.id, st)
	}
	// Out of the map before the lock is released: a writer that finds d closed and asks again for
	// the tenant opens a new db. (Lock order: db.mu before Manager.mu.)
	m.forget(d)
	m.metrics.pruned.Inc()
	m.logger.Info("idle tenant pruned: head flushed, blocks shipped, TSDB closed", "tenant", d.id,
		"idle_for", time.Duration(m.clock()-stamp).Round(time.Second), "duration", m.now().Sub(start), "shipped", d.ship != nil)
	if err != nil {
		return true, fmt.Errorf("close TSDB: %w", err)
	}
	return true, nil
}

// closeLocked moves d to closed, closes its TSDB and stops exposing its metrics (the TSDB's and the
// shipper's; its counters stay in the node's sums), returning the memory they held. The caller holds d.mu exclusively and d is live. The
// files stay: blocks, WAL and shipper state are what the next open starts from.
func (m *Manager) closeLocked(d *db) error {
	d.mustSetState(stateClosed)
	err := d.tsdb.Close()
	m.tenantMetrics.remove(d.reg)
	m.metrics.open.Dec()
	return err
}
