package tenant

import (
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
)

// Reader is one open tenant's TSDB, held open for reading until Release: neither pruning nor Close can
// close it meanwhile (they wait). Writes go on. A reader should not be held longer than a query: a
// prune of this tenant waiting for it holds up the tenant's next write (sync.RWMutex lets no new reader
// in once a writer waits).
type Reader struct {
	ID string
	// ExternalLabels are the tenant's external labels (Manager.ExternalLabels), sorted.
	ExternalLabels labels.Labels
	DB             *tsdb.DB
	d              *db
}

// Release lets the tenant's TSDB be pruned or closed again. Call it exactly once.
func (r Reader) Release() { r.d.mu.RUnlock() }

// HeadChunks is the number of chunks in the tenant's head, as its TSDB counts them
// (prometheus_tsdb_head_chunks); -1 if the TSDB does not say.
func (r Reader) HeadChunks() int64 {
	families, err := r.d.reg.Gather()
	if err != nil {
		return -1
	}
	for _, f := range families {
		if f.GetName() == "prometheus_tsdb_head_chunks" && len(f.GetMetric()) == 1 {
			return int64(f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return -1
}

// Readers returns every tenant whose TSDB is open (being pruned included), sorted by ID, each held for
// reading: the caller releases each one. A tenant that is opening, failed or closed is left out: its
// data is either not there yet or in object storage. Readers never opens a TSDB.
func (m *Manager) Readers() []Reader {
	var out []Reader
	// Lock order: a tenant's lock is never taken under Manager.mu (openDBs checks and releases).
	for _, d := range m.openDBs() {
		d.mu.RLock()
		if !d.state.live() {
			d.mu.RUnlock()
			continue
		}
		out = append(out, Reader{ID: d.id, ExternalLabels: m.ExternalLabels(d.id), DB: d.tsdb, d: d})
	}
	return out
}
