package tenant

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/weir-metrics/weir/write"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
)

// appended returns a write.Stats.Appended value from float, histogram and exemplar counts.
func appended(f, h, e int) [write.NumKinds]int {
	return [write.NumKinds]int{write.KindFloat: f, write.KindHistogram: h, write.KindExemplar: e}
}

// requireRejections checks the rejections of a write, ignoring their errors but for their reasons.
func requireRejections(t *testing.T, want []write.Rejection, got []write.Rejection) {
	t.Helper()
	stripped := make([]write.Rejection, len(got))
	for i, r := range got {
		require.Error(t, r.Err, "rejection %d carries no error", i)
		r.Err = nil
		stripped[i] = r
	}
	if len(want) == 0 {
		want = []write.Rejection{}
	}
	require.Equal(t, want, stripped)
}

func mustWrite(t *testing.T, m *Manager, id string, series ...prompb.TimeSeries) write.Stats {
	t.Helper()
	st, err := m.Write(context.Background(), id, series, nil, nil)
	require.NoError(t, err)
	return st
}

func TestWriteFloats(t *testing.T) {
	m, _ := newTestManager(t, nil)
	a := lbls("__name__", "http_requests_total", "code", "200", "job", "api")
	b := lbls("__name__", "up", "instance", "10.0.0.1:9100", "job", "node")
	st := mustWrite(t, m, "team-a",
		prompb.TimeSeries{Labels: a, Samples: floats(float64(t0), 1, float64(t0+15_000), 2.5, float64(t0+30_000), math.Inf(1))},
		prompb.TimeSeries{Labels: b, Samples: floats(float64(t0), 1)},
	)
	require.Equal(t, appended(4, 0, 0), st.Appended)
	requireRejections(t, nil, st.Rejected)

	st = mustWrite(t, m, "team-a", prompb.TimeSeries{Labels: b, Samples: floats(float64(t0+15_000), 0, float64(t0+30_000), math.Float64frombits(value.StaleNaN))})
	require.Equal(t, appended(2, 0, 0), st.Appended)

	requireSeries(t, m, "team-a", map[string][]point{
		key("__name__", "http_requests_total", "code", "200", "job", "api"): {fp(t0, 1), fp(t0+15_000, 2.5), fp(t0+30_000, math.Inf(1))},
		key("__name__", "up", "instance", "10.0.0.1:9100", "job", "node"):   {fp(t0, 1), fp(t0+15_000, 0), fp(t0+30_000, math.Float64frombits(value.StaleNaN))},
	})
	require.Equal(t, []string{"team-a"}, m.Tenants())
}

func TestWriteNativeHistograms(t *testing.T) {
	m, _ := newTestManager(t, nil)
	ih := tsdbutil.GenerateTestHistograms(3)
	fh := tsdbutil.GenerateTestFloatHistograms(3)
	cb := tsdbutil.GenerateTestCustomBucketsHistograms(2)
	gauge := tsdbutil.GenerateTestGaugeFloatHistogram(7)

	series := []prompb.TimeSeries{
		{Labels: lbls("__name__", "rpc_duration_seconds", "job", "api")},
		{Labels: lbls("__name__", "rpc_size_bytes", "job", "api")},
		{Labels: lbls("__name__", "rpc_nhcb_seconds", "job", "api")},
		{Labels: lbls("__name__", "queue_depth", "job", "api"), Histograms: []prompb.Histogram{prompb.FromFloatHistogram(t0, gauge)}},
	}
	for i, h := range ih {
		series[0].Histograms = append(series[0].Histograms, prompb.FromIntHistogram(t0+int64(i)*15_000, h))
	}
	for i, h := range fh {
		series[1].Histograms = append(series[1].Histograms, prompb.FromFloatHistogram(t0+int64(i)*15_000, h))
	}
	for i, h := range cb {
		series[2].Histograms = append(series[2].Histograms, prompb.FromIntHistogram(t0+int64(i)*15_000, h))
	}
	st := mustWrite(t, m, "team-a", series...)
	require.Equal(t, appended(0, 9, 0), st.Appended)
	requireRejections(t, nil, st.Rejected)

	hp := func(ts int64, h *histogram.Histogram) point { return point{T: ts, H: h} }
	fhp := func(ts int64, h *histogram.FloatHistogram) point { return point{T: ts, FH: h} }
	requireSeries(t, m, "team-a", map[string][]point{
		key("__name__", "rpc_duration_seconds", "job", "api"): {hp(t0, ih[0]), hp(t0+15_000, ih[1]), hp(t0+30_000, ih[2])},
		key("__name__", "rpc_size_bytes", "job", "api"):       {fhp(t0, fh[0]), fhp(t0+15_000, fh[1]), fhp(t0+30_000, fh[2])},
		key("__name__", "rpc_nhcb_seconds", "job", "api"):     {hp(t0, cb[0]), hp(t0+15_000, cb[1])},
		key("__name__", "queue_depth", "job", "api"):          {fhp(t0, gauge)},
	})
}

func TestWriteExemplars(t *testing.T) {
	m, _ := newTestManager(t, func(c *Config) { c.MaxExemplars = 100 })
	traced := lbls("__name__", "rpc_duration_seconds_bucket", "job", "api", "le", "0.5")
	st := mustWrite(t, m, "team-a",
		prompb.TimeSeries{
			Labels:  traced,
			Samples: floats(float64(t0), 3, float64(t0+15_000), 5),
			Exemplars: []prompb.Exemplar{
				// Out of time order on purpose: the TSDB wants them sorted, Write sorts them.
				{Labels: lbls("trace_id", "bbb"), Value: 0.42, Timestamp: t0 + 14_000},
				{Labels: lbls("span_id", "s1", "trace_id", "aaa"), Value: 0.25, Timestamp: t0 + 1_000},
				// Too long: labels of an exemplar are limited to 128 runes together.
				{Labels: lbls("trace_id", strings.Repeat("x", 200)), Value: 0.3, Timestamp: t0 + 2_000},
			},
		},
		prompb.TimeSeries{Labels: lbls("__name__", "up", "job", "api"), Samples: floats(float64(t0), 1)},
	)
	require.Equal(t, appended(3, 0, 2), st.Appended)
	requireRejections(t, []write.Rejection{{Series: 0, Kind: write.KindExemplar, Reason: write.ReasonInvalidExemplar, Count: 1}}, st.Rejected)
	require.ErrorIs(t, st.Rejected[0].Err, storage.ErrExemplarLabelLength)

	d, err := m.get(context.Background(), "team-a")
	require.NoError(t, err)
	eq, err := d.tsdb.ExemplarQuerier(context.Background())
	require.NoError(t, err)
	res, err := eq.Select(t0-hourMs, t0+hourMs, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "rpc_duration_seconds_bucket")})
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, key("__name__", "rpc_duration_seconds_bucket", "job", "api", "le", "0.5"), res[0].SeriesLabels.String())
	require.Equal(t, []exemplar.Exemplar{
		{Labels: labels.FromStrings("span_id", "s1", "trace_id", "aaa"), Value: 0.25, Ts: t0 + 1_000, HasTs: true},
		{Labels: labels.FromStrings("trace_id", "bbb"), Value: 0.42, Ts: t0 + 14_000, HasTs: true},
	}, res[0].Exemplars)

	// Exemplars of a series none of whose samples made it are reported, not an error.
	st = mustWrite(t, m, "team-a", prompb.TimeSeries{
		Labels:    lbls("__name__", "new_series", "job", "api"),
		Samples:   floats(float64(t0-3*hourMs), 1),
		Exemplars: []prompb.Exemplar{{Labels: lbls("trace_id", "ccc"), Value: 1, Timestamp: t0 - 3*hourMs}},
	})
	require.Equal(t, appended(0, 0, 0), st.Appended)
	requireRejections(t, []write.Rejection{
		{Series: 0, Kind: write.KindFloat, Reason: write.ReasonTooOld, Count: 1},
		{Series: 0, Kind: write.KindExemplar, Reason: write.ReasonInvalidExemplar, Count: 1},
	}, st.Rejected)
}

func TestWriteExemplarsDisabled(t *testing.T) {
	m, _ := newTestManager(t, nil) // MaxExemplars: 0
	st := mustWrite(t, m, "team-a",
		prompb.TimeSeries{Labels: lbls("__name__", "up", "job", "api"), Samples: floats(float64(t0), 1)},
		prompb.TimeSeries{
			Labels:  lbls("__name__", "rpc_duration_seconds_bucket", "le", "0.5"),
			Samples: floats(float64(t0), 3),
			Exemplars: []prompb.Exemplar{
				{Labels: lbls("trace_id", "aaa"), Value: 0.25, Timestamp: t0},
				{Labels: lbls("trace_id", "bbb"), Value: 0.3, Timestamp: t0 + 1},
			},
		},
	)
	require.Equal(t, appended(2, 0, 0), st.Appended)
	requireRejections(t, []write.Rejection{{Series: 1, Kind: write.KindExemplar, Reason: write.ReasonExemplarsDisabled, Count: 2}}, st.Rejected)
	require.ErrorIs(t, st.Rejected[0].Err, storage.ErrExemplarsDisabled)
	requireSeries(t, m, "team-a", map[string][]point{
		key("__name__", "up", "job", "api"):                         {fp(t0, 1)},
		key("__name__", "rpc_duration_seconds_bucket", "le", "0.5"): {fp(t0, 3)},
	})
}

// TestWriteRejectionsCommitted covers points refused against data committed by an earlier write: each
// is reported against its series' index, and the rest of the request is committed.
func TestWriteRejectionsCommitted(t *testing.T) {
	m, _ := newTestManager(t, nil)
	a := lbls("__name__", "a", "job", "x")
	b := lbls("__name__", "b", "job", "x")
	c := lbls("__name__", "c", "job", "x")
	st := mustWrite(t, m, "t",
		prompb.TimeSeries{Labels: a, Samples: floats(float64(t0+10_000), 1)},
		prompb.TimeSeries{Labels: b, Samples: floats(float64(t0+10_000), 1)},
	)
	require.Equal(t, appended(2, 0, 0), st.Appended)

	st = mustWrite(t, m, "t",
		prompb.TimeSeries{Labels: c, Samples: floats(float64(t0+10_000), 7)},                              // new, fine
		prompb.TimeSeries{Labels: a, Samples: floats(float64(t0+5_000), 2, float64(t0+20_000), 3)},        // older, then newer
		prompb.TimeSeries{Labels: b, Samples: floats(float64(t0+10_000), 2)},                              // same time, other value
		prompb.TimeSeries{Labels: b, Samples: floats(float64(t0+10_000), 1)},                              // exact duplicate
		prompb.TimeSeries{Labels: lbls("__name__", "d"), Samples: floats(float64(t0-3*hourMs), 1)},        // too old
		prompb.TimeSeries{Labels: lbls("__name__", "e"), Samples: floats(float64(t0-61*60_000), 1, 0, 0)}, // too old, twice
	)
	requireRejections(t, []write.Rejection{
		{Series: 1, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 1},
		{Series: 2, Kind: write.KindFloat, Reason: write.ReasonDuplicate, Count: 1},
		{Series: 4, Kind: write.KindFloat, Reason: write.ReasonTooOld, Count: 1},
		{Series: 5, Kind: write.KindFloat, Reason: write.ReasonTooOld, Count: 2},
	}, st.Rejected)
	require.ErrorIs(t, st.Rejected[0].Err, storage.ErrOutOfOrderSample)
	require.ErrorIs(t, st.Rejected[1].Err, storage.ErrDuplicateSampleForTimestamp)
	require.ErrorIs(t, st.Rejected[2].Err, storage.ErrOutOfBounds)
	require.Equal(t, appended(3, 0, 0), st.Appended) // c, a@+20s, b's exact duplicate

	requireSeries(t, m, "t", map[string][]point{
		key("__name__", "a", "job", "x"): {fp(t0+10_000, 1), fp(t0+20_000, 3)},
		key("__name__", "b", "job", "x"): {fp(t0+10_000, 1)},
		key("__name__", "c", "job", "x"): {fp(t0+10_000, 7)},
	})
}

// TestWriteRejectionsWithinRequest covers a series whose own points are out of order in one request:
// the TSDB would drop them silently at commit, so Write must refuse them and say so.
func TestWriteRejectionsWithinRequest(t *testing.T) {
	m, _ := newTestManager(t, nil)
	stale := math.Float64frombits(value.StaleNaN)
	st := mustWrite(t, m, "t",
		prompb.TimeSeries{Labels: lbls("__name__", "ok"), Samples: floats(float64(t0), 1)},
		prompb.TimeSeries{Labels: lbls("__name__", "a"), Samples: []prompb.Sample{
			{Timestamp: t0 + 10, Value: 1},
			{Timestamp: t0 + 5, Value: 2},  // out of order
			{Timestamp: t0 + 3, Value: 2},  // out of order (merged with the previous rejection)
			{Timestamp: t0 + 20, Value: 3}, // fine
			{Timestamp: t0 + 20, Value: 3}, // exact duplicate: accepted
			{Timestamp: t0 + 20, Value: 4}, // same time, other value
			{Timestamp: t0 + 15, Value: 5}, // out of order
			{Timestamp: t0 + 30, Value: math.NaN()},
			{Timestamp: t0 + 30, Value: stale}, // a NaN, but not the same one: a conflict
			{Timestamp: t0 + 40, Value: 0},
			{Timestamp: t0 + 40, Value: math.Copysign(0, -1)}, // -0 is another value, bit for bit
		}},
	)
	requireRejections(t, []write.Rejection{
		{Series: 1, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 2},
		{Series: 1, Kind: write.KindFloat, Reason: write.ReasonDuplicate, Count: 1},
		{Series: 1, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 1},
		{Series: 1, Kind: write.KindFloat, Reason: write.ReasonDuplicate, Count: 2},
	}, st.Rejected)
	require.ErrorIs(t, st.Rejected[0].Err, storage.ErrOutOfOrderSample)
	require.ErrorIs(t, st.Rejected[1].Err, storage.ErrDuplicateSampleForTimestamp)
	// ok, a@10, a@20, a@20 (exact duplicate, stored once), a@30, a@40.
	require.Equal(t, appended(6, 0, 0), st.Appended)
	requireSeries(t, m, "t", map[string][]point{
		key("__name__", "ok"): {fp(t0, 1)},
		key("__name__", "a"):  {fp(t0+10, 1), fp(t0+20, 3), fp(t0+30, math.NaN()), fp(t0+40, 0)},
	})
}

func TestWriteHistogramRejections(t *testing.T) {
	m, _ := newTestManager(t, nil)
	hs := tsdbutil.GenerateTestHistograms(4)
	bad := tsdbutil.GenerateTestHistogram(9)
	bad.Count = 1 // fewer observations than its buckets hold
	badSpans := tsdbutil.GenerateTestFloatHistogram(9)
	badSpans.PositiveBuckets = badSpans.PositiveBuckets[:1] // spans say 4 buckets

	st := mustWrite(t, m, "t",
		prompb.TimeSeries{Labels: lbls("__name__", "h"), Histograms: []prompb.Histogram{
			prompb.FromIntHistogram(t0+10, hs[0]),
			prompb.FromIntHistogram(t0+20, hs[1]),
			prompb.FromIntHistogram(t0+20, hs[1]), // exact duplicate: accepted, as against committed data
			prompb.FromIntHistogram(t0+20, hs[2]), // same time, other histogram
			prompb.FromIntHistogram(t0+15, hs[2]), // out of order
			prompb.FromIntHistogram(t0+30, bad),   // invalid
			prompb.FromIntHistogram(t0+40, hs[3]),
		}},
		prompb.TimeSeries{Labels: lbls("__name__", "bad"), Histograms: []prompb.Histogram{prompb.FromFloatHistogram(t0, badSpans)}},
		prompb.TimeSeries{Labels: lbls("__name__", "ok"), Samples: floats(float64(t0), 1)},
	)
	requireRejections(t, []write.Rejection{
		{Series: 0, Kind: write.KindHistogram, Reason: write.ReasonDuplicate, Count: 1},
		{Series: 0, Kind: write.KindHistogram, Reason: write.ReasonOutOfOrder, Count: 1},
		{Series: 0, Kind: write.KindHistogram, Reason: write.ReasonInvalidHistogram, Count: 1},
		{Series: 1, Kind: write.KindHistogram, Reason: write.ReasonInvalidHistogram, Count: 1},
	}, st.Rejected)
	var herr histogram.Error
	require.True(t, errors.As(st.Rejected[2].Err, &herr))
	require.ErrorIs(t, st.Rejected[2].Err, histogram.ErrHistogramCountMismatch)
	require.ErrorIs(t, st.Rejected[3].Err, histogram.ErrHistogramSpansBucketsMismatch)
	require.Equal(t, appended(1, 4, 0), st.Appended)

	requireSeries(t, m, "t", map[string][]point{
		key("__name__", "h"):  {{T: t0 + 10, H: hs[0]}, {T: t0 + 20, H: hs[1]}, {T: t0 + 40, H: hs[3]}},
		key("__name__", "ok"): {fp(t0, 1)},
	})

	// Against committed data: older, and same time with another histogram.
	st = mustWrite(t, m, "t", prompb.TimeSeries{Labels: lbls("__name__", "h"), Histograms: []prompb.Histogram{
		prompb.FromIntHistogram(t0+40, hs[3]), // exact duplicate
		prompb.FromIntHistogram(t0+40, hs[0]),
		prompb.FromIntHistogram(t0+35, hs[0]),
	}})
	require.Equal(t, appended(0, 1, 0), st.Appended)
	requireRejections(t, []write.Rejection{
		{Series: 0, Kind: write.KindHistogram, Reason: write.ReasonDuplicate, Count: 1},
		{Series: 0, Kind: write.KindHistogram, Reason: write.ReasonOutOfOrder, Count: 1},
	}, st.Rejected)
}

// TestWriteRepeatedSeries covers one series sent as several TimeSeries entries of one request, which is
// how Prometheus sends a series' backlog (one sample per entry).
func TestWriteRepeatedSeries(t *testing.T) {
	m, _ := newTestManager(t, nil)
	a := lbls("__name__", "a", "job", "x")
	st := mustWrite(t, m, "t",
		prompb.TimeSeries{Labels: a, Samples: floats(float64(t0+10), 1)},
		prompb.TimeSeries{Labels: a, Samples: floats(float64(t0+20), 2)},
		prompb.TimeSeries{Labels: a, Samples: floats(float64(t0+15), 3)}, // out of order
		prompb.TimeSeries{Labels: a, Samples: floats(float64(t0+20), 4)}, // same time, other value
		prompb.TimeSeries{Labels: a, Samples: floats(float64(t0+20), 2)}, // exact duplicate
		prompb.TimeSeries{Labels: a, Samples: floats(float64(t0+30), 5)},
	)
	requireRejections(t, []write.Rejection{
		{Series: 2, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 1},
		{Series: 3, Kind: write.KindFloat, Reason: write.ReasonDuplicate, Count: 1},
	}, st.Rejected)
	require.Equal(t, appended(4, 0, 0), st.Appended)
	requireSeries(t, m, "t", map[string][]point{
		key("__name__", "a", "job", "x"): {fp(t0+10, 1), fp(t0+20, 2), fp(t0+30, 5)},
	})
}

func TestWriteOutOfOrderWindow(t *testing.T) {
	m, _ := newTestManager(t, func(c *Config) { c.OutOfOrderWindow = time.Hour })
	a := lbls("__name__", "a")
	st := mustWrite(t, m, "t", prompb.TimeSeries{Labels: a, Samples: floats(float64(t0), 1)})
	require.Equal(t, appended(1, 0, 0), st.Appended)

	st = mustWrite(t, m, "t",
		prompb.TimeSeries{Labels: a, Samples: floats(
			float64(t0-30*60_000), 2, // within the window
			float64(t0-2*hourMs), 3, // beyond it
			float64(t0+20_000), 4,
			float64(t0+10_000), 5, // out of order within the request, within the window
		)},
		prompb.TimeSeries{Labels: lbls("__name__", "b"), Samples: floats(float64(t0-50*60_000), 6)},
	)
	requireRejections(t, []write.Rejection{{Series: 0, Kind: write.KindFloat, Reason: write.ReasonTooOld, Count: 1}}, st.Rejected)
	require.ErrorIs(t, st.Rejected[0].Err, storage.ErrTooOldSample)
	require.Equal(t, appended(4, 0, 0), st.Appended)
	requireSeries(t, m, "t", map[string][]point{
		key("__name__", "a"): {fp(t0-30*60_000, 2), fp(t0, 1), fp(t0+10_000, 5), fp(t0+20_000, 4)},
		key("__name__", "b"): {fp(t0-50*60_000, 6)},
	})
}

// TestWriteOutOfOrderWindowConflicts covers a timestamp given twice with different values in one request
// while out-of-order ingestion is on: the TSDB would keep one and drop the other at commit, silently.
func TestWriteOutOfOrderWindowConflicts(t *testing.T) {
	m, _ := newTestManager(t, func(c *Config) { c.OutOfOrderWindow = time.Hour })
	a := lbls("__name__", "a")
	mustWrite(t, m, "t", prompb.TimeSeries{Labels: a, Samples: floats(float64(t0), 1)})
	st := mustWrite(t, m, "t",
		prompb.TimeSeries{Labels: a, Samples: floats(
			float64(t0+10), 2,
			float64(t0+10), 3, // same time, other value
			float64(t0-10), 4, // out of order, fine
			float64(t0-10), 4, // exact duplicate
			float64(t0-10), 5, // same time, other value
		)},
	)
	// Both conflicts, merged in one entry (rejections of a series are merged by reason).
	requireRejections(t, []write.Rejection{{Series: 0, Kind: write.KindFloat, Reason: write.ReasonDuplicate, Count: 2}}, st.Rejected)
	require.Equal(t, appended(3, 0, 0), st.Appended)
	requireSeries(t, m, "t", map[string][]point{
		key("__name__", "a"): {fp(t0-10, 4), fp(t0, 1), fp(t0+10, 2)},
	})
}

func TestExternalLabels(t *testing.T) {
	m, _ := newTestManager(t, func(c *Config) {
		c.ExternalLabels = labels.FromStrings("replica", "ingester-0", "ring", "a")
	})
	require.Equal(t, labels.FromStrings("replica", "ingester-0", "ring", "a", "tenant_id", "team-a"), m.ExternalLabels("team-a"))
	require.Equal(t, labels.FromStrings("replica", "ingester-0", "ring", "a", "tenant_id", "team-b"), m.ExternalLabels("team-b"))

	mustWrite(t, m, "team-a", prompb.TimeSeries{Labels: lbls("__name__", "up", "job", "api"), Samples: floats(float64(t0), 1)})
	got := query(t, m, "team-a")
	require.Len(t, got, 1)
	for k := range got {
		require.Equal(t, key("__name__", "up", "job", "api"), k, "series must not carry the tenant or external labels")
	}
	d, err := m.get(context.Background(), "team-a")
	require.NoError(t, err)
	q, err := d.tsdb.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	names, _, err := q.LabelNames(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "job"}, names)

	// Without configured external labels, only the tenant label.
	m2, _ := newTestManager(t, nil)
	require.Equal(t, labels.FromStrings("tenant_id", "x"), m2.ExternalLabels("x"))
}
