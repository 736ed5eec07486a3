package loadgen

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func decode(t *testing.T, b []byte) prompb.WriteRequest {
	t.Helper()
	var wr prompb.WriteRequest
	require.NoError(t, wr.Unmarshal(b))
	return wr
}

func toLabels(ls []prompb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

func TestGeneratorMakesTheConfiguredSeries(t *testing.T) {
	spec := Spec{Tenants: 3, Series: 1000, LabelsPerSeries: 6, LabelValueCardinality: 7, SamplesPerRequest: 128}
	require.NoError(t, spec.Validate())
	sc := newSchema(spec)
	enc := newEncoder(spec, sc)
	const ts = int64(1_700_000_000_000)

	batches := spec.batches()
	seen := map[string]bool{}
	ids := map[uint64]bool{}
	values := map[string]map[string]bool{} // label name → values
	slotsOf := make([]int, spec.Tenants)
	for i, b := range batches {
		if i < spec.Tenants {
			require.Equal(t, i, b.tenant, "tenants take turns")
		}
		require.LessOrEqual(t, b.count, spec.SamplesPerRequest)
		lo, hi := spec.TenantSlots(b.tenant)
		require.True(t, b.first >= lo && b.first+b.count <= hi, "a request holds series of its tenant only")
		slotsOf[b.tenant] += b.count

		wr := decode(t, enc.appendRequest(nil, b, 0, ts))
		require.Len(t, wr.Timeseries, b.count)
		for _, s := range wr.Timeseries {
			ls := toLabels(s.Labels)
			require.Len(t, s.Labels, spec.LabelsPerSeries)
			require.True(t, slices.IsSortedFunc(s.Labels, func(a, b prompb.Label) int { return compare(a.Name, b.Name) }), "labels sorted by name")
			require.Equal(t, MetricName, ls.Get(model.MetricNameLabel))
			id, err := strconv.ParseUint(ls.Get(SeriesIDLabel), 10, 64)
			require.NoError(t, err)
			require.Equal(t, SeriesLabels(spec, id), ls)
			require.Len(t, s.Samples, 1)
			require.Equal(t, ts, s.Samples[0].Timestamp)
			require.Equal(t, Value(id, ts), s.Samples[0].Value)
			require.False(t, seen[ls.String()], "series sent twice in one round")
			seen[ls.String()] = true
			ids[id] = true
			ls.Range(func(l labels.Label) {
				if values[l.Name] == nil {
					values[l.Name] = map[string]bool{}
				}
				values[l.Name][l.Value] = true
			})
		}
	}
	require.Len(t, seen, spec.Series)
	for id := range uint64(spec.Series) {
		require.True(t, ids[id], "series %d", id)
	}
	require.Equal(t, []int{333, 333, 334}, slotsOf)
	require.Len(t, values, spec.LabelsPerSeries)
	for name, vs := range values {
		switch name {
		case model.MetricNameLabel:
			require.Len(t, vs, 1)
		case SeriesIDLabel:
			require.Len(t, vs, spec.Series)
		default:
			require.Len(t, vs, spec.LabelValueCardinality, name)
		}
	}
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestLabelNamesSortPastTenDimensions(t *testing.T) {
	spec := Spec{Tenants: 1, Series: 10, LabelsPerSeries: 40, LabelValueCardinality: 3, SamplesPerRequest: 10}
	wr := decode(t, newEncoder(spec, newSchema(spec)).appendRequest(nil, spec.batches()[0], 0, 1))
	for _, s := range wr.Timeseries {
		require.Len(t, s.Labels, 40)
		require.True(t, slices.IsSortedFunc(s.Labels, func(a, b prompb.Label) int { return compare(a.Name, b.Name) }))
	}
}

func TestIdentitiesAreStableAcrossRequests(t *testing.T) {
	spec := Spec{Tenants: 1, Series: 50, LabelsPerSeries: 10, LabelValueCardinality: 5, SamplesPerRequest: 50}
	enc := newEncoder(spec, newSchema(spec))
	b := spec.batches()[0]
	first := decode(t, enc.appendRequest(nil, b, 0, 1000))
	second := decode(t, enc.appendRequest(nil, b, 0, 16000))
	valuesDiffer := false
	for i := range first.Timeseries {
		require.Equal(t, first.Timeseries[i].Labels, second.Timeseries[i].Labels)
		require.Equal(t, int64(16000), second.Timeseries[i].Samples[0].Timestamp)
		valuesDiffer = valuesDiffer || first.Timeseries[i].Samples[0].Value != second.Timeseries[i].Samples[0].Value
	}
	require.True(t, valuesDiffer, "values vary over time")
}

func TestChurnReplacesTheConfiguredNumberOfSeries(t *testing.T) {
	spec := Spec{Tenants: 2, Series: 100, LabelsPerSeries: 4, LabelValueCardinality: 10, SamplesPerRequest: 30, ChurnPerMinute: 600}
	ever := map[uint64]bool{}
	active := func(churn uint64) []uint64 {
		out := make([]uint64, spec.Series)
		for s := range out {
			out[s] = SeriesID(spec, s, churn)
			ever[out[s]] = true
		}
		return out
	}
	for _, tc := range []struct{ from, to uint64 }{{0, 1}, {0, 37}, {0, 100}, {37, 137}, {99, 150}, {250, 251}, {5, 5}} {
		a, b := active(tc.from), active(tc.to)
		changed := 0
		for s := range a {
			if a[s] != b[s] {
				changed++
				require.Greater(t, b[s], a[s], "a replaced series is a new one")
			}
		}
		require.Equal(t, int(tc.to-tc.from), changed, "%d → %d replacements", tc.from, tc.to)
	}
	// IDs of different slots and generations never collide: 100 slots and 251 replacements make 351 series.
	require.Len(t, ever, 351)

	// 600 per minute is 10 per second.
	require.Zero(t, ChurnAt(spec, 99))
	require.Equal(t, uint64(1), ChurnAt(spec, 100))
	require.Equal(t, uint64(10), ChurnAt(spec, time.Second.Milliseconds()))
	require.Equal(t, uint64(599), ChurnAt(spec, 59_999))
	require.Equal(t, uint64(600*60*24*365), ChurnAt(spec, (365*24*time.Hour).Milliseconds()))
	require.Zero(t, ChurnAt(Spec{Series: 1}, 1e9))

	// Churned-in series are sent with their new labels.
	enc := newEncoder(spec, newSchema(spec))
	wr := decode(t, enc.appendRequest(nil, batch{tenant: 0, first: 0, count: 30}, 10, 1))
	for slot, s := range wr.Timeseries {
		want := SeriesID(spec, slot, 10)
		require.Equal(t, SeriesLabels(spec, want), toLabels(s.Labels))
		if slot < 10 {
			require.Equal(t, uint64(100+slot), want)
		}
	}
}

func TestEncodingDoesNotAllocate(t *testing.T) {
	spec := Spec{Tenants: 1, Series: 2000, LabelsPerSeries: 10, LabelValueCardinality: 100, SamplesPerRequest: 2000}
	enc := newEncoder(spec, newSchema(spec))
	b := spec.batches()[0]
	buf := enc.appendRequest(nil, b, 0, 1)
	allocs := testing.AllocsPerRun(10, func() { buf = enc.appendRequest(buf[:0], b, 3, 2) })
	require.Zero(t, allocs)
}

func TestHistogramQuantiles(t *testing.T) {
	for v := uint64(0); v < 1<<20; v = v*2 + 1 {
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		require.True(t, lo <= v && v <= hi, "%d in bucket %d [%d, %d]", v, i, lo, hi)
		require.Equal(t, i+1, bucketOf(hi+1))
	}
	var h histogram
	for us := 1; us <= 10_000; us++ {
		h.observe(time.Duration(us) * time.Microsecond)
	}
	var s histSnapshot
	h.snapshot(&s)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		got := s.quantile(nil, q)
		want := time.Duration(q*10_000) * time.Microsecond
		require.InEpsilon(t, want, got, 0.02, "q=%g", q)
	}
	require.Equal(t, uint64(10_000), h.max.Load())
	var empty histSnapshot
	require.Zero(t, empty.quantile(nil, 0.99))
	// Since a snapshot: only what came after.
	prev := s
	h.observe(time.Second)
	h.snapshot(&s)
	require.InEpsilon(t, time.Second, s.quantile(&prev, 0.5), 0.02)
}

func TestSpecValidation(t *testing.T) {
	good := Spec{Tenants: 2, Series: 10, LabelsPerSeries: 10, LabelValueCardinality: 3, SamplesPerRequest: 5}
	require.NoError(t, good.Validate())
	for _, tc := range []struct {
		edit func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Tenants = 0 }, "--tenants"},
		{func(s *Spec) { s.Series = 0 }, "--series"},
		{func(s *Spec) { s.Series = 1 }, "fewer than --tenants"},
		{func(s *Spec) { s.LabelsPerSeries = 1 }, "--labels-per-series"},
		{func(s *Spec) { s.LabelsPerSeries = 129 }, "--labels-per-series"},
		{func(s *Spec) { s.LabelValueCardinality = 0 }, "--label-value-cardinality"},
		{func(s *Spec) { s.ChurnPerMinute = -1 }, "--churn"},
		{func(s *Spec) { s.SamplesPerRequest = 0 }, "--samples-per-request"},
	} {
		s := good
		tc.edit(&s)
		require.ErrorContains(t, s.Validate(), tc.want)
	}
}
