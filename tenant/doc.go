// Package tenant owns tenant identity and local storage: validating tenant IDs (they are directory
// names, so every entry point checks them) and keeping one Prometheus TSDB per tenant.
//
// Start with Manager: it opens a tenant's TSDB on its first write, exactly once however many writes
// race for it, replays all tenants' WALs at start-up (OpenExisting), appends a request's series in one
// transaction (Write), and closes everything on shutdown (Close). A tenant whose TSDB cannot open fails
// alone; the others keep serving.
//
// Each tenant's TSDB cuts 2h blocks and never compacts them locally (see options.go): blocks are for the
// shipper and the Thanos compactor. The tenant label (tenant_id by default) is an external label of the
// tenant's data (ExternalLabels), not a label stored in each series.
package tenant
