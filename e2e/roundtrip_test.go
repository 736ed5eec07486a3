package e2e

import (
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestRoundTrip: one weir node (default tenant header, an external label) on loopback. Samples for
// team-a (on /api/v1/receive), team-b (on the /api/v1/write alias) and a request without tenant header
// (→ default-tenant) are acknowledged with 204, as are native histograms (integer and float) and an
// exemplar (exemplar storage is off by default: dropped, counted, never failing the request); after a
// clean stop each tenant directory holds exactly its own series — exact labels, timestamps, values and
// histograms, and neither the tenant label nor the external label inside the series.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startWeir(t, dir, `--label=replica="r1"`)
	t0 := baseTime()

	teamA := writeReq(
		series(lbls("__name__", "http_requests_total", "job", "api", "code", "200"), smp(t0, 1), smp(t0+1000, 2), smp(t0+2000, 3.5)),
		// Labels out of order and an empty value: the node sorts the labels and drops the empty one.
		series(lbls("job", "api", "__name__", "http_requests_total", "code", "500", "empty", ""), smp(t0, 0), smp(t0+1000, -1e-9)),
	)
	teamB := writeReq(
		series(lbls("__name__", "queue_depth", "queue", "q1"), smp(t0+500, 42)),
		series(lbls("__name__", "http_requests_total", "job", "api", "code", "200"), smp(t0, 100)), // same labels as team-a's: kept apart
	)
	noTenant := writeReq(
		series(lbls("__name__", "up", "job", "node", "instance", "host:9100"), smp(t0, 1), smp(t0+15000, 0)),
	)
	h1 := &histogram.Histogram{Count: 5, ZeroCount: 1, ZeroThreshold: 0.001, Sum: 12.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0}} // buckets 2, 2
	h2 := &histogram.Histogram{Count: 9, ZeroCount: 2, ZeroThreshold: 0.001, Sum: 20,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{3, 1}} // buckets 3, 4
	fh := &histogram.FloatHistogram{Count: 3.5, ZeroCount: 0.5, ZeroThreshold: 0.001, Sum: 7.25, Schema: 1,
		PositiveSpans: []histogram.Span{{Offset: -1, Length: 2}}, PositiveBuckets: []float64{1, 2}}
	withExtras := writeReq(
		prompb.TimeSeries{
			Labels:     []prompb.Label{{Name: "__name__", Value: "rpc_duration_seconds"}, {Name: "job", Value: "api"}},
			Histograms: []prompb.Histogram{prompb.FromIntHistogram(t0, h1), prompb.FromIntHistogram(t0+1000, h2)},
		},
		prompb.TimeSeries{
			Labels:     []prompb.Label{{Name: "__name__", Value: "rpc_size_bytes"}, {Name: "job", Value: "api"}},
			Histograms: []prompb.Histogram{prompb.FromFloatHistogram(t0, fh)},
		},
		prompb.TimeSeries{
			Labels:    []prompb.Label{{Name: "__name__", Value: "with_exemplar"}},
			Samples:   []prompb.Sample{{Timestamp: t0, Value: 3}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 3, Timestamp: t0}},
		},
	)

	r := n.Write(t, teamA, "THANOS-TENANT", "team-a")
	require.Equal(t, http.StatusNoContent, r.Code, "team-a: %s", r)
	require.Empty(t, r.Body)
	r = n.Post(t, "http://"+n.RemoteWriteAddr+"/api/v1/write", encodeWrite(t, teamB), rwHeaders("THANOS-TENANT", "team-b"))
	require.Equal(t, http.StatusNoContent, r.Code, "team-b via /api/v1/write: %s", r)
	r = n.Write(t, noTenant)
	require.Equal(t, http.StatusNoContent, r.Code, "no tenant header: %s", r)
	r = n.Write(t, withExtras, "THANOS-TENANT", "team-a")
	require.Equal(t, http.StatusNoContent, r.Code, "histograms and an exemplar: %s", r)
	// A bare body without Content-Encoding and Content-Type (old senders) is Remote Write 1.0 too.
	r = n.Post(t, n.RemoteWriteURL, encodeWrite(t, writeReq(series(lbls("__name__", "bare"), smp(t0, 7)))), http.Header{"Thanos-Tenant": {"team-b"}})
	require.Equal(t, http.StatusNoContent, r.Code, "request without content headers: %s", r)

	for tenant, want := range map[string]float64{"team-a": 6, "team-b": 3, "default-tenant": 2} {
		v, ok := n.Metric(t, "weir_receive_appended_total", "tenant", tenant, "kind", "sample")
		require.True(t, ok, "weir_receive_appended_total for %s", tenant)
		require.Equal(t, want, v, "weir_receive_appended_total for %s", tenant)
	}
	v, _ := n.Metric(t, "weir_receive_appended_total", "tenant", "team-a", "kind", "histogram")
	require.Equal(t, 3.0, v, "histograms appended for team-a")
	v, _ = n.Metric(t, "weir_receive_rejected_total", "tenant", "team-a", "kind", "exemplar")
	require.Equal(t, 1.0, v, "exemplars dropped for team-a (exemplar storage off)")
	v, _ = n.Metric(t, "weir_receive_rejected_total", "kind", "sample")
	require.Zero(t, v, "samples rejected")
	n.Stop()

	require.Equal(t, []string{"default-tenant", "team-a", "team-b"}, tenantDirs(t, dir))
	require.Equal(t, map[string][]sample{
		key("__name__", "http_requests_total", "code", "200", "job", "api"): {{T: t0, V: 1}, {T: t0 + 1000, V: 2}, {T: t0 + 2000, V: 3.5}},
		key("__name__", "http_requests_total", "code", "500", "job", "api"): {{T: t0, V: 0}, {T: t0 + 1000, V: -1e-9}},
		key("__name__", "rpc_duration_seconds", "job", "api"):               {intHist(t0, h1), intHist(t0+1000, h2)},
		key("__name__", "rpc_size_bytes", "job", "api"):                     {floatHist(t0, fh)},
		key("__name__", "with_exemplar"):                                    {{T: t0, V: 3}},
	}, readTenant(t, dir, "team-a"))
	require.Equal(t, map[string][]sample{
		key("__name__", "queue_depth", "queue", "q1"):                       {{T: t0 + 500, V: 42}},
		key("__name__", "http_requests_total", "code", "200", "job", "api"): {{T: t0, V: 100}},
		key("__name__", "bare"):                                             {{T: t0, V: 7}},
	}, readTenant(t, dir, "team-b"))
	require.Equal(t, map[string][]sample{
		key("__name__", "up", "instance", "host:9100", "job", "node"): {{T: t0, V: 1}, {T: t0 + 15000, V: 0}},
	}, readTenant(t, dir, "default-tenant"))
	// (The exact maps above already exclude tenant_id and replica labels; say so explicitly too.)
	for _, tenant := range []string{"team-a", "team-b", "default-tenant"} {
		for k := range readTenant(t, dir, tenant) {
			require.NotContains(t, k, "tenant_id", "tenant label stored inside a series of %s", tenant)
			require.NotContains(t, k, "replica", "external label stored inside a series of %s", tenant)
		}
	}
}

// TestRoundTripCustomTenantHeader: one node with --receive.tenant-header=X-Scope-OrgID and
// --receive.default-tenant-id=anonymous. X-Scope-OrgID names the tenant; THANOS-TENANT is then just
// another header, so that request lands in the configured default tenant.
func TestRoundTripCustomTenantHeader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startWeir(t, dir, "--receive.tenant-header=X-Scope-OrgID", "--receive.default-tenant-id=anonymous")
	t0 := baseTime()

	r := n.Write(t, writeReq(series(lbls("__name__", "m", "from", "org"), smp(t0, 1))), "X-Scope-OrgID", "org-1")
	require.Equal(t, http.StatusNoContent, r.Code, "%s", r)
	r = n.Write(t, writeReq(series(lbls("__name__", "m", "from", "thanos-header"), smp(t0, 2))), "THANOS-TENANT", "team-a")
	require.Equal(t, http.StatusNoContent, r.Code, "%s", r)
	r = n.Write(t, writeReq(series(lbls("__name__", "m", "from", "bad-org"), smp(t0, 3))), "X-Scope-OrgID", "../org")
	require.Equal(t, http.StatusBadRequest, r.Code, "invalid ID in the custom header: %s", r)
	n.Stop()

	require.Equal(t, []string{"anonymous", "org-1"}, tenantDirs(t, dir))
	require.Equal(t, map[string][]sample{key("__name__", "m", "from", "org"): {{T: t0, V: 1}}}, readTenant(t, dir, "org-1"))
	require.Equal(t, map[string][]sample{key("__name__", "m", "from", "thanos-header"): {{T: t0, V: 2}}}, readTenant(t, dir, "anonymous"))
}
