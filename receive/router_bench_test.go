package receive

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/write"
)

// nopForwarder acks everything, after the payload work a PeerWriter does: with compress set it
// compresses a payload that is not (the client's compressed body goes as it is), without it
// decompresses one that is.
type nopForwarder struct{ compress bool }

func (f nopForwarder) Forward(_ context.Context, _ string, s Share) (write.Stats, error) {
	switch {
	case f.compress && !s.Compressed:
		putBuffer(compress(s.Payload))
	case !f.compress && s.Compressed:
		buf, err := decompress(s.Payload)
		if err != nil {
			return write.Stats{}, err
		}
		putBuffer(buf)
	}
	return write.Stats{}, nil
}

// benchRouter returns a router without local endpoint over endpoints ketama endpoints.
func benchRouter(b testing.TB, rf, endpoints int, fwd Forwarder) *Router {
	var eps []hashring.Endpoint
	for i := range endpoints {
		eps = append(eps, hashring.Endpoint{Address: "ingester-" + strconv.Itoa(i) + ":10901"})
	}
	ring, err := hashring.NewKetama(eps, hashring.DefaultKetamaPoints, rf)
	require.NoError(b, err)
	r, err := NewRouter(RouterConfig{ReplicationFactor: rf, ForwardTimeout: time.Minute},
		func(string) (hashring.Ring, error) { return ring, nil }, nil, fwd, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(b, err)
	b.Cleanup(r.Close)
	return r
}

// loop runs write b.N times and reports client samples/s, allocations per sample and the CPU time
// of the process per sample (user and system, every thread: the forwards' goroutines and the GC
// included). On a shared machine the CPU time is the steadier figure: waiting for a core is not
// counted.
func loop(b *testing.B, series int, write func() error) {
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	cpu0 := cpuTime(b)
	for b.Loop() {
		if err := write(); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime(b) - cpu0
	runtime.ReadMemStats(&ms)
	samples := float64(b.N) * float64(series)
	b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(ms.Mallocs-mallocs)/samples, "allocs/sample")
	b.ReportMetric(float64(cpu.Nanoseconds())/samples, "cpu-ns/sample")
}

// cpuTime is the CPU time the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var routerCases = []struct{ rf, endpoints int }{{1, 1}, {3, 3}, {3, 6}}

// BenchmarkRouterSplit: the router's own work for one validated request: ring lookup, hash, owners,
// grouping and per destination its payload (the series' fields copied in) and the fan-out, with
// forwarders that return at once and do not compress. frames=false marshals every series again
// (a Batch without Frames), frames=true copies the series' original bytes (Batch.Frames, what the
// handler uses). samples/s counts client samples (not replicas).
func BenchmarkRouterSplit(b *testing.B) {
	for _, bc := range routerCases {
		for _, frames := range []bool{false, true} {
			b.Run(fmt.Sprintf("series=%d/rf=%d/endpoints=%d/frames=%t", benchSeries, bc.rf, bc.endpoints, frames), func(b *testing.B) {
				r := benchRouter(b, bc.rf, bc.endpoints, nopForwarder{})
				raw := encodeWR(b, benchWriteRequest(benchSeries))
				req, err := DecodeBytes(raw, 64<<20)
				require.NoError(b, err)
				defer req.Release()
				series, _, err := benchLimits.validateRequest(req, benchNow)
				require.NoError(b, err)
				fr := req.Frames()
				if !frames {
					fr = SeriesFrames{}
				}
				ctx := context.Background()
				loop(b, benchSeries, func() error {
					_, err := r.Write(ctx, Batch{Tenant: "team-a", Series: series, Frames: fr})
					return err
				})
			})
		}
	}
}

// BenchmarkRouterPath: what a router node spends on one client request before the network, as
// DESIGN §4's router target counts it: decode (snappy + protobuf), validate, hash, split and encode
// every destination's payload, compressed (the default) or not (compression=none).
func BenchmarkRouterPath(b *testing.B) {
	for _, bc := range routerCases {
		for _, compress := range []bool{true, false} {
			name := map[bool]string{true: CompressionSnappy, false: CompressionNone}[compress]
			b.Run(fmt.Sprintf("series=%d/rf=%d/endpoints=%d/compression=%s", benchSeries, bc.rf, bc.endpoints, name), func(b *testing.B) {
				r := benchRouter(b, bc.rf, bc.endpoints, nopForwarder{compress: compress})
				raw := encodeWR(b, benchWriteRequest(benchSeries))
				ctx := context.Background()
				b.SetBytes(int64(len(raw)))
				loop(b, benchSeries, func() error {
					req, err := DecodeBytes(raw, 64<<20)
					if err != nil {
						return err
					}
					defer req.Release()
					series, _, err := benchLimits.validateRequest(req, benchNow)
					if err != nil {
						return err
					}
					_, err = r.Write(ctx, Batch{Tenant: "team-a", Series: series, Frames: req.Frames()})
					return err
				})
			})
		}
	}
}
