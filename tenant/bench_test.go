package tenant

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
	"github.com/weir-metrics/weir/write"
)

// benchSeries returns n series of 10 labels each, shaped like a Kubernetes scrape target's, with one
// sample each; seed makes their label sets distinct from those of another seed.
func benchSeries(n int, seed string) []prompb.TimeSeries {
	series := make([]prompb.TimeSeries, n)
	for i := range series {
		series[i] = prompb.TimeSeries{
			Labels: lbls(
				"__name__", "http_server_requests_seconds_count",
				"cluster", "prod-eu-west-1",
				"container", "api",
				"endpoint", "/api/v1/items/"+strconv.Itoa(i%50),
				"instance", "10.12."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250)+":8080",
				"job", "kubernetes-pods",
				"method", [...]string{"GET", "POST", "PUT", "DELETE"}[i%4],
				"namespace", "shop",
				"pod", "api-7d9f8b6c5-"+seed+"-"+strconv.Itoa(i),
				"status", [...]string{"200", "404", "500"}[i%3],
			),
			Samples: []prompb.Sample{{}},
		}
	}
	return series
}

// BenchmarkWrite is the ingester's hot path: the same series, each request one sample newer.
func BenchmarkWrite(b *testing.B) {
	for _, n := range []int{2000} {
		b.Run("series="+strconv.Itoa(n), func(b *testing.B) {
			m, _ := newTestManager(b, nil)
			benchWriteExisting(b, m, n)
		})
	}
}

// BenchmarkWriteManySeries is the hot path when the head and the series-reference cache are far bigger
// than the CPU's caches: 500,000 series, written 2,000 per request in turn as one big sender's would be.
// BenchmarkWrite's 2,000 series stay in cache and do not show what a miss per lookup costs.
func BenchmarkWriteManySeries(b *testing.B) {
	const total, per = 500_000, 2000
	m, _ := newTestManager(b, nil)
	ctx := context.Background()
	series := benchSeries(total, "x")
	ts := t0
	write1 := func(part []prompb.TimeSeries) {
		for i := range part {
			part[i].Samples[0] = prompb.Sample{Timestamp: ts, Value: float64(ts)}
		}
		st, err := m.Write(ctx, "bench", part, nil, nil)
		if err != nil || st.Appended[write.KindFloat] != len(part) {
			b.Fatalf("write: %v, %+v", err, st)
		}
	}
	for first := 0; first < total; first += per { // creates every series
		write1(series[first : first+per])
	}

	b.ReportAllocs()
	cpu0 := testutil.CPUTime(b)
	off := 0
	for b.Loop() {
		if off == 0 {
			ts += 100 // a new round: every series one sample newer
		}
		write1(series[off : off+per])
		off = (off + per) % total
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/sample")
	b.ReportMetric(float64((testutil.CPUTime(b)-cpu0).Nanoseconds())/float64(b.N*per), "cpu-ns/sample")
}

// benchWriteExisting writes the same n series to m, each request one sample newer.
func benchWriteExisting(b *testing.B, m *Manager, n int) {
	ctx := context.Background()
	series := benchSeries(n, "x")
	ts := t0
	step := func() {
		// 100 ms apart: a long run stays well inside one head block, so no compaction runs.
		ts += 100
		for i := range series {
			series[i].Samples[0] = prompb.Sample{Timestamp: ts, Value: float64(ts)}
		}
	}
	step()
	_, err := m.Write(ctx, "bench", series, nil, nil) // opens the tenant and creates the series
	require.NoError(b, err)

	b.ReportAllocs()
	cpu0 := testutil.CPUTime(b)
	for b.Loop() {
		step()
		st, err := m.Write(ctx, "bench", series, nil, nil)
		if err != nil || st.Appended[write.KindFloat] != n {
			b.Fatalf("write: %v, %+v", err, st)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
	b.ReportMetric(float64((testutil.CPUTime(b)-cpu0).Nanoseconds())/float64(b.N*n), "cpu-ns/sample")
}

// BenchmarkWriteNewSeries measures how fast series are created: every request brings 2,000 new ones.
func BenchmarkWriteNewSeries(b *testing.B) {
	m, _ := newTestManager(b, nil)
	benchWriteNew(b, m, 2000)
}

// benchWriteNew writes n new series to m in every request.
func benchWriteNew(b *testing.B, m *Manager, n int) {
	ctx := context.Background()
	_, err := m.Write(ctx, "bench", benchSeries(1, "warmup"), nil, nil)
	require.NoError(b, err)

	// Series are built ahead in batches outside the timer, so that label building is not measured.
	var batch int
	next := func() []prompb.TimeSeries {
		batch++
		s := benchSeries(n, fmt.Sprintf("b%d", batch))
		for i := range s {
			s[i].Samples[0] = prompb.Sample{Timestamp: t0 + int64(batch), Value: 1}
		}
		return s
	}
	series := next()
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		cpu0 := testutil.CPUTime(b)
		st, err := m.Write(ctx, "bench", series, nil, nil)
		if err != nil || st.Appended[write.KindFloat] != n {
			b.Fatalf("write: %v, %+v", err, st)
		}
		cpu += testutil.CPUTime(b) - cpu0
		b.StopTimer()
		series = next()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "series/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/series")
}

// BenchmarkWriteLimits: the ingester's hot path and series creation without series limits and with
// them (limits that are never reached, so that every write does the same work): compare with
// benchstat -col /limits. Limits cost only where a series is created.
func BenchmarkWriteLimits(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		var opts []ManagerOption
		if mode == "on" {
			opts = append(opts, WithSeriesLimits(func(string) (int64, int64) { return 1 << 40, 1 << 40 }))
		}
		newManager := func(b *testing.B) *Manager {
			m, err := NewManager(testConfig(b.TempDir()), nil, discardLogger(), prometheus.NewRegistry(), opts...)
			require.NoError(b, err)
			b.Cleanup(func() { require.NoError(b, m.Close()) })
			return m
		}
		b.Run("existing/limits="+mode, func(b *testing.B) { benchWriteExisting(b, newManager(b), 2000) })
		b.Run("new/limits="+mode, func(b *testing.B) { benchWriteNew(b, newManager(b), 2000) })
	}
}

// BenchmarkSeriesLimitCheck: what series limits add to the creation of one series (the limit
// lookup and count in PreCreation, the per-metric count in PostCreation), alone: set it against
// BenchmarkWriteNewSeries' cpu-ns/series. Samples of existing series cost nothing.
func BenchmarkSeriesLimitCheck(b *testing.B) {
	tr := newSeriesTracker("bench", func(string) (int64, int64) { return 1 << 40, 1 << 40 }, prometheus.NewRegistry())
	head := uint64(0)
	tr.enforce(func() uint64 { return head })
	ls := labels.FromStrings("__name__", "http_server_requests_seconds_count", "pod", "api-1")
	b.ReportAllocs()
	for b.Loop() {
		if err := tr.PreCreation(ls); err != nil {
			b.Fatal(err)
		}
		tr.PostCreation(ls)
		head++
	}
}
