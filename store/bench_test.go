package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-metrics/weir/store/storepb"
	"github.com/weir-metrics/weir/tenant"
)

// BenchmarkSeries: one StoreAPI Series call selecting 10,000 series × 2 h of head data (a sample every
// 15 s: 480 per series, 4.8M in all, in four 120-sample XOR chunks per series), through a gRPC client
// on loopback, the whole stream received. Sub-benchmarks: with chunks (what Thanos Query asks for a
// PromQL query) and with skip_chunks (series and label lookups).
func BenchmarkSeries(b *testing.B) {
	const (
		numSeries = 10_000
		interval  = 15_000 // ms
		span      = 2 * time.Hour
		points    = int(span / time.Millisecond / interval)
	)
	reg := prometheus.NewRegistry()
	mgr, err := tenant.NewManager(tenant.Config{
		Dir:             b.TempDir(),
		Retention:       24 * time.Hour,
		LabelName:       "tenant_id",
		ExternalLabels:  labels.FromStrings("replica", "r1"),
		OpenConcurrency: 1,
	}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, mgr.Close()) })

	// One write per scrape: every series gets one sample, as Prometheus' remote write sends them.
	end := time.Now().Truncate(time.Second).UnixMilli()
	start := end - int64(points-1)*interval
	batch := make([]prompb.TimeSeries, numSeries)
	for i := range batch {
		batch[i].Labels = []prompb.Label{
			{Name: "__name__", Value: "bench_metric"},
			{Name: "instance", Value: fmt.Sprintf("host-%03d:9100", i/100)},
			{Name: "job", Value: "node"},
			{Name: "series", Value: fmt.Sprintf("%05d", i)},
		}
		batch[i].Samples = make([]prompb.Sample, 1)
	}
	for k := range points {
		for i := range batch {
			batch[i].Samples[0] = prompb.Sample{Timestamp: start + int64(k)*interval, Value: float64(k*numSeries + i)}
		}
		st, err := mgr.Write(context.Background(), "team-a", batch, nil, nil)
		require.NoError(b, err)
		require.Empty(b, st.Rejected)
	}

	srv, err := New(Config{}, mgr, nil, reg)
	require.NoError(b, err)
	g := grpc.NewServer()
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	served := make(chan struct{})
	go func() { defer close(served); _ = g.Serve(ln) }()
	b.Cleanup(func() { g.Stop(); <-served })
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close() })
	client := storepb.NewStoreClient(conn)

	for _, skipChunks := range []bool{false, true} {
		name := "chunks"
		if skipChunks {
			name = "skip_chunks"
		}
		b.Run(name, func(b *testing.B) {
			req := &storepb.SeriesRequest{
				MinTime:    start,
				MaxTime:    end,
				SkipChunks: skipChunks,
				Matchers:   []*storepb.LabelMatcher{{Type: storepb.LabelMatcher_EQ, Name: "__name__", Value: "bench_metric"}},
			}
			b.ReportAllocs()
			var calls, series, samples int64
			for b.Loop() {
				s, n, err := drainSeries(client, req)
				if err != nil {
					b.Fatal(err)
				}
				if s != numSeries || (!skipChunks && n != int64(numSeries*points)) {
					b.Fatalf("read %d series, %d samples; want %d series, %d samples", s, n, numSeries, numSeries*points)
				}
				calls++
				series += s
				samples += n
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(series)/sec, "series/s")
			if !skipChunks {
				b.ReportMetric(float64(samples)/sec, "samples/s")
			}
		})
	}
}

// drainSeries receives a whole Series stream and counts its series (frames of one series are
// consecutive) and the samples in its chunks (from the XOR chunk header, without decoding).
func drainSeries(client storepb.StoreClient, req *storepb.SeriesRequest) (series, samples int64, err error) {
	stream, err := client.Series(context.Background(), req)
	if err != nil {
		return 0, 0, err
	}
	var prev []*storepb.Label
	count := func(s *storepb.Series) error {
		if !sameLabels(prev, s.Labels) {
			series++
			prev = s.Labels
		}
		for _, c := range s.Chunks {
			chk, err := chunkenc.FromData(chunkenc.EncXOR, c.Raw.Data)
			if err != nil {
				return err
			}
			samples += int64(chk.NumSamples())
		}
		return nil
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return series, samples, nil
		}
		if err != nil {
			return series, samples, err
		}
		if s := resp.GetSeries(); s != nil {
			if err := count(s); err != nil {
				return series, samples, err
			}
		} else if bt := resp.GetBatch(); bt != nil {
			for _, s := range bt.Series {
				if err := count(s); err != nil {
					return series, samples, err
				}
			}
		}
	}
}

func sameLabels(a, b []*storepb.Label) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Value != b[i].Value {
			return false
		}
	}
	return true
}
