package receive

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/weir-metrics/weir/auth"
	"github.com/weir-metrics/weir/internal/reload"
	"github.com/weir-metrics/weir/limits"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/write"
)

// benchNow is the receiver clock of the benchmarks; the samples are stamped with it.
var benchNow = time.UnixMilli(1_700_000_000_000)

// benchWriteRequest is what a node-exporter/kube-state-metrics scrape fleet sends: series series of 10
// sorted labels each, one sample each, the shape the design's performance targets are stated for.
func benchWriteRequest(series int) *prompb.WriteRequest {
	metrics := []string{
		"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_network_receive_bytes_total",
		"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
		"http_requests_total", "http_request_duration_seconds_bucket", "kube_pod_container_status_restarts_total",
	}
	containers := []string{"api", "worker", "envoy", "redis", "postgres"}
	wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, series)}
	for i := range wr.Timeseries {
		pod := fmt.Sprintf("%s-%08x-%05x", containers[i%len(containers)], uint32(i*2654435761), i*7919%0xfffff)
		wr.Timeseries[i] = prompb.TimeSeries{
			Labels: []prompb.Label{ // sorted by name, as Prometheus sends them
				{Name: "__name__", Value: metrics[i%len(metrics)]},
				{Name: "cluster", Value: "prod-eu-west-1"},
				{Name: "container", Value: containers[i%len(containers)]},
				{Name: "env", Value: "production"},
				{Name: "instance", Value: fmt.Sprintf("10.%d.%d.%d:9100", i/65536%256, i/256%256, i%256)},
				{Name: "job", Value: "kubernetes-pods"},
				{Name: "namespace", Value: "team-" + strconv.Itoa(i%17)},
				{Name: "node", Value: fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", i%64, i%200)},
				{Name: "pod", Value: pod},
				{Name: "region", Value: "eu-west-1"},
			},
			Samples: []prompb.Sample{{Value: float64(i) * 1.5, Timestamp: benchNow.UnixMilli() - int64(i%15_000)}},
		}
	}
	return wr
}

// benchLimits are realistic production limits that the benchmark request stays within.
var benchLimits = Limits{
	MaxSeriesPerRequest: 10_000,
	MaxLabelsPerSeries:  30,
	MaxLabelNameLength:  1024,
	MaxLabelValueLength: 2048,
	FutureWindow:        10 * time.Minute,
}

const benchSeries = 2000

// BenchmarkDecode: snappy + protobuf of one request, Remote Write 1.0 and 2.0 (the same series). MB/s
// is of the compressed body: the 2.0 one is smaller, so compare ns/op.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name, msg string
		body      []byte
	}{
		{"series=" + strconv.Itoa(benchSeries), MessageV1, encodeWR(b, benchWriteRequest(benchSeries))},
		{"series=" + strconv.Itoa(benchSeries) + "/proto=v2", MessageV2, encodeV2(b, benchV2Request(benchSeries))},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				req, err := decodeBytes(c.body, c.msg, 64<<20)
				if err != nil {
					b.Fatal(err)
				}
				req.Release()
			}
		})
	}
}

// BenchmarkValidate: the steady state, a request that is already valid and sorted (validating it is
// idempotent, so one decoded request serves every iteration).
func BenchmarkValidate(b *testing.B) {
	b.Run("series="+strconv.Itoa(benchSeries), func(b *testing.B) {
		raw := marshalWR(b, benchWriteRequest(benchSeries))
		req, err := DecodeBytes(encodeWR(b, benchWriteRequest(benchSeries)), 64<<20)
		require.NoError(b, err)
		defer req.Release()
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			kept, v, err := benchLimits.validate(&req.Write, benchNow)
			if err != nil || len(kept) != benchSeries || len(v.rejected) != 0 {
				b.Fatalf("validate: %v, %d kept, %d rejected", err, len(kept), len(v.rejected))
			}
		}
	})
}

// nopStorage accepts everything and does nothing.
type nopStorage struct{}

func (nopStorage) Write(_ context.Context, b Batch) (write.Stats, error) {
	return write.Stats{Appended: [write.NumKinds]int{len(b.Series), 0, 0}}, nil
}

// rewindBody is a request body that can be read again, so that the benchmark reuses one request.
type rewindBody struct {
	bytes.Reader
	body []byte
}

func (*rewindBody) Close() error { return nil }

// discardResponse is a ResponseWriter that keeps only the status, reused across iterations.
type discardResponse struct {
	header http.Header
	code   int
}

func (w *discardResponse) Header() http.Header         { return w.header }
func (w *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardResponse) WriteHeader(code int)        { w.code = code }

// BenchmarkHandler: the whole request path in front of storage (headers, tenant, read, decode,
// validate, metrics, answer). MB/s is of the compressed body, as received.
func BenchmarkHandler(b *testing.B) {
	b.Run("series="+strconv.Itoa(benchSeries), func(b *testing.B) {
		benchHandler(b, func(*http.Request) {})
	})
	// The same series as Remote Write 2.0, with metadata: what it costs beyond 1.0 per request.
	b.Run("series="+strconv.Itoa(benchSeries)+"/proto=v2", func(b *testing.B) {
		v2 := encodeV2(b, benchV2Request(benchSeries))
		benchHandler(b, func(r *http.Request) {
			r.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
			r.ContentLength = int64(len(v2))
			r.Body.(*rewindBody).body = v2
		})
	})
}

// benchV2Request is benchWriteRequest as Remote Write 2.0, each series with its metadata, as
// Prometheus sends it.
func benchV2Request(series int) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, ts := range benchWriteRequest(series).Timeseries {
		b := labels.NewScratchBuilder(len(ts.Labels))
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(b.Labels(), nil),
			Samples:    []writev2.Sample{{Value: ts.Samples[0].Value, Timestamp: ts.Samples[0].Timestamp}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Help text of " + ts.Labels[0].Value + ".")},
		})
	}
	req.Symbols = st.Symbols()
	return req
}

// BenchmarkHandlerAuth: BenchmarkHandler with a credentials file (bcrypt at its default cost): the
// sender's identity costs a SHA-256 (bearer) or an HMAC (basic auth, the password verified once and
// cached), which should be within the noise of BenchmarkHandler.
func BenchmarkHandlerAuth(b *testing.B) {
	pw, err := bcrypt.GenerateFromPassword([]byte("secret-a"), bcrypt.DefaultCost)
	require.NoError(b, err)
	path := filepath.Join(b.TempDir(), "credentials.yaml")
	require.NoError(b, os.WriteFile(path, fmt.Appendf(nil, "tenants:\n  team-a:\n    bearer_token_sha256: [%s]\n    basic_auth_users: {prom-a: '%s'}\n",
		auth.HashToken("token-a"), pw), 0o600))
	a, err := auth.New(auth.Config{CredentialsFile: path}, reload.Options{Name: "credentials"})
	require.NoError(b, err)
	prefix := "series=" + strconv.Itoa(benchSeries)
	b.Run(prefix+"/auth=bearer", func(b *testing.B) {
		benchHandler(b, func(r *http.Request) { r.Header.Set("Authorization", "Bearer token-a") }, WithAuthenticator(a))
	})
	b.Run(prefix+"/auth=basic", func(b *testing.B) {
		benchHandler(b, func(r *http.Request) { r.SetBasicAuth("prom-a", "secret-a") }, WithAuthenticator(a))
	})
}

// benchHandler sends the benchmark request through a Handler with opts, set up by prepare.
func benchHandler(b *testing.B, prepare func(*http.Request), opts ...HandlerOption) {
	cfg := testConfig()
	cfg.Decode = DecodeLimits{MaxBodyBytes: 16 << 20, MaxDecodedBytes: 64 << 20}
	cfg.Limits = benchLimits
	h, err := NewHandler(cfg, nopStorage{}, nil, alwaysReady, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), opts...)
	require.NoError(b, err)
	h.now = func() time.Time { return benchNow }

	body := encodeWR(b, benchWriteRequest(benchSeries))
	rb := &rewindBody{body: body}
	r := newPost(nil, nil)
	r.Header.Set(tenant.DefaultHeader, "team-a")
	r.Body = rb
	r.ContentLength = int64(len(body))
	prepare(r) // may replace the body
	w := &discardResponse{header: http.Header{}}

	b.SetBytes(int64(len(rb.body)))
	loop(b, benchSeries, func() error {
		rb.Reset(rb.body)
		w.code = 0
		h.ServeHTTP(w, r)
		if w.code != http.StatusNoContent {
			return fmt.Errorf("status %d", w.code)
		}
		return nil
	})
}

// benchTenantLimits are per-tenant limits that the benchmark request stays within, every router-side
// kind of them set: what a request costs to check when limits are on.
const benchTenantLimits = `
write:
  default:
    request:
      size_bytes_limit: 16777216
      series_limit: 100000
      samples_limit: 1000000
    ingestion_rate_limit: 1e15
    ingestion_burst_size: 1000000000
    labels_per_series_limit: 40
    label_name_length_limit: 128
    label_value_length_limit: 2048
    native_histogram_buckets_limit: 160
`

// BenchmarkHandlerLimits: BenchmarkHandler without tenant limits and with every router-side one
// (compare with benchstat -col /limits); relabel=on adds one labeldrop rule that changes no series.
func BenchmarkHandlerLimits(b *testing.B) {
	noop := func(*http.Request) {}
	for _, mode := range []string{"off", "on", "on+relabel"} {
		b.Run("series="+strconv.Itoa(benchSeries)+"/limits="+mode, func(b *testing.B) {
			if mode == "off" {
				benchHandler(b, noop)
				return
			}
			lc := limits.Config{Inline: benchTenantLimits}
			if mode == "on+relabel" {
				lc.Relabel = "- action: labeldrop\n  regex: pod_uid\n"
			}
			src, err := limits.NewSource(lc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.NoError(b, err)
			benchHandler(b, noop, WithTenantLimits(src.Current, limits.NewRateLimiter(nil)))
		})
	}
}

// BenchmarkTenantLimitsCheck: exactly what tenant limits add to a request on a router (the
// snapshot's lookup, the sample count, the request limits, the rate bucket and the shape limits),
// alone, so that it can be set against the request's cost: unlike a whole-request comparison, it is
// not lost in the shared machine's noise.
func BenchmarkTenantLimitsCheck(b *testing.B) {
	src, err := limits.NewSource(limits.Config{Inline: benchTenantLimits}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(b, err)
	h, err := NewHandler(testConfig(), nopStorage{}, nil, alwaysReady, slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		WithTenantLimits(src.Current, limits.NewRateLimiter(nil)))
	require.NoError(b, err)
	series := benchWriteRequest(benchSeries).Timeseries
	var shape Limits
	b.ReportAllocs()
	for b.Loop() {
		tl := h.limits().For("team-a")
		if err := h.checkTenantLimits("team-a", tl, series, pointCount(series)); err != nil {
			b.Fatal(err)
		}
		shape = tenantShape(benchLimits, tl)
	}
	_ = shape
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/sample")
}
