package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/tsdb"
)

// Run ships completed blocks of every open tenant every Config.ShipInterval until ctx ends. It never
// blocks ingestion or readiness: a tenant's upload backlog or an object-storage outage only delays the
// next round, and failed uploads are retried in it (the shipper resumes with the failed block).
func (m *Manager) Run(ctx context.Context) error {
	if m.cfg.Bucket == nil {
		<-ctx.Done()
		return nil
	}
	ticker := time.NewTicker(m.cfg.ShipInterval)
	defer ticker.Stop()
	for {
		_ = m.shipAll(ctx) // failures are logged per tenant and retried next round
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
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

// openDBs returns the tenants whose TSDB is open.
func (m *Manager) openDBs() []*db {
	m.mu.Lock()
	defer m.mu.Unlock()
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
	return dbs
}

// Flush cuts every tenant's head into blocks and, when shipping is on, ships them, so that a stopped
// ingester leaves its data in the bucket. It is meant for shutdown, after writes stopped: it holds
// each tenant exclusively while cutting. What ctx does not leave time to ship stays on disk, recorded
// as not uploaded, and ships at the next start.
func (m *Manager) Flush(ctx context.Context) error {
	var errs []error
	for _, d := range m.openDBs() {
		if err := d.flush(); err != nil {
			errs = append(errs, fmt.Errorf("flush tenant %s: %w", d.id, err))
		}
	}
	if m.cfg.Bucket != nil {
		if err := m.shipAll(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// flush writes the head into blocks aligned on block boundaries, as the TSDB cuts them itself, so that
// no shipped block spans two 2h ranges.
func (d *db) flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	head := d.tsdb.Head()
	if head.NumSeries() == 0 {
		return nil
	}
	mint, maxt := head.MinTime(), head.MaxTime()
	if mint > maxt {
		return nil
	}
	step := BlockDuration.Milliseconds()
	for start := mint - mod(mint, step); start <= maxt; start += step {
		lo, hi := max(start, mint), min(start+step-1, maxt)
		if err := d.tsdb.CompactHead(tsdb.NewRangeHeadWithIsolationDisabled(head, lo, hi)); err != nil {
			return err
		}
	}
	return nil
}

// mod is the non-negative remainder, for timestamps before 1970 too.
func mod(a, b int64) int64 {
	return ((a % b) + b) % b
}
