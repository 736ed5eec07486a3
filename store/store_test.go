package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weir-metrics/weir/store/storepb"
	"github.com/weir-metrics/weir/tenant"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type sample struct {
	T int64
	V float64
}

// fixture is a tenant.Manager in a temporary directory behind a StoreAPI server on loopback.
type fixture struct {
	mgr   *tenant.Manager
	srv   *Server
	reg   *prometheus.Registry
	store storepb.StoreClient
	info  storepb.InfoClient
	meta  storepb.MetadataClient
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	mgr, err := tenant.NewManager(tenant.Config{
		Dir:             t.TempDir(),
		Retention:       24 * time.Hour,
		LabelName:       "tenant_id",
		ExternalLabels:  labels.FromStrings("replica", "r1"),
		OpenConcurrency: 1,
	}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, mgr.Close()) })

	srv, err := New(cfg, mgr, nil, reg)
	require.NoError(t, err)
	g := grpc.NewServer()
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() { defer close(served); _ = g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); <-served })
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &fixture{mgr: mgr, srv: srv, reg: reg, store: storepb.NewStoreClient(conn), info: storepb.NewInfoClient(conn), meta: storepb.NewMetadataClient(conn)}
}

// write appends samples to one series of a tenant; kv are the series' label pairs.
func (f *fixture) write(t *testing.T, tenantID string, samples []sample, kv ...string) {
	t.Helper()
	ts := prompb.TimeSeries{}
	for i := 0; i < len(kv); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	slices.SortFunc(ts.Labels, func(a, b prompb.Label) int { return cmpStr(a.Name, b.Name) })
	for _, s := range samples {
		ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: s.T, Value: s.V})
	}
	st, err := f.mgr.Write(context.Background(), tenantID, []prompb.TimeSeries{ts}, nil, nil)
	require.NoError(t, err)
	require.Empty(t, st.Rejected)
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func samples(from, step int64, n int, base float64) []sample {
	out := make([]sample, n)
	for i := range out {
		out[i] = sample{T: from + int64(i)*step, V: base + float64(i)}
	}
	return out
}

// got is one series of a Series response: its labels and the samples decoded from its chunks.
type got struct {
	Labels  string
	Samples []sample
	Chunks  int
}

func eq(name, value string) *storepb.LabelMatcher {
	return &storepb.LabelMatcher{Type: storepb.LabelMatcher_EQ, Name: name, Value: value}
}

func re(name, value string) *storepb.LabelMatcher {
	return &storepb.LabelMatcher{Type: storepb.LabelMatcher_RE, Name: name, Value: value}
}

func pbLabels(ls []*storepb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

// series runs a Series request and decodes everything; it checks that the series come sorted and
// that a series' frames are consecutive.
func (f *fixture) series(t *testing.T, req *storepb.SeriesRequest) ([]got, error) {
	t.Helper()
	stream, err := f.store.Series(context.Background(), req)
	require.NoError(t, err)
	var out []got
	var prev labels.Labels
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		var batch []*storepb.Series
		if s := resp.GetSeries(); s != nil {
			batch = []*storepb.Series{s}
		} else if b := resp.GetBatch(); b != nil {
			batch = b.Series
		} else {
			t.Fatalf("unexpected response %v", resp)
		}
		for _, s := range batch {
			ls := pbLabels(s.Labels)
			var g *got
			if len(out) > 0 && labels.Equal(prev, ls) {
				g = &out[len(out)-1] // another frame of the same series
			} else {
				if len(out) > 0 {
					require.Negative(t, labels.Compare(prev, ls), "series must come sorted: %s before %s", prev, ls)
				}
				out = append(out, got{Labels: ls.String()})
				g = &out[len(out)-1]
				prev = ls
			}
			for _, c := range s.Chunks {
				g.Chunks++
				require.Equal(t, storepb.Chunk_XOR, c.Raw.Type)
				chk, err := chunkenc.FromData(chunkenc.EncXOR, c.Raw.Data)
				require.NoError(t, err)
				it := chk.Iterator(nil)
				for it.Next() != chunkenc.ValNone {
					ts, v := it.At()
					require.GreaterOrEqual(t, ts, c.MinTime)
					require.LessOrEqual(t, ts, c.MaxTime)
					g.Samples = append(g.Samples, sample{T: ts, V: v})
				}
				require.NoError(t, it.Err())
			}
		}
	}
}

func TestSeriesExact(t *testing.T) {
	f := newFixture(t, Config{})
	// up{job="a"} is a prefix of up{instance="x",job="a"}... and of up{job="a",zone="z"}: with
	// replica and tenant_id set, the order differs from the TSDB's.
	f.write(t, "team-a", samples(1000, 1000, 5, 0), "__name__", "up", "job", "a")
	f.write(t, "team-a", samples(1000, 1000, 5, 10), "__name__", "up", "job", "a", "instance", "x")
	f.write(t, "team-a", samples(1000, 1000, 5, 20), "__name__", "up", "job", "a", "zone", "z")
	f.write(t, "team-a", samples(1000, 1000, 5, 30), "__name__", "up", "job", "a", "a", "b")
	f.write(t, "team-b", samples(2000, 1000, 3, 100), "__name__", "up", "job", "a")
	f.write(t, "team-b", samples(2000, 1000, 3, 200), "__name__", "other")

	res, err := f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}})
	require.NoError(t, err)
	require.Equal(t, []got{
		{Labels: `{__name__="up", a="b", job="a", replica="r1", tenant_id="team-a"}`, Samples: samples(1000, 1000, 5, 30), Chunks: 1},
		{Labels: `{__name__="up", instance="x", job="a", replica="r1", tenant_id="team-a"}`, Samples: samples(1000, 1000, 5, 10), Chunks: 1},
		{Labels: `{__name__="up", job="a", replica="r1", tenant_id="team-a"}`, Samples: samples(1000, 1000, 5, 0), Chunks: 1},
		{Labels: `{__name__="up", job="a", replica="r1", tenant_id="team-a", zone="z"}`, Samples: samples(1000, 1000, 5, 20), Chunks: 1},
		{Labels: `{__name__="up", job="a", replica="r1", tenant_id="team-b"}`, Samples: samples(2000, 1000, 3, 100), Chunks: 1},
	}, res)

	require.Equal(t, 5.0, testutil.ToFloat64(f.srv.metrics.series))
	require.Equal(t, 23.0, testutil.ToFloat64(f.srv.metrics.samples))
	require.Equal(t, 1.0, testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("Series", "success")))

	// Without the replica label (Thanos Query's deduplication), still sorted, batched on request.
	res, err = f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("job", "a")},
		WithoutReplicaLabels: []string{"replica"}, ResponseBatchSize: 2, SkipChunks: true})
	require.NoError(t, err)
	require.Equal(t, []got{
		{Labels: `{__name__="up", a="b", job="a", tenant_id="team-a"}`},
		{Labels: `{__name__="up", instance="x", job="a", tenant_id="team-a"}`},
		{Labels: `{__name__="up", job="a", tenant_id="team-a"}`},
		{Labels: `{__name__="up", job="a", tenant_id="team-a", zone="z"}`},
		{Labels: `{__name__="up", job="a", tenant_id="team-b"}`},
	}, res)
}

// TestSeriesOrderRandom checks the streamed order against a full sort on many random series, with
// several external label layouts, also series that carry an external label's name themselves.
func TestSeriesOrderRandom(t *testing.T) {
	f := newFixture(t, Config{})
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"a", "instance", "job", "r", "replica", "tenant_id", "u", "zone"}
	want := map[string][]labels.Labels{} // by tenant: the series' own label sets
	for _, tenantID := range []string{"t1", "t2", "t3"} {
		seen := map[string]bool{}
		for range 300 {
			kv := []string{"__name__", fmt.Sprintf("m%d", rng.IntN(2))}
			for _, n := range names {
				if n == "tenant_id" || (n == "replica" && tenantID != "t3") {
					continue // only t3's series carry the name of an external label
				}
				if rng.IntN(3) == 0 {
					kv = append(kv, n, fmt.Sprint(rng.IntN(2)))
				}
			}
			ls := labels.FromStrings(kv...)
			if seen[ls.String()] {
				continue
			}
			seen[ls.String()] = true
			want[tenantID] = append(want[tenantID], ls)
			f.write(t, tenantID, []sample{{T: 1000, V: 1}}, kv...)
		}
	}
	for _, without := range [][]string{nil, {"replica"}, {"zone"}} {
		expected := map[string]bool{}
		for tenantID, sets := range want {
			for _, ls := range sets {
				b := labels.NewBuilder(ls)
				for _, n := range without {
					b.Del(n)
				}
				if !slices.Contains(without, "replica") {
					b.Set("replica", "r1")
				}
				b.Set("tenant_id", tenantID)
				expected[b.Labels().String()] = true
			}
		}
		res, err := f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64,
			Matchers: []*storepb.LabelMatcher{re("__name__", "m.*")}, WithoutReplicaLabels: without})
		require.NoError(t, err, "without %v", without) // f.series checks the order
		gotSet := map[string]bool{}
		for _, g := range res {
			gotSet[g.Labels] = true
		}
		require.Equal(t, expected, gotSet, "without %v", without)
	}
}

// tenantOf returns the tenant_id value in a label set's string form.
func tenantOf(s string) string {
	m := regexp.MustCompile(`tenant_id="([^"]*)"`).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestSeriesTenantMatchers(t *testing.T) {
	f := newFixture(t, Config{})
	for _, id := range []string{"team-a", "team-b", "other"} {
		f.write(t, id, []sample{{T: 1000, V: 1}}, "__name__", "m")
	}
	for _, tc := range []struct {
		name     string
		matchers []*storepb.LabelMatcher
		tenants  []string
	}{
		{"tenant equal", []*storepb.LabelMatcher{eq("__name__", "m"), eq("tenant_id", "team-a")}, []string{"team-a"}},
		{"tenant regexp", []*storepb.LabelMatcher{eq("__name__", "m"), re("tenant_id", "team-.*")}, []string{"team-a", "team-b"}},
		{"tenant not equal", []*storepb.LabelMatcher{eq("__name__", "m"), {Type: storepb.LabelMatcher_NEQ, Name: "tenant_id", Value: "team-a"}}, []string{"other", "team-b"}},
		{"tenant only", []*storepb.LabelMatcher{eq("tenant_id", "team-b")}, []string{"team-b"}},
		{"replica matches", []*storepb.LabelMatcher{eq("__name__", "m"), eq("replica", "r1")}, []string{"other", "team-a", "team-b"}},
		{"replica does not match", []*storepb.LabelMatcher{eq("__name__", "m"), eq("replica", "r2")}, nil},
		{"unknown tenant", []*storepb.LabelMatcher{eq("__name__", "m"), eq("tenant_id", "nobody")}, nil},
		{"series label", []*storepb.LabelMatcher{eq("__name__", "nothing")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: tc.matchers})
			require.NoError(t, err)
			var tenants []string
			for _, g := range res {
				tenants = append(tenants, tenantOf(g.Labels))
				require.Equal(t, []sample{{T: 1000, V: 1}}, g.Samples)
			}
			require.Equal(t, tc.tenants, tenants)
		})
	}
	_, err := f.series(t, &storepb.SeriesRequest{MaxTime: 10, Matchers: []*storepb.LabelMatcher{re("__name__", "(")}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
}

func TestSeriesTimeRangeAndSkipChunks(t *testing.T) {
	f := newFixture(t, Config{})
	f.write(t, "team-a", samples(1000, 1000, 10, 0), "__name__", "early")       // 1s..10s
	f.write(t, "team-a", samples(100_000, 1000, 10, 50), "__name__", "late")    // 100s..109s
	f.write(t, "team-a", samples(50_000, 10_000, 10, 70), "__name__", "across") // 50s..140s
	all := []*storepb.LabelMatcher{re("__name__", ".+")}

	res, err := f.series(t, &storepb.SeriesRequest{MinTime: 60_000, MaxTime: 200_000, Matchers: all})
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, `{__name__="across", replica="r1", tenant_id="team-a"}`, res[0].Labels)
	require.Equal(t, `{__name__="late", replica="r1", tenant_id="team-a"}`, res[1].Labels)
	require.Equal(t, samples(100_000, 1000, 10, 50), res[1].Samples)
	// Chunks are whole (as the StoreAPI allows): every sample in the range is there.
	require.Subset(t, res[0].Samples, samples(60_000, 10_000, 9, 71))

	res, err = f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: 20_000, Matchers: all})
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, samples(1000, 1000, 10, 0), res[0].Samples)

	res, err = f.series(t, &storepb.SeriesRequest{MinTime: 200_000, MaxTime: 300_000, Matchers: all})
	require.NoError(t, err)
	require.Empty(t, res)

	res, err = f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: all, SkipChunks: true})
	require.NoError(t, err)
	require.Len(t, res, 3)
	for _, g := range res {
		require.Zero(t, g.Chunks, g.Labels)
	}

	// limit is a hint: at most that many series, no error.
	res, err = f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: all, Limit: 2})
	require.NoError(t, err)
	require.Len(t, res, 2)
}

func TestSeriesLimits(t *testing.T) {
	f := newFixture(t, Config{MaxSeries: 3, MaxSamples: 25})
	for i := range 3 {
		f.write(t, "team-a", samples(1000, 1000, 10, 0), "__name__", "m", "i", fmt.Sprint(i))
	}
	f.write(t, "team-b", samples(1000, 1000, 1, 0), "__name__", "m", "i", "0")

	// Within both limits.
	res, err := f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "m"), eq("i", "0")}})
	require.NoError(t, err)
	require.Len(t, res, 2)

	// 30 samples over 25.
	_, err = f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "m"), eq("tenant_id", "team-a")}})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "more than 25 samples")

	// 4 series over 3 (no samples read with skip_chunks).
	_, err = f.series(t, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "m")}, SkipChunks: true})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "more than 3 series")
	require.Equal(t, 2.0, testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("Series", "limit")))

	_, err = New(Config{MaxSeries: -1}, f.mgr, nil, prometheus.NewRegistry())
	require.Error(t, err)
}

func TestSeriesCancelled(t *testing.T) {
	f := newFixture(t, Config{})
	for i := range 2000 {
		f.write(t, "team-a", samples(1000, 1000, 5, 0), "__name__", "m", "i", fmt.Sprint(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := f.store.Series(ctx, &storepb.SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "m")}})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err)
	cancel()
	for err == nil {
		_, err = stream.Recv()
	}
	require.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	// The server stops reading and counts the request as cancelled (or, if it had already sent
	// everything into the transport, as a success).
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("Series", "canceled"))+
			testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("Series", "success")) == 1
	}, 10*time.Second, 10*time.Millisecond)
}

func TestLabelNamesAndValues(t *testing.T) {
	f := newFixture(t, Config{})
	f.write(t, "team-a", []sample{{T: 1000, V: 1}}, "__name__", "up", "job", "a", "instance", "x")
	f.write(t, "team-b", []sample{{T: 1000, V: 1}}, "__name__", "up", "job", "b", "zone", "z")
	f.write(t, "team-b", []sample{{T: 1000, V: 1}}, "__name__", "down", "job", "c")
	ctx := context.Background()
	all := &storepb.LabelNamesRequest{Start: 0, End: math.MaxInt64}

	names, err := f.store.LabelNames(ctx, all)
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "instance", "job", "replica", "tenant_id", "zone"}, names.Names)

	names, err = f.store.LabelNames(ctx, &storepb.LabelNamesRequest{Start: 0, End: math.MaxInt64,
		Matchers: []*storepb.LabelMatcher{eq("tenant_id", "team-a")}, WithoutReplicaLabels: []string{"replica"}})
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "instance", "job", "tenant_id"}, names.Names)

	names, err = f.store.LabelNames(ctx, &storepb.LabelNamesRequest{Start: 0, End: math.MaxInt64, Matchers: []*storepb.LabelMatcher{eq("__name__", "down")}})
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "job", "replica", "tenant_id"}, names.Names)

	names, err = f.store.LabelNames(ctx, &storepb.LabelNamesRequest{Start: 5000, End: 6000})
	require.NoError(t, err)
	require.Empty(t, names.Names, "no data in that time range")

	values := func(req *storepb.LabelValuesRequest) []string {
		t.Helper()
		req.End = math.MaxInt64
		resp, err := f.store.LabelValues(ctx, req)
		require.NoError(t, err)
		return resp.Values
	}
	require.Equal(t, []string{"a", "b", "c"}, values(&storepb.LabelValuesRequest{Label: "job"}))
	require.Equal(t, []string{"a", "b"}, values(&storepb.LabelValuesRequest{Label: "job", Matchers: []*storepb.LabelMatcher{eq("__name__", "up")}}))
	require.Equal(t, []string{"c"}, values(&storepb.LabelValuesRequest{Label: "job", Matchers: []*storepb.LabelMatcher{eq("tenant_id", "team-b"), eq("__name__", "down")}}))
	require.Equal(t, []string{"team-a", "team-b"}, values(&storepb.LabelValuesRequest{Label: "tenant_id"}))
	require.Equal(t, []string{"team-b"}, values(&storepb.LabelValuesRequest{Label: "tenant_id", Matchers: []*storepb.LabelMatcher{eq("job", "c")}}))
	require.Equal(t, []string{"r1"}, values(&storepb.LabelValuesRequest{Label: "replica"}))
	require.Empty(t, values(&storepb.LabelValuesRequest{Label: "replica", WithoutReplicaLabels: []string{"replica"}}))
	require.Equal(t, []string{"a"}, values(&storepb.LabelValuesRequest{Label: "job", Limit: 1}))

	_, err = f.store.LabelValues(ctx, &storepb.LabelValuesRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestInfo(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	info, err := f.info.Info(ctx, &storepb.InfoRequest{})
	require.NoError(t, err)
	require.Equal(t, "receive", info.ComponentType)
	require.Empty(t, info.LabelSets)
	require.Equal(t, int64(math.MinInt64), info.Store.MinTime)
	require.Equal(t, int64(math.MaxInt64), info.Store.MaxTime)

	f.write(t, "team-b", []sample{{T: 5000, V: 1}}, "__name__", "m")
	f.write(t, "team-a", []sample{{T: 3000, V: 1}}, "__name__", "m")
	info, err = f.info.Info(ctx, &storepb.InfoRequest{})
	require.NoError(t, err)
	var sets []string
	for _, s := range info.LabelSets {
		sets = append(sets, pbLabels(s.Labels).String())
	}
	require.Equal(t, []string{`{replica="r1", tenant_id="team-a"}`, `{replica="r1", tenant_id="team-b"}`}, sets)
	require.Equal(t, int64(3000), info.Store.MinTime)
	require.Equal(t, int64(math.MaxInt64), info.Store.MaxTime)
	require.True(t, info.Store.SupportsWithoutReplicaLabels)
	require.False(t, info.Store.SupportsSharding)
	require.Len(t, info.Store.TsdbInfos, 2)
	require.NotNil(t, info.MetricMetadata, "the metadata API is announced")
	require.Equal(t, `{replica="r1", tenant_id="team-b"}`, pbLabels(info.Store.TsdbInfos[1].Labels.Labels).String())
	require.Equal(t, int64(5000), info.Store.TsdbInfos[1].MinTime)

	// Not ready: Info fails, so Thanos Query leaves the store out.
	notReady, err := New(Config{}, f.mgr, func() bool { return false }, prometheus.NewRegistry())
	require.NoError(t, err)
	_, err = notReady.Info(ctx, &storepb.InfoRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err))
}
