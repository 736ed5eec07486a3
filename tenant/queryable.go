package tenant

// Reader returns tenant id's TSDB held for reading, as one element of Readers would be: the caller
// calls Release exactly once, after the last read. ok is false, and there is nothing to release, when
// the tenant has no open TSDB here (never written, opening, failed, or closed): its data is either not
// there yet or in object storage. Reader never opens a TSDB.
func (m *Manager) Reader(id string) (r Reader, ok bool) {
	m.mu.Lock()
	d := m.tenants[id]
	m.mu.Unlock()
	if d == nil {
		return Reader{}, false
	}
	select {
	case <-d.ready:
	default:
		return Reader{}, false
	}
	if d.err != nil {
		return Reader{}, false
	}
	// Lock order: a tenant's lock is never taken under Manager.mu.
	d.mu.RLock()
	if !d.state.live() {
		d.mu.RUnlock()
		return Reader{}, false
	}
	return Reader{ID: d.id, ExternalLabels: m.ExternalLabels(d.id), DB: d.tsdb, d: d}, true
}
