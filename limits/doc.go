// Package limits owns the per-tenant write limits of Weir: the limits file (Thanos Receive's format,
// extended), its reloading, and the figures each node derives from it. It enforces nothing on data
// itself except the ingestion rate (RateLimiter): routers (receive.Handler) check the request and
// shape limits, ingesters (tenant.Manager) the series limits, each through Snapshot.For.
//
// Start with Source: it loads --receive.limits-config-file (or --receive.limits-config), serves the
// current Snapshot with one atomic load, and reloads the file when it changes (fsnotify) and every
// --receive.limits-config-reload-timer. A file that does not parse or validate is refused — logged
// once, counted in weir_limits_config_reloads_total{result="failure"} — and the last good limits
// keep serving, so a typo never lifts or tightens a limit by accident. A change applies to the next
// request that reads the snapshot: no restart, no failed write.
//
// # The file
//
// Thanos' file loads unchanged; unknown fields are errors. A tenant's entry overrides only the fields
// it sets; the rest comes from write.default; 0 means no limit.
//
//	write:
//	  global:
//	    max_concurrency: 30            # Thanos: see docs/limits.md for what Weir does with it
//	  default:
//	    request:                       # per request, on routers: 413
//	      size_bytes_limit: 1048576    # compressed body
//	      series_limit: 5000
//	      samples_limit: 50000         # samples and histogram samples
//	    head_series_limit: 200000      # active series, whole cluster, on ingesters: 400 partial write
//	    # Weir's extensions:
//	    ingestion_rate_limit: 100000   # samples+histogram samples per second, whole cluster: 429
//	    ingestion_burst_size: 200000   # bucket depth of each router (default: one second of the rate)
//	    series_per_metric_limit: 20000 # active series per metric name, whole cluster: 400 partial write
//	    labels_per_series_limit: 40    # these four tighten the node's --receive.limits.* flags: 400
//	    label_name_length_limit: 128
//	    label_value_length_limit: 2048
//	    native_histogram_buckets_limit: 160
//	    relabel_configs: []            # Prometheus relabel_config, applied by routers before hashing
//	  tenants:
//	    team-a:
//	      head_series_limit: 1000000
//
// # Whole-cluster figures and each node's share
//
// Rates are split over routers: each enforces ingestion_rate_limit / N (Limits.RouterRate), N from
// --receive.limits.routers or, when that is 0, the number of endpoints of the tenant's hashring
// (every node a router). Series limits are split over ingesters: every series lives on RF of the M
// ingesters serving the tenant, so each holds about limit × RF / M of them (IngesterShare); an
// ingester refuses a new series once its own share is full. docs/limits.md says what follows from
// both when traffic or series are not spread evenly.
package limits
