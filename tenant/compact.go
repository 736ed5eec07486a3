package tenant

import (
	"context"
	"time"
)

// Head compaction, cutting the oldest 2h of a head into a block, is run by the Manager for every
// tenant, Config.HeadCompactionConcurrency at a time, and never by the TSDBs themselves (open disables
// it). Left to itself each TSDB compacts from its own goroutine as soon as its head spans 1.5 block
// ranges, so tenants whose data started together (all of them after a restart, or after the first 2h)
// compact together, each holding a block writer's buffers and the postings of its head: thousands of
// tenants at the same minute is a memory spike that can get the ingester killed. A compaction that
// waits for a slot costs nothing but a longer head: appends keep landing, and the next round cuts
// every full range the head has.
//
// A round starts every headCompactionInterval, and as soon as a write finds its tenant's head due
// (wakeCompactions), as a TSDB compacts on the commit that makes its head due; after a round with a
// failure only the interval starts the next, so a compaction that keeps failing is not retried at the
// rate of writes.
//
// Pruning (one tenant at a time) and the shutdown flush (Config.OpenConcurrency at a time) cut heads
// themselves; the shutdown flush runs after Run returned, so never beside a round.

// headCompactionInterval is how often Run looks for heads to compact: the interval at which a TSDB
// looks for compactable heads by itself, so a quiet tenant's head is cut as soon as it would have been.
const headCompactionInterval = time.Minute

// runCompactions runs compaction rounds until ctx ends (see above).
func (m *Manager) runCompactions(ctx context.Context) {
	ticker := time.NewTicker(m.compactInterval)
	defer ticker.Stop()
	wake := m.compactWake
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-wake:
		}
		wake = m.compactWake
		if failed := m.compactHeads(ctx); failed > 0 {
			wake = nil // until the next tick
		}
	}
}

// wakeCompactions asks for a round soon; it never blocks (a round already asked for covers it).
func (m *Manager) wakeCompactions() {
	select {
	case m.compactWake <- struct{}{}:
	default:
	}
}

// compactHeads compacts every open tenant whose head is due, at most Config.HeadCompactionConcurrency
// at once, and returns when all are done or ctx ended (the compactions running finish first), with the
// number that failed. A failed compaction is logged and counted by the TSDB
// (prometheus_tsdb_compactions_failed_total), and tried again the next round.
func (m *Manager) compactHeads(ctx context.Context) (failed int) {
	var due []*db
	for _, d := range m.openDBs() {
		if d.headCompactable() {
			due = append(due, d)
		}
	}
	if len(due) == 0 {
		return 0
	}
	start := time.Now()
	m.metrics.headCompactionsPending.Set(float64(len(due)))
	defer m.metrics.headCompactionsPending.Set(0)
	errs := forEach(ctx, due, m.cfg.HeadCompactionConcurrency, func(d *db) error {
		defer m.metrics.headCompactionsPending.Dec()
		return m.compactHead(ctx, d)
	})
	m.logger.Info("compacted tenant heads", "tenants", len(due), "failed", len(errs), "duration", time.Since(start),
		"concurrency", m.cfg.HeadCompactionConcurrency)
	return len(errs)
}

// compactHead runs the TSDB's compaction for d while holding d for reading: writes go on, and neither
// pruning nor closing can close the TSDB under the compaction.
func (m *Manager) compactHead(ctx context.Context, d *db) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if !d.state.live() {
		return nil
	}
	if m.hooks.headCompaction != nil {
		m.hooks.headCompaction(d)
	}
	if err := d.tsdb.Compact(ctx); err != nil {
		m.logger.Warn("head compaction failed; retrying next round", "tenant", d.id, "err", err)
		return err
	}
	return nil
}

// headCompactable is the TSDB's own test for a head compaction: the head spans more than 1.5 block
// ranges, so its oldest full range is out of reach of in-order appends.
func (d *db) headCompactable() bool {
	h := d.tsdb.Head()
	mint, maxt := h.MinTime(), h.MaxTime()
	return mint <= maxt && maxt-mint > BlockDuration.Milliseconds()/2*3
}
