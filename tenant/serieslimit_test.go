package tenant

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/write"
)

// testLimits are series limits a test changes while the Manager runs; they limit tenant "a" only.
type testLimits struct{ head, perMetric atomic.Int64 }

func (l *testLimits) get(id string) (int64, int64) {
	if id != "a" {
		return 0, 0
	}
	return l.head.Load(), l.perMetric.Load()
}

func newLimitedManager(t *testing.T, dir string, l *testLimits) (*Manager, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewManager(testConfig(dir), nil, discardLogger(), reg, WithSeriesLimits(l.get))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m, reg
}

func ser(name, i string, tv ...float64) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: lbls("__name__", name, "i", i), Samples: floats(tv...)}
}

// TestSeriesLimits: new series over a tenant's limits are refused as permanent per-series
// rejections naming the limit; its existing series keep being written, other tenants are not
// limited, and a change of the limits applies to the next new series.
func TestSeriesLimits(t *testing.T) {
	var l testLimits
	l.head.Store(3)
	l.perMetric.Store(2)
	m, reg := newLimitedManager(t, t.TempDir(), &l)

	st := mustWrite(t, m, "a",
		ser("m", "0", float64(t0), 1), ser("m", "1", float64(t0), 1),
		ser("m", "2", float64(t0), 1, float64(t0+1), 2), // third of metric m: per-metric limit
		ser("n", "0", float64(t0), 1),                   // third series of the tenant
		ser("n", "1", float64(t0), 1, float64(t0+1), 2), // fourth: head limit
	)
	require.Equal(t, appended(3, 0, 0), st.Appended)
	requireRejections(t, []write.Rejection{
		{Series: 2, Kind: write.KindFloat, Reason: write.ReasonSeriesPerMetricLimit, Count: 2},
		{Series: 4, Kind: write.KindFloat, Reason: write.ReasonHeadSeriesLimit, Count: 2},
	}, st.Rejected)
	require.ErrorIs(t, st.Rejected[1].Err, ErrSeriesLimit)
	require.Contains(t, st.Rejected[1].Err.Error(), "tenant a has 3 active series on this ingester, its share of the tenant's head_series_limit is 3")
	require.Contains(t, st.Rejected[0].Err.Error(), `tenant a has 2 active series of metric "m" on this ingester, its share of the tenant's series_per_metric_limit is 2`)

	// Existing series keep flowing; new ones are still refused.
	st = mustWrite(t, m, "a", ser("m", "0", float64(t0+10), 2), ser("n", "0", float64(t0+10), 2), ser("o", "0", float64(t0+10), 2))
	require.Equal(t, appended(2, 0, 0), st.Appended)
	requireRejections(t, []write.Rejection{{Series: 2, Kind: write.KindFloat, Reason: write.ReasonHeadSeriesLimit, Count: 1}}, st.Rejected)

	// Other tenants are not limited.
	st = mustWrite(t, m, "b", ser("m", "0", float64(t0), 1), ser("m", "1", float64(t0), 1), ser("m", "2", float64(t0), 1), ser("m", "3", float64(t0), 1))
	require.Equal(t, appended(4, 0, 0), st.Appended)
	require.Empty(t, st.Rejected)

	// Raised limits apply to the next new series.
	l.head.Store(10)
	l.perMetric.Store(0)
	st = mustWrite(t, m, "a", ser("m", "2", float64(t0+20), 1), ser("o", "0", float64(t0+20), 1))
	require.Equal(t, appended(2, 0, 0), st.Appended)
	require.Empty(t, st.Rejected)

	v, ok := metricValue(t, reg, "weir_tenant_head_series_limit", "tenant", "a")
	require.True(t, ok)
	require.Equal(t, 10.0, v)
	v, _ = metricValue(t, reg, "weir_tenant_series_refused_total", "tenant", "a", "limit", write.ReasonHeadSeriesLimit)
	require.Equal(t, 3.0, v, "one attempt per refused sample")
	v, _ = metricValue(t, reg, "weir_tenant_series_per_metric_max", "tenant", "a")
	require.Equal(t, 3.0, v)
	v, _ = metricValue(t, reg, "weir_tenant_head_series_limit", "tenant", "b")
	require.Equal(t, 0.0, v)

	require.Equal(t, map[string]SeriesUsage{
		"a": {HeadSeries: 5, HeadSeriesLimit: 10, MetricNames: 3, MaxPerMetric: 3},
		"b": {HeadSeries: 4, MetricNames: 1, MaxPerMetric: 4},
	}, m.SeriesUsage())
}

// TestSeriesLimitsNotOnReplay: what was acknowledged comes back from the WAL whatever the limits are
// now; the limits then apply to new series only.
func TestSeriesLimitsNotOnReplay(t *testing.T) {
	dir := t.TempDir()
	var l testLimits
	m, _ := newLimitedManager(t, dir, &l)
	mustWrite(t, m, "a", ser("m", "0", float64(t0), 1), ser("m", "1", float64(t0), 1), ser("m", "2", float64(t0), 1))
	require.NoError(t, m.Close())

	l.head.Store(1)
	l.perMetric.Store(1)
	m, _ = newLimitedManager(t, dir, &l)
	require.NoError(t, m.OpenExisting(t.Context()))
	requireSeries(t, m, "a", map[string][]point{
		key("__name__", "m", "i", "0"): {fp(t0, 1)},
		key("__name__", "m", "i", "1"): {fp(t0, 1)},
		key("__name__", "m", "i", "2"): {fp(t0, 1)},
	})
	st := mustWrite(t, m, "a", ser("m", "1", float64(t0+1), 2), ser("x", "0", float64(t0+1), 2))
	require.Equal(t, appended(1, 0, 0), st.Appended)
	requireRejections(t, []write.Rejection{{Series: 1, Kind: write.KindFloat, Reason: write.ReasonHeadSeriesLimit, Count: 1}}, st.Rejected)
}

func TestSeriesTrackerCountsPerMetric(t *testing.T) {
	tr := newSeriesTracker("a", nil, prometheus.NewRegistry())
	labelsOf := func(ts prompb.TimeSeries) labels.Labels {
		b := labels.NewScratchBuilder(len(ts.Labels))
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		return b.Labels()
	}
	require.NoError(t, tr.PreCreation(labelsOf(ser("m", "0"))), "nothing enforced before the TSDB is open")
	tr.PostCreation(labelsOf(ser("m", "0")))
	tr.PostCreation(labelsOf(ser("m", "1")))
	tr.PostCreation(labelsOf(ser("n", "0")))
	names, most := tr.metrics()
	require.Equal(t, 2, names)
	require.Equal(t, int64(2), most)
	tr.PostDeletion(map[chunks.HeadSeriesRef]labels.Labels{1: labelsOf(ser("m", "0")), 2: labelsOf(ser("n", "0"))})
	names, most = tr.metrics()
	require.Equal(t, 1, names)
	require.Equal(t, int64(1), most)
	require.False(t, errors.Is(errors.New("x"), ErrSeriesLimit))
}
