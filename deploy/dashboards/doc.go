// Package dashboards builds Weir's own Grafana dashboard from Go with the Grafana Foundation SDK, so
// that its panels are reviewed as code and its PromQL is checked by tests rather than hand-edited in
// JSON. `go generate ./deploy/dashboards` (or `make dashboards`) writes the JSON twice: weir.json
// here, to import by hand, and into the Helm chart (deploy/helm/weir/dashboards/weir.json), which
// ships it as a ConfigMap for Grafana's dashboard sidecar. The tests fail when either copy differs
// from what the code builds, when an expression does not parse, and (e2e/dashboard_test.go) when a
// metric it names is not in the /metrics of running Weir nodes.
package dashboards

//go:generate go run ./gen ../..
