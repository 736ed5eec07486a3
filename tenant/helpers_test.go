package tenant

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
)

// t0 is the base timestamp of the tests (ms): a fixed, realistic instant, so that failures reproduce.
const t0 = int64(1_700_000_000_000)

// hourMs is one hour in milliseconds.
const hourMs = int64(time.Hour / time.Millisecond)

func testConfig(dir string) Config {
	return Config{
		Dir:             dir,
		Retention:       6 * time.Hour,
		LabelName:       "tenant_id",
		OpenConcurrency: 2,
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestManager returns a Manager on a fresh temporary directory, closed when the test ends.
func newTestManager(t testing.TB, mutate func(*Config)) (*Manager, *prometheus.Registry) {
	t.Helper()
	cfg := testConfig(t.TempDir())
	if mutate != nil {
		mutate(&cfg)
	}
	return newManagerAt(t, cfg)
}

// newManagerAt returns a Manager for cfg without a bucket, closed when the test ends (closing twice is
// harmless).
func newManagerAt(t testing.TB, cfg Config) (*Manager, *prometheus.Registry) {
	t.Helper()
	return newManagerWith(t, cfg, nil)
}

// newManagerWith returns a Manager for cfg shipping to bkt (nil: none), closed when the test ends.
func newManagerWith(t testing.TB, cfg Config, bkt objstore.Bucket) (*Manager, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewManager(cfg, bkt, discardLogger(), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m, reg
}

// lbls builds sorted prompb labels from name/value pairs.
func lbls(pairs ...string) []prompb.Label {
	if len(pairs)%2 != 0 {
		panic("odd number of label strings")
	}
	ls := labels.FromStrings(pairs...)
	return prompb.FromLabels(ls, nil)
}

// floats builds prompb samples from (timestamp, value) pairs.
func floats(tv ...float64) []prompb.Sample {
	out := make([]prompb.Sample, 0, len(tv)/2)
	for i := 0; i+1 < len(tv); i += 2 {
		out = append(out, prompb.Sample{Timestamp: int64(tv[i]), Value: tv[i+1]})
	}
	return out
}

// point is one stored data point, as read back from a tenant's TSDB.
type point struct {
	T  int64
	F  float64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

func (p point) String() string {
	switch {
	case p.H != nil:
		return fmt.Sprintf("%d:h%s", p.T, p.H)
	case p.FH != nil:
		return fmt.Sprintf("%d:fh%s", p.T, p.FH)
	}
	return fmt.Sprintf("%d:%v", p.T, p.F)
}

func fp(t int64, v float64) point { return point{T: t, F: v} }

// query returns every series of tenant id with all its points, keyed by the series' labels.
func query(t testing.TB, m *Manager, id string, ms ...*labels.Matcher) map[string][]point {
	t.Helper()
	ctx := context.Background()
	d, err := m.get(ctx, id)
	require.NoError(t, err)
	if len(ms) == 0 {
		ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")}
	}
	q, err := d.tsdb.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	out := map[string][]point{}
	ss := q.Select(ctx, false, nil, ms...)
	for ss.Next() {
		s := ss.At()
		var pts []point
		it := s.Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				pts = append(pts, point{T: ts, F: v})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				pts = append(pts, point{T: ts, H: h})
			case chunkenc.ValFloatHistogram:
				ts, fh := it.AtFloatHistogram(nil)
				pts = append(pts, point{T: ts, FH: fh})
			}
		}
		require.NoError(t, it.Err())
		out[s.Labels().String()] = pts
	}
	require.NoError(t, ss.Err())
	return out
}

// requirePoints checks that got holds exactly want: same timestamps, float values bit for bit, and
// histograms equal (Equals ignores the counter-reset hint, which the TSDB sets on its own).
func requirePoints(t testing.TB, want, got []point, msgAndArgs ...any) {
	t.Helper()
	require.Len(t, got, len(want), "want %v, got %v %v", want, got, fmt.Sprint(msgAndArgs...))
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, w.T, g.T, "point %d: want %v, got %v %v", i, w, g, fmt.Sprint(msgAndArgs...))
		switch {
		case w.H != nil:
			require.NotNil(t, g.H, "point %d: want %v, got %v", i, w, g)
			require.True(t, w.H.Equals(g.H), "point %d: want %v, got %v", i, w, g)
		case w.FH != nil:
			require.NotNil(t, g.FH, "point %d: want %v, got %v", i, w, g)
			require.True(t, w.FH.Equals(g.FH), "point %d: want %v, got %v", i, w, g)
		default:
			require.Nil(t, g.H, "point %d: want %v, got %v", i, w, g)
			require.Nil(t, g.FH, "point %d: want %v, got %v", i, w, g)
			require.Equal(t, math.Float64bits(w.F), math.Float64bits(g.F), "point %d: want %v, got %v", i, w, g)
		}
	}
}

// requireSeries checks that the tenant's TSDB holds exactly the series in want, with exactly their points.
func requireSeries(t testing.TB, m *Manager, id string, want map[string][]point) {
	t.Helper()
	got := query(t, m, id)
	gotKeys := make([]string, 0, len(got))
	for k := range got {
		gotKeys = append(gotKeys, k)
	}
	wantKeys := make([]string, 0, len(want))
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	require.ElementsMatch(t, wantKeys, gotKeys, "series of tenant %s", id)
	for k, w := range want {
		requirePoints(t, w, got[k], "series ", k)
	}
}

// key returns the string form of a series' labels, as query keys them.
func key(pairs ...string) string { return labels.FromStrings(pairs...).String() }

// metricValue returns the value of the gauge or counter name (with the given labels) in reg, and
// whether it exists.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, lv ...string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, mt := range mf.GetMetric() {
			for i := 0; i+1 < len(lv); i += 2 {
				if labelValue(mt, lv[i]) != lv[i+1] {
					continue metrics
				}
			}
			switch {
			case mt.Gauge != nil:
				return mt.GetGauge().GetValue(), true
			case mt.Counter != nil:
				return mt.GetCounter().GetValue(), true
			case mt.Histogram != nil:
				return float64(mt.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// labelValue returns the value of label name of a gathered metric (typed by its methods, so that the
// tests need no direct dependency on client_model).
func labelValue[L interface {
	GetName() string
	GetValue() string
}](mt interface{ GetLabel() []L }, name string) string {
	for _, lp := range mt.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// requireNoTenantSeries fails when a series with a tenant label is still exposed: a closed tenant's
// registry is no longer read.
func requireNoTenantSeries(t testing.TB, reg *prometheus.Registry) {
	t.Helper()
	for _, name := range metricNames(t, reg, "") {
		require.True(t, strings.HasSuffix(name, "{tenant=}"), "%s: a closed tenant's series must be gone", name)
	}
}

// metricNames returns the names of the metric families in reg that start with prefix, with the
// tenants they are labelled with.
func metricNames(t testing.TB, reg *prometheus.Registry, prefix string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var out []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), prefix) {
			continue
		}
		for _, mt := range mf.GetMetric() {
			out = append(out, mf.GetName()+"{tenant="+labelValue(mt, "tenant")+"}")
		}
	}
	return out
}
