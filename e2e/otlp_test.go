package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestOTLPRingReadByThanosQuery: OpenTelemetry SDKs export OTLP/HTTP metrics to a Weir ring, and
// Thanos Query reads them back with the names and labels Prometheus' translator gives them.
//
//	OTel SDK (tenant team-a) ──OTLP /api/v1/otlp/v1/metrics──▶ node 0 ─┐
//	OTel SDK (tenant team-b, gzip) ──OTLP /api/v1/otlp──────▶ node 1 ─┤ RF=3, every node a copy
//	                                                                    └─▶ StoreAPI ×3 ◀── thanos query
//
// Each SDK records a counter, a gauge, an explicit-bucket and an exponential histogram under a
// resource with service.name, service.namespace, service.instance.id and two more attributes, one of
// them promoted (--receive.otlp-promote-resource-attributes). Asserted through Thanos Query, with
// deduplication: each tenant's series have the translated names (_total, unit suffixes, classic
// _bucket/_sum/_count, a native histogram for the exponential one), job and instance from the
// resource, the promoted attribute as a label, and target_info with the other attribute; the values
// are the recorded ones; Thanos Query's metadata API lists each family's type, unit and help; a sum's
// start time sent to a third node is a zero point before its value; without deduplication every
// series has three replicas.
func TestOTLPRingReadByThanosQuery(t *testing.T) {
	t.Parallel()
	thanos := testutil.RequireTool(t, "WEIR_THANOS", "bin/thanos", "make tools")

	grpcAddrs := testutil.LoopbackAddrs(t, 3)
	file := filepath.Join(t.TempDir(), "hashrings.json")
	writeHashrings(t, file, grpcAddrs...)
	nodes := make([]*weirNode, 3)
	for i, addr := range grpcAddrs {
		nodes[i] = startWeir(t, t.TempDir(), routerArgs(file, 3, "ketama",
			"--grpc-address="+addr, "--receive.local-endpoint="+addr, `--label=replica="r`+strconv.Itoa(i+1)+`"`,
			"--receive.otlp-promote-resource-attributes=k8s.cluster.name")...)
	}

	senders := []struct {
		tenant, path string
		node         *weirNode
		gzip         bool
		scale        int64 // makes each tenant's values its own
	}{
		{"team-a", "/api/v1/otlp/v1/metrics", nodes[0], false, 1},
		{"team-b", "/api/v1/otlp", nodes[1], true, 10},
	}
	for _, s := range senders {
		mp := otlpMeterProvider(t, "http://"+s.node.RemoteWriteAddr+s.path, s.tenant, s.gzip)
		recordOTLP(t, mp, s.scale)
		// ForceFlush exports and fails unless the exporter got a 2xx without rejected points.
		require.NoError(t, mp.ForceFlush(context.Background()), "tenant %s", s.tenant)
	}

	queryAddrs := testutil.LoopbackAddrs(t, 2)
	args := []string{"query", "--query.replica-label=replica", "--grpc-address=" + queryAddrs[0], "--http-address=" + queryAddrs[1]}
	for _, addr := range grpcAddrs {
		args = append(args, "--endpoint="+addr)
	}
	startTool(t, "thanos-query", thanos, args...)
	base := "http://" + queryAddrs[1]
	client := nodes[0].client

	want := map[string]string{} // series (labels without replica) → value, both tenants
	for _, s := range senders {
		// sel is the key thanosInstantQuery gives a series: its name and sorted labels, with the
		// resource's job, instance and promoted attribute and the tenant's label.
		sel := func(name string, kv ...string) string {
			ls := map[string]string{"job": "shop/checkout", "instance": "pod-1", "k8s_cluster_name": "eu1", "tenant_id": s.tenant}
			for i := 0; i < len(kv); i += 2 {
				ls[kv[i]] = kv[i+1]
			}
			return seriesKey(name, ls)
		}
		v := func(x float64) string { return strconv.FormatFloat(x*float64(s.scale), 'f', -1, 64) }
		want[sel("http_requests_total", "code", "200")] = v(3)
		want[sel("temperature_celsius", "room", "a")] = v(21.5)
		want[sel("request_duration_seconds_bucket", "le", "0.5")] = "1"
		want[sel("request_duration_seconds_bucket", "le", "+Inf")] = "2"
		want[sel("request_duration_seconds_count")] = "2"
		want["histogram_count"+sel("")] = "3"
		want["histogram_sum"+sel("")] = v(1600)
		want[sel("target_info", "host_arch", "amd64")] = "1"
	}
	queries := []string{
		`http_requests_total`, `temperature_celsius`, `request_duration_seconds_bucket{le=~"0.5|\\+Inf"}`,
		`request_duration_seconds_count`, `histogram_count(payload_size_bytes)`, `histogram_sum(payload_size_bytes)`, `target_info`,
	}
	waitFor(t, 60*time.Second, "every OTLP series of both tenants through Thanos Query", func() error {
		got := map[string]string{}
		for _, q := range queries {
			res, err := thanosInstantQuery(client, base, q, true)
			if err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			for k, v := range res {
				if fn, _, ok := strings.Cut(q, "("); ok {
					k = fn + k // a function's result has no name: the key says which
				}
				got[k] = v
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("got\n%v\nwant\n%v", got, want)
		}
		return nil
	})

	// What Remote Write 1.0 cannot carry crosses the ring too: the metadata of the families, through
	// Thanos Query's metadata API (Weir's StoreAPI serves the metadata the writes carried) …
	for metric, want := range map[string]metricMetadata{
		"http_requests_total":      {Type: "counter", Help: "Requests served."},
		"temperature_celsius":      {Type: "gauge", Unit: "celsius"},
		"request_duration_seconds": {Type: "histogram", Unit: "seconds"},
		"payload_size_bytes":       {Type: "histogram", Unit: "bytes"},
	} {
		waitFor(t, 30*time.Second, "the metadata of "+metric+" through Thanos Query", func() error {
			got, err := thanosMetadata(client, base, metric)
			if err != nil {
				return err
			}
			if !slices.Equal(got, []metricMetadata{want}) {
				return fmt.Errorf("metadata of %s: %+v, want %+v", metric, got, want)
			}
			return nil
		})
	}
	// … and start timestamps: a sum's start time is a zero point before its first value.
	now := time.Now().Truncate(time.Second)
	start := now.Add(-time.Minute)
	resp := nodes[2].Post(t, "http://"+nodes[2].RemoteWriteAddr+"/api/v1/otlp", bytes.NewReader(otlpSumJSON(t, start, now)),
		http.Header{"Content-Type": {"application/json"}, "THANOS-TENANT": {"team-a"}})
	require.Equal(t, http.StatusOK, resp.Code, resp.String())
	for at, want := range map[time.Time]string{start: "0", now: "10"} {
		waitFor(t, 30*time.Second, "the cumulative sum at "+at.String()+" through Thanos Query", func() error {
			got, err := thanosInstantQueryAt(client, base, `jobs_done_total{tenant_id="team-a"}`, at, true)
			if err != nil {
				return err
			}
			if k := `jobs_done_total{job="api", tenant_id="team-a"}`; len(got) != 1 || got[k] != want {
				return fmt.Errorf("got %v, want %s=%s", got, k, want)
			}
			return nil
		})
	}

	// Every node holds a copy of every series: three replicas each without deduplication.
	res, err := thanosInstantQuery(client, base, `count by (tenant_id, __name__) ({__name__=~"http_requests_total|payload_size_bytes|target_info"})`, false)
	require.NoError(t, err)
	require.Len(t, res, 6, "%v", res)
	for k, v := range res {
		require.Equal(t, "3", v, k)
	}
}

// thanosInstantQuery asks the query API at base for query now and returns each result's labels
// (without the replica label, which it refuses when dedup is set) and value.
func thanosInstantQuery(client *http.Client, base, query string, dedup bool) (map[string]string, error) {
	return thanosInstantQueryAt(client, base, query, time.Time{}, dedup)
}

// thanosInstantQueryAt is thanosInstantQuery at time at (zero: now).
func thanosInstantQueryAt(client *http.Client, base, query string, at time.Time, dedup bool) (map[string]string, error) {
	q := url.Values{"query": {query}, "dedup": {strconv.FormatBool(dedup)}}
	if !at.IsZero() {
		q.Set("time", seconds(at.UnixMilli()))
	}
	code, body, err := httpGet(client, base+"/api/v1/query?"+q.Encode())
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", code, body)
	}
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range r.Data.Result {
		if _, ok := s.Metric["replica"]; ok && dedup {
			return nil, fmt.Errorf("replica label not deduplicated away: %v", s.Metric)
		}
		k := seriesKey(s.Metric["__name__"], s.Metric)
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("series %v returned twice", s.Metric)
		}
		out[k] = s.Value[1].(string)
	}
	return out, nil
}

// seriesKey is name{labels} with the labels sorted, without __name__ and replica.
func seriesKey(name string, ls map[string]string) string {
	var pairs []string
	for k, v := range ls {
		if k != "__name__" && k != "replica" {
			pairs = append(pairs, k+"="+strconv.Quote(v))
		}
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ", ") + "}"
}

// otlpMeterProvider is an OpenTelemetry SDK meter provider that exports OTLP/HTTP to url for tenantID
// on ForceFlush (never on its own: its interval is an hour), exponential histograms for payload.size.
func otlpMeterProvider(t *testing.T, url, tenantID string, gzip bool) *sdkmetric.MeterProvider {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	opts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpointURL(url), otlpmetrichttp.WithHTTPClient(hc),
		otlpmetrichttp.WithHeaders(map[string]string{"THANOS-TENANT": tenantID}), otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false})}
	if gzip {
		opts = append(opts, otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
	}
	exp, err := otlpmetrichttp.New(context.Background(), opts...)
	require.NoError(t, err)
	res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("service.namespace", "shop"),
		attribute.String("service.instance.id", "pod-1"), attribute.String("k8s.cluster.name", "eu1"), attribute.String("host.arch", "amd64"))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "payload.size"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "request.duration"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: []float64{0.1, 0.5, 1}}})))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		hc.CloseIdleConnections()
	})
	return mp
}

// recordOTLP records a counter (3·scale), a gauge (21.5·scale), an explicit histogram (0.2, 0.7) and
// an exponential one (100, 500, 1000, times scale).
func recordOTLP(t *testing.T, mp *sdkmetric.MeterProvider, scale int64) {
	t.Helper()
	ctx := context.Background()
	m := mp.Meter("weir-e2e")
	c, err := m.Int64Counter("http.requests", metric.WithUnit("{request}"), metric.WithDescription("Requests served."))
	require.NoError(t, err)
	c.Add(ctx, 3*scale, metric.WithAttributes(attribute.String("code", "200")))
	g, err := m.Float64Gauge("temperature", metric.WithUnit("Cel"))
	require.NoError(t, err)
	g.Record(ctx, 21.5*float64(scale), metric.WithAttributes(attribute.String("room", "a")))
	h, err := m.Float64Histogram("request.duration", metric.WithUnit("s"))
	require.NoError(t, err)
	h.Record(ctx, 0.2)
	h.Record(ctx, 0.7)
	e, err := m.Int64Histogram("payload.size", metric.WithUnit("By"))
	require.NoError(t, err)
	for _, v := range []int64{100, 500, 1000} {
		e.Record(ctx, v*scale)
	}
}

// TestOTLPOneNodeStoresStartTimestamps: one node (the embedded default) takes an OTLP JSON request
// and stores a cumulative sum with its start time as a zero point before it (as Prometheus stores
// start timestamps), a gauge as it came; a delta sum in the same request is refused by name in
// partial_success while the rest is written; the weir_receive_* counters count the write.
func TestOTLPOneNodeStoresStartTimestamps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startWeir(t, dir)
	now := time.Now().Truncate(time.Millisecond)
	start := now.Add(-time.Minute)

	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "api")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	for _, temporality := range []pmetric.AggregationTemporality{pmetric.AggregationTemporalityCumulative, pmetric.AggregationTemporalityDelta} {
		m := ms.AppendEmpty()
		m.SetName("jobs.done." + strings.ToLower(temporality.String()))
		sum := m.SetEmptySum()
		sum.SetIsMonotonic(true)
		sum.SetAggregationTemporality(temporality)
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
		dp.SetIntValue(10)
	}
	g := ms.AppendEmpty()
	g.SetName("queue.depth")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.SetDoubleValue(7)
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	require.NoError(t, err)

	resp := n.Post(t, "http://"+n.RemoteWriteAddr+"/api/v1/otlp/v1/metrics", bytes.NewReader(body),
		http.Header{"Content-Type": {"application/json"}, "THANOS-TENANT": {"team-a"}})
	require.Equal(t, http.StatusOK, resp.Code, resp.String())
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	answer := pmetricotlp.NewExportResponse()
	require.NoError(t, answer.UnmarshalJSON([]byte(resp.Body)))
	require.Equal(t, int64(1), answer.PartialSuccess().RejectedDataPoints())
	require.Contains(t, answer.PartialSuccess().ErrorMessage(), `delta temporality refused (metrics "jobs.done.delta")`)
	v, ok := n.Metric(t, "weir_receive_appended_total", "tenant", "team-a", "kind", "sample")
	require.True(t, ok)
	require.Equal(t, 2.0, v, "the cumulative sum and the gauge (the start's zero point is storage's own)")

	n.Stop()
	got := readTenant(t, dir, "team-a")
	require.Equal(t, map[string][]sample{
		key("__name__", "jobs_done_cumulative_total", "job", "api"): {{T: start.UnixMilli(), V: 0}, {T: now.UnixMilli(), V: 10}},
		key("__name__", "queue_depth", "job", "api"):                {{T: now.UnixMilli(), V: 7}},
	}, got)
}

// thanosMetadata asks the query API at base for the metadata of metric.
func thanosMetadata(client *http.Client, base, metric string) ([]metricMetadata, error) {
	code, body, err := httpGet(client, base+"/api/v1/metadata?metric="+url.QueryEscape(metric))
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", code, body)
	}
	var r struct {
		Data map[string][]metricMetadata `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil, err
	}
	return r.Data[metric], nil
}

// otlpSumJSON is an OTLP JSON request of one cumulative sum, jobs.done of service api, 10 at t since
// start.
func otlpSumJSON(t *testing.T, start, at time.Time) []byte {
	t.Helper()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "api")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("jobs.done")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetIntValue(10)
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	require.NoError(t, err)
	return body
}

// TestOTLPSameSeriesAsThanosReceive: the same OpenTelemetry SDK metrics sent to Thanos Receive and to
// Weir become the same series with the same values, read through one Thanos Query over both (told
// apart by their receiver external label): a sender moving from Thanos to Weir keeps its names,
// labels and dashboards.
func TestOTLPSameSeriesAsThanosReceive(t *testing.T) {
	t.Parallel()
	thanos := testutil.RequireTool(t, "WEIR_THANOS", "bin/thanos", "make tools")
	promote := "--receive.otlp-promote-resource-attributes=k8s.cluster.name"

	ta := testutil.LoopbackAddrs(t, 3) // Thanos Receive: gRPC, HTTP, remote write
	startTool(t, "thanos-receive", thanos, "receive", "--tsdb.path="+t.TempDir(), "--grpc-address="+ta[0],
		"--http-address="+ta[1], "--remote-write.address="+ta[2], `--label=receiver="thanos"`, "--tsdb.enable-native-histograms", promote)
	wa := testutil.LoopbackAddrs(t, 1)
	n := startWeir(t, t.TempDir(), "--grpc-address="+wa[0], `--label=receiver="weir"`, promote)
	waitFor(t, 90*time.Second, "Thanos Receive ready", func() error {
		code, body, err := httpGet(n.client, "http://"+ta[1]+"/-/ready")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	for _, url := range []string{"http://" + ta[2] + "/api/v1/otlp", "http://" + n.RemoteWriteAddr + "/api/v1/otlp"} {
		mp := otlpMeterProvider(t, url, "team-a", false)
		recordOTLP(t, mp, 1)
		require.NoError(t, mp.ForceFlush(context.Background()), url)
	}

	qa := testutil.LoopbackAddrs(t, 2)
	startTool(t, "thanos-query", thanos, "query", "--grpc-address="+qa[0], "--http-address="+qa[1], "--endpoint="+ta[0], "--endpoint="+wa[0])
	base := "http://" + qa[1]
	of := func(receiver string) (map[string]string, error) {
		out := map[string]string{}
		for _, q := range []string{`{receiver="` + receiver + `", __name__!="payload_size_bytes"}`, `histogram_count({receiver="` + receiver + `", __name__="payload_size_bytes"})`} {
			res, err := thanosInstantQuery(n.client, base, q, false)
			if err != nil {
				return nil, err
			}
			for k, v := range res {
				out[strings.Replace(k, `receiver="`+receiver+`", `, "", 1)] = v
			}
		}
		return out, nil
	}
	waitFor(t, 60*time.Second, "the same series from Thanos Receive and Weir", func() error {
		fromThanos, err := of("thanos")
		if err != nil {
			return err
		}
		fromWeir, err := of("weir")
		if err != nil {
			return err
		}
		if len(fromWeir) < 9 || fmt.Sprint(fromThanos) != fmt.Sprint(fromWeir) {
			return fmt.Errorf("Thanos Receive:\n%v\nWeir:\n%v", fromThanos, fromWeir)
		}
		return nil
	})
}
