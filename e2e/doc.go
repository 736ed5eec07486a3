// Package e2e holds end-to-end tests that run the real weir binary (and, when available, a real
// Prometheus) as separate processes on loopback and check what a user sees: status codes, metrics,
// exit codes and the tenant TSDBs left on disk.
//
// The tests build weir once per run (set WEIR_BINARY to use a prebuilt binary, WEIR_E2E_RACE=1 to
// build it with the race detector) and look for Prometheus in WEIR_PROMETHEUS or <repo>/bin/prometheus.
package e2e
