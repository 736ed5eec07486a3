package tenant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/tsdb"
)

// Run does the background work of the tenants until ctx ends: it cuts the heads that are due into
// blocks (compact.go); every Config.ShipInterval it ships the completed blocks of every open tenant
// (when a bucket is configured), every pruneCheckInterval it prunes the tenants idle for
// Config.IdleTimeout (when set; see Prune), every drainInterval it drains the tenants found on
// disk that there was no room to open (backlog.go), and it removes pruned tenants whose data is all
// past retention (expire.go). Compactions have their own goroutine,
// so that a long round does not hold up shipping; shipping and pruning share one, so uploads never
// compete with each other. None of it blocks ingestion or readiness: a tenant's upload backlog or an
// object-storage outage only delays the next round, failed uploads are retried in it (the shipper
// resumes with the failed block), and pruning holds only the tenant it prunes. Run returns once the
// work in progress has finished.
func (m *Manager) Run(ctx context.Context) error {
	compacted := make(chan struct{})
	go func() {
		defer close(compacted)
		m.runCompactions(ctx)
	}()
	defer func() { <-compacted }()

	var shipC, pruneC <-chan time.Time
	if m.bkt != nil {
		ticker := time.NewTicker(m.cfg.ShipInterval)
		defer ticker.Stop()
		shipC = ticker.C
		_ = m.shipAll(ctx) // failures are logged per tenant and retried next round
	}
	if m.cfg.IdleTimeout > 0 {
		ticker := time.NewTicker(m.pruneInterval)
		defer ticker.Stop()
		pruneC = ticker.C
	}
	// Always on: OpenExisting may fill the backlog after Run started, and an empty one costs a look.
	drain := time.NewTicker(drainInterval)
	defer drain.Stop()
	expire := time.NewTicker(expireCheckInterval(m.cfg.IdleTimeout))
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-shipC:
			_ = m.shipAll(ctx)
		case <-pruneC:
			_, _ = m.Prune(ctx) // failures are logged per tenant; the tenant stays open and is retried
		case <-drain.C:
			m.drainBacklog(ctx)
			if m.hooks.drained != nil {
				m.hooks.drained()
			}
		case <-expire.C:
			m.expireTenants()
		}
	}
}

// shipAll runs one shipping round over the open tenants, one at a time (uploads share the network).
func (m *Manager) shipAll(ctx context.Context) error {
	var errs []error
	for _, d := range m.openDBs() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := d.ship.Sync(ctx); err != nil {
			m.logger.Warn("shipping blocks failed; retrying next round", "tenant", d.id, "err", err)
			errs = append(errs, fmt.Errorf("tenant %s: %w", d.id, err))
		}
	}
	return errors.Join(errs...)
}

// openDBs returns the tenants whose TSDB is open (being pruned included), sorted by ID.
func (m *Manager) openDBs() []*db {
	m.mu.Lock()
	dbs := make([]*db, 0, len(m.tenants))
	for _, d := range m.tenants {
		select {
		case <-d.ready:
			if d.err == nil {
				dbs = append(dbs, d)
			}
		default:
		}
	}
	m.mu.Unlock()
	// Lock order: a tenant's lock is never taken under Manager.mu.
	dbs = slices.DeleteFunc(dbs, func(d *db) bool {
		d.mu.RLock()
		defer d.mu.RUnlock()
		return !d.state.live()
	})
	slices.SortFunc(dbs, func(a, b *db) int { return strings.Compare(a.id, b.id) })
	return dbs
}

// Flush cuts every tenant's head into blocks and, when shipping is on, ships them, so that a stopped
// ingester leaves its data in the bucket. It is meant for shutdown, after writes stopped: it holds
// each tenant exclusively while cutting. Tenants are flushed and shipped Config.OpenConcurrency at a
// time: a flush is mostly fsyncs, so one tenant at a time took minutes for a few thousand. What ctx
// does not leave time to ship stays on disk, recorded as not uploaded, and ships at the next start.
func (m *Manager) Flush(ctx context.Context) error {
	// Every head is cut, however long it takes (ctx bounds the uploads): a block that misses the
	// upload ships at the next start. A tenant whose cut failed still ships its earlier blocks.
	errs := forEach(context.Background(), m.openDBs(), m.cfg.OpenConcurrency, func(d *db) error {
		var err error
		if ferr := d.flush(); ferr != nil {
			err = fmt.Errorf("flush tenant %s: %w", d.id, ferr)
		}
		if d.ship != nil && ctx.Err() == nil {
			if _, serr := d.ship.Sync(ctx); serr != nil {
				err = errors.Join(err, fmt.Errorf("ship tenant %s: %w", d.id, serr))
			}
		}
		return err
	})
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// flush writes the head into blocks aligned on block boundaries, as the TSDB cuts them itself, so that
// no shipped block spans two 2h ranges. A closed tenant has nothing to flush: its head was flushed by
// the prune that closed it, or is in its WAL.
func (d *db) flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.state.live() {
		return nil
	}
	return d.flushLocked()
}

// flushLocked is flush for a caller that holds d.mu exclusively.
func (d *db) flushLocked() error {
	// First let the TSDB cut what it would cut on its own, and wait for a compaction it may be running
	// (the last commits trigger one in the background). Otherwise that compaction could truncate the
	// head between reading its range below and cutting it, and the cut block's range would overlap the
	// TSDB's. Afterwards no background compaction finds anything to do: writers are held off.
	if err := d.tsdb.Compact(context.Background()); err != nil {
		return err
	}
	head := d.tsdb.Head()
	if head.NumSeries() == 0 {
		return nil
	}
	if mint, maxt := head.MinTime(), head.MaxTime(); mint <= maxt {
		step := BlockDuration.Milliseconds()
		for start := mint - mod(mint, step); start <= maxt; start += step {
			lo, hi := max(start, mint), min(start+step-1, maxt)
			if err := d.tsdb.CompactHead(tsdb.NewRangeHeadWithIsolationDisabled(head, lo, hi)); err != nil {
				return err
			}
		}
	}
	// The samples that came out of order (--tsdb.out-of-order.time-window) have a head of their own,
	// which the TSDB cuts only after an in-order head compaction of its own: without this they would
	// stay in the WBL, unshipped, until the tenant's next open. A no-op without such samples.
	return d.tsdb.CompactOOOHead(context.Background())
}

// mod is the non-negative remainder, for timestamps before 1970 too.
func mod(a, b int64) int64 {
	return ((a % b) + b) % b
}
