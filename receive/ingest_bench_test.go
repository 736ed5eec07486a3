package receive

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/write"
)

// tsWidth is the width of the varint timestamps of the ingest benchmark's payload: every millisecond
// timestamp of this century takes six bytes, so they can be rewritten in place.
const tsWidth = 6

// stepPayload is a router's share for one ingester (a protobuf WriteRequest of one-sample series)
// whose samples can be moved forward in place, so that a benchmark sends ever newer samples
// without marshalling the request again.
type stepPayload struct {
	b    []byte
	ends []int // per series: the end of its field, where its timestamp's varint ends
}

// newStepPayload encodes the benchmark request as the router forwards it, noting where each
// series' timestamp is. Each series has one sample (value non-zero, so that it is encoded) and
// nothing after it, so its field ends with the sample's value (fixed64) and timestamp (varint).
func newStepPayload(tb testing.TB, series int, t int64) *stepPayload {
	wr := benchWriteRequest(series)
	p := &stepPayload{}
	for i := range wr.Timeseries {
		wr.Timeseries[i].Samples[0] = prompb.Sample{Value: 1, Timestamp: t}
		var err error
		p.b, err = appendSeries(p.b, &wr.Timeseries[i])
		require.NoError(tb, err)
		p.ends = append(p.ends, len(p.b))
	}
	return p
}

// set stamps every sample with t and value v.
func (p *stepPayload) set(t int64, v float64) {
	for _, end := range p.ends {
		ts := p.b[end-tsWidth : end]
		u := uint64(t)
		for k := range tsWidth - 1 {
			ts[k] = byte(u) | 0x80
			u >>= 7
		}
		ts[tsWidth-1] = byte(u)
		// Before the timestamp: its key (one byte), and before that the value's eight bytes.
		binary.LittleEndian.PutUint64(p.b[end-tsWidth-9:end-tsWidth-1], math.Float64bits(v))
	}
}

// BenchmarkIngest: the replica path of a ring, one 2,000-series share per iteration: a PeerWriter
// (compressing as configured) sends it with its series' hashes, as a router does, over loopback gRPC to a real IngestServer, which decodes it
// and writes it to a real tenant TSDB (in b.TempDir()) through the series-reference cache. Every
// iteration's samples are 100 ms newer than the last. cpu-ns/sample is the process' CPU time (both
// ends of the connection and the TSDB) per sample.
func BenchmarkIngest(b *testing.B) {
	for _, compression := range []string{CompressionSnappy, CompressionNone} {
		b.Run("series=2000/compression="+compression, func(b *testing.B) {
			m, err := tenant.NewManager(tenant.Config{
				Dir: b.TempDir(), Retention: 24 * time.Hour, LabelName: "tenant_id", OpenConcurrency: 1,
			}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.NoError(b, err)
			b.Cleanup(func() { require.NoError(b, m.Close()) })
			addr := serveIngest(b, m)
			peers, err := NewPeerWriter(PeerConfig{Compression: compression}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.NoError(b, err)
			b.Cleanup(func() { _ = peers.Close() })

			t := time.Now().UnixMilli()
			p := newStepPayload(b, benchSeries, t)
			var hashes []uint64 // as the router sends them
			for _, ts := range benchWriteRequest(benchSeries).Timeseries {
				hashes = append(hashes, hashring.SeriesHash("team-a", ts.Labels))
			}
			ctx := context.Background()
			write := func() error {
				t += 100
				p.set(t, float64(t))
				st, err := peers.Forward(ctx, addr, Share{Tenant: "team-a", Payload: p.b, Hashes: hashes})
				if err == nil && (st.Appended[write.KindFloat] != benchSeries || len(st.Rejected) > 0) {
					b.Fatalf("stats %+v", st)
				}
				return err
			}
			require.NoError(b, write()) // creates the tenant and its series
			require.NoError(b, write()) // fills the series-reference cache
			loop(b, benchSeries, write)
		})
	}
}

// serveIngest serves the ingest service over storage on a loopback port until the benchmark ends.
func serveIngest(b *testing.B, storage TenantStorage) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	opts, err := IngestConfig{}.ServerOptions(nil, nil)
	require.NoError(b, err)
	srv := grpc.NewServer(opts...)
	is, err := NewIngestServer(IngestConfig{}, storage, nil, func() bool { return true }, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(b, err)
	is.Register(srv)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	return lis.Addr().String()
}
