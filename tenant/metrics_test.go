package tenant

import (
	"context"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestTenantMetricsAggregated checks what a scrape of a node with several tenants shows: the figures
// watched per tenant with a tenant label, everything else once for the node, aggregated as its type
// says, and counters that do not go back when a tenant closes.
func TestTenantMetricsAggregated(t *testing.T) {
	m, reg := newTestManager(t, nil)
	ctx := context.Background()
	sizes := map[string]int{"a": 2, "b": 3}
	at := map[string]int64{"a": t0, "b": t0 + hourMs} // b's head ends later: its max time is the node's
	for id, n := range sizes {
		var series []prompb.TimeSeries
		for i := range n {
			series = append(series, prompb.TimeSeries{Labels: lbls("__name__", "m", "i", strconv.Itoa(i)), Samples: floats(float64(at[id]), 1)})
		}
		_, err := m.Write(ctx, id, series, nil, nil)
		require.NoError(t, err)
	}

	for id, n := range sizes {
		v, ok := metricValue(t, reg, "prometheus_tsdb_head_series", "tenant", id)
		require.True(t, ok, id)
		require.Equal(t, float64(n), v, id)
	}
	created, ok := metricValue(t, reg, "prometheus_tsdb_head_series_created_total", "tenant", "")
	require.True(t, ok, "the counter is exposed once for the node")
	require.Equal(t, 5.0, created, "counters are summed over the tenants")
	maxTime, _ := metricValue(t, reg, "prometheus_tsdb_head_max_time", "tenant", "")
	require.Equal(t, float64(t0+hourMs), maxTime, "a max time is the tenants' max, not their sum")
	minTime, _ := metricValue(t, reg, "prometheus_tsdb_head_min_time", "tenant", "")
	require.Equal(t, float64(t0), minTime, "a min time is the tenants' min")
	_, ok = metricValue(t, reg, "prometheus_tsdb_wal_segment_current")
	require.False(t, ok, "a gauge that means nothing summed is not exposed")

	// A tenant costs a handful of series on a scrape, not the ~200 its TSDB registers.
	mfs, err := reg.Gather()
	require.NoError(t, err)
	perTenant := map[string]int{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			if id := labelValue(mt, "tenant"); id != "" {
				perTenant[id]++
			}
			if mf.GetType() == dto.MetricType_SUMMARY && labelValue(mt, "tenant") == "" {
				require.Empty(t, mt.GetSummary().GetQuantile(), "%s: quantiles cannot be summed", mf.GetName())
			}
		}
	}
	for id := range sizes {
		require.Positive(t, perTenant[id], id)
		require.LessOrEqual(t, perTenant[id], 30, "series with tenant=%s on a scrape", id)
	}

	// Closing every tenant (as pruning closes one) keeps what their counters counted.
	require.NoError(t, m.Close())
	requireNoTenantSeries(t, reg)
	after, ok := metricValue(t, reg, "prometheus_tsdb_head_series_created_total", "tenant", "")
	require.True(t, ok)
	require.Equal(t, created, after, "a closed tenant's counts stay in the node's counters")
	_, ok = metricValue(t, reg, "prometheus_tsdb_head_max_time")
	require.False(t, ok, "a closed tenant's gauges are gone")
}

// TestTenantMetricsRegistryPerOpen checks that a tenant reopened after it closed registers its
// TSDB's metrics again without a duplicate-registration panic, each open in a registry of its own.
func TestTenantMetricsRegistryPerOpen(t *testing.T) {
	tm := newTenantMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(tm)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "prometheus_tsdb_x_total", Help: "x"})
	for range 3 {
		r := tm.add("t")
		r.MustRegister(c) // the same collector, as a reopened TSDB registers the same names
		c.Inc()
		tm.remove(r)
	}
	// The one counter was read at each close, with 1, 2 and 3: retired counts add up what each instance
	// had counted (a real TSDB starts its counters at zero each open).
	v, ok := metricValue(t, reg, "prometheus_tsdb_x_total")
	require.True(t, ok)
	require.Equal(t, 6.0, v)
}
