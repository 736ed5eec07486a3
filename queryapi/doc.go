// Package queryapi is a small debugging read over a node's local data: a subset of Prometheus' HTTP API
// (/api/v1/query, /api/v1/query_range, /api/v1/series, /api/v1/labels) for one tenant at a time,
// evaluated by the promql engine of the Prometheus module over that tenant's TSDB (head and local
// blocks). It is meant for operators and tests; users query through Thanos Query and the StoreAPI.
//
// The tenant is named by the tenant header, as on writes (tenant.FromRequest: absent means the
// default tenant). An invalid tenant ID is a 400 bad_data error; a tenant with no open TSDB on this node
// (never written here, pruned, or not opened yet) answers with empty results, not an error. The tenant's
// TSDB is held for reading for the duration of one request (tenant.Manager.Reader), so pruning or
// shutdown waits for a running query. The tenant label is an external label: it is not part of the
// results.
//
// Requests and responses follow Prometheus' API: GET or POST (form-encoded), times as RFC 3339 or unix
// seconds, durations as Prometheus durations or float seconds, and the JSON envelope
// {"status":"success","data":…} or {"status":"error","errorType":…,"error":…}. Error statuses are
// Prometheus': bad parameters and unparsable queries 400 bad_data, evaluation errors 422 execution,
// query timeouts 503 timeout, cancelled requests 499 canceled, storage errors 500 internal. Not
// supported: query stats, per-query lookback_delta, limit, exemplars, metadata and every other
// endpoint.
package queryapi
