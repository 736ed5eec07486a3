package receive

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/tenant"
)

// nopForwarder acks everything without looking at it.
type nopForwarder struct{}

func (nopForwarder) Forward(context.Context, string, string, []byte) (tenant.WriteStats, error) {
	return tenant.WriteStats{}, nil
}

// BenchmarkRouterSplit: the router's own work for one request: ring lookup, hash, owners, grouping,
// one marshal per series, and per destination the copy and snappy compression of its payload and
// the fan-out, with forwarders that return at once. The request is validated already (the handler's
// job, see BenchmarkHandler). samples/s counts client samples (not replicas).
func BenchmarkRouterSplit(b *testing.B) {
	for _, bc := range []struct{ series, rf, endpoints int }{
		{benchSeries, 1, 1},
		{benchSeries, 3, 3},
		{benchSeries, 3, 6},
	} {
		name := fmt.Sprintf("series=%d/rf=%d/endpoints=%d", bc.series, bc.rf, bc.endpoints)
		b.Run(name, func(b *testing.B) {
			var eps []hashring.Endpoint
			for i := range bc.endpoints {
				eps = append(eps, hashring.Endpoint{Address: "ingester-" + strconv.Itoa(i) + ":10901"})
			}
			ring, err := hashring.NewKetama(eps, hashring.DefaultKetamaPoints, bc.rf)
			require.NoError(b, err)
			r, err := NewRouter(RouterConfig{ReplicationFactor: bc.rf, ForwardTimeout: time.Minute},
				func(string) (hashring.Ring, error) { return ring, nil }, nil, nopForwarder{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.NoError(b, err)
			defer r.Close()
			series := benchWriteRequest(bc.series).Timeseries
			raw := marshalWR(b, benchWriteRequest(bc.series))
			ctx := context.Background()

			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mallocs := ms.Mallocs
			for b.Loop() {
				if _, err := r.Write(ctx, "team-a", series); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&ms)
			samples := float64(b.N) * float64(bc.series)
			b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(ms.Mallocs-mallocs)/samples, "allocs/sample")
		})
	}
}
