package dashboards

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFilesUpToDate fails when a committed copy of the dashboard is not what the code builds: the JSON
// is generated, never edited by hand.
func TestFilesUpToDate(t *testing.T) {
	want, err := JSON()
	require.NoError(t, err)
	for _, f := range Files {
		got, err := os.ReadFile(filepath.Join("..", "..", f))
		require.NoError(t, err, "run `make dashboards`")
		require.Equal(t, string(want), string(got), "%s is stale: run `make dashboards` and commit it", f)
	}
}

// TestExpressionsParse: every expression parses as PromQL, and each selects a metric by name (a
// running Weir's /metrics is checked for those names by e2e/dashboard_test.go).
func TestExpressionsParse(t *testing.T) {
	names, err := MetricNames()
	require.NoError(t, err)
	require.Contains(t, names, "weir_quorum_failures_total")
	require.Contains(t, names, "weir_forward_duration_seconds_bucket")
	for _, n := range names {
		require.NotEmpty(t, n)
		require.True(t, strings.HasPrefix(n, "weir_") || strings.HasPrefix(n, "prometheus_tsdb_"), "%s: not a metric of Weir", n)
	}
	for _, e := range Expressions() {
		require.NotContains(t, e, "{}", "%s selects every series", e)
	}
}

// TestBrokenExpressionFails keeps the parse check honest: an expression that is not PromQL is reported.
func TestBrokenExpressionFails(t *testing.T) {
	saved := rows
	t.Cleanup(func() { rows = saved })
	rows = []row{{"broken", []panel{{"broken", "", "short", []query{{`sum by (code) (rate(weir_http_requests_total[$__rate_interval])`, ""}}}}}}
	_, err := MetricNames()
	require.ErrorContains(t, err, "weir_http_requests_total")
}
