package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/write"
)

// metricValues gathers the counter name from reg as {"label=value,…": value}; labels in name order.
func metricValues(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, lp := range m.GetLabel() {
				parts = append(parts, lp.GetName()+"="+lp.GetValue())
			}
			out[strings.Join(parts, ",")] = m.GetCounter().GetValue()
		}
	}
	return out
}

// happyWR is a valid request that needs normalising: an empty-valued label and unsorted labels.
func happyWR() *prompb.WriteRequest {
	return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("job", "api", "__name__", "up", "empty", ""), Samples: samples(1000)},
		{
			Labels:     lbls("__name__", "rpc_seconds", "instance", "h:1"),
			Histograms: histogramsAt(2000),
			Exemplars:  []prompb.Exemplar{{Labels: lbls("trace_id", "t1"), Value: 0.5, Timestamp: 2000}},
		},
	}}
}

// happyStored is happyWR as storage must receive it.
func happyStored() []prompb.TimeSeries {
	return []prompb.TimeSeries{
		{Labels: lbls("__name__", "up", "job", "api"), Samples: samples(1000)},
		{
			Labels:     lbls("__name__", "rpc_seconds", "instance", "h:1"),
			Histograms: histogramsAt(2000),
			Exemplars:  []prompb.Exemplar{{Labels: lbls("trace_id", "t1"), Value: 0.5, Timestamp: 2000}},
		},
	}
}

// partialWR mixes valid series with series that validation removes.
func partialWR() *prompb.WriteRequest {
	return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "a", "job", "x"), Samples: samples(1)},                                             // 0 → validated 0
		{Labels: lbls("b", "1", "a", "1", "b", "2"), Samples: samples(1, 2)},                                         // 1: duplicate
		{Labels: lbls("__name__", "b"), Samples: samples(1, 2, 3)},                                                   // 2 → validated 1
		{Labels: lbls("x", ""), Samples: samples(1), Histograms: histogramsAt(1)},                                    // 3: no labels
		{Labels: lbls("__name__", "c"), Samples: samples(1), Exemplars: []prompb.Exemplar{{Value: 1, Timestamp: 1}}}, // 4 → validated 2
	}}
}

func TestHandler(t *testing.T) {
	const dt = "tenant=default-tenant"
	cases := []struct {
		name     string
		cfg      func(*HandlerConfig)
		notReady bool
		req      func(t *testing.T) *http.Request // nil: happyWR with RW 1.0 headers
		stats    write.Stats
		err      error

		wantStatus     int
		wantBody       string
		wantRetryAfter string
		wantAllow      string
		wantTenant     string // "": storage must not be called
		wantSeries     []prompb.TimeSeries

		wantRefused, wantAppended, wantRejected, wantStorageErrors map[string]float64
	}{
		{
			name:         "happy path, default tenant",
			stats:        write.Stats{Appended: [write.NumKinds]int{1, 1, 1}},
			wantStatus:   http.StatusNoContent,
			wantTenant:   tenant.DefaultID,
			wantSeries:   happyStored(),
			wantAppended: map[string]float64{"kind=exemplar," + dt: 1, "kind=histogram," + dt: 1, "kind=sample," + dt: 1},
		},
		{
			name: "tenant from header",
			req: func(t *testing.T) *http.Request {
				r := newPost(encodeWR(t, happyWR()), nil)
				r.Header.Set("THANOS-TENANT", "team-a_1.prod")
				return r
			},
			stats:        write.Stats{Appended: [write.NumKinds]int{1, 1, 0}},
			wantStatus:   http.StatusNoContent,
			wantTenant:   "team-a_1.prod",
			wantSeries:   happyStored(),
			wantAppended: map[string]float64{"kind=histogram,tenant=team-a_1.prod": 1, "kind=sample,tenant=team-a_1.prod": 1},
		},
		{
			name: "configured tenant header (X-Scope-OrgID)",
			cfg:  func(c *HandlerConfig) { c.TenantHeader = "X-Scope-OrgID" },
			req: func(t *testing.T) *http.Request {
				r := newPost(encodeWR(t, happyWR()), nil)
				r.Header.Set("x-scope-orgid", "org1")
				r.Header.Set("THANOS-TENANT", "ignored")
				return r
			},
			wantStatus: http.StatusNoContent,
			wantTenant: "org1",
			wantSeries: happyStored(),
		},
		{
			name: "no Content-Type or Content-Encoding: RW 1.0",
			req: func(t *testing.T) *http.Request {
				return newPost(encodeWR(t, happyWR()), http.Header{})
			},
			wantStatus: http.StatusNoContent,
			wantTenant: tenant.DefaultID,
			wantSeries: happyStored(),
		},
		{
			name: "invalid tenant",
			req: func(t *testing.T) *http.Request {
				r := newPost(encodeWR(t, happyWR()), nil)
				r.Header.Set("THANOS-TENANT", "../etc")
				return r
			},
			wantStatus:  http.StatusBadRequest,
			wantBody:    "header THANOS-TENANT: invalid tenant ID: character '/' at position 2 (allowed: letters, digits, '-', '_', '.')\n",
			wantRefused: map[string]float64{"reason=invalid_tenant": 1},
		},
		{
			name: "empty tenant header",
			req: func(t *testing.T) *http.Request {
				r := newPost(encodeWR(t, happyWR()), nil)
				r.Header.Set("THANOS-TENANT", "")
				return r
			},
			wantStatus:  http.StatusBadRequest,
			wantBody:    "header THANOS-TENANT: invalid tenant ID: empty\n",
			wantRefused: map[string]float64{"reason=invalid_tenant": 1},
		},
		{
			name: "tenant header twice",
			req: func(t *testing.T) *http.Request {
				r := newPost(encodeWR(t, happyWR()), nil)
				r.Header.Add("THANOS-TENANT", "a")
				r.Header.Add("THANOS-TENANT", "b")
				return r
			},
			wantStatus:  http.StatusBadRequest,
			wantBody:    "invalid tenant ID: header THANOS-TENANT given 2 times\n",
			wantRefused: map[string]float64{"reason=invalid_tenant": 1},
		},
		{
			name: "GET",
			req: func(*testing.T) *http.Request {
				return httptest.NewRequest(http.MethodGet, "/api/v1/receive", nil)
			},
			wantStatus: http.StatusMethodNotAllowed,
			wantBody:   "remote write needs POST\n",
			wantAllow:  "POST",
		},
		{
			name: "PUT",
			req: func(t *testing.T) *http.Request {
				r := newPost(encodeWR(t, happyWR()), nil)
				r.Method = http.MethodPut
				return r
			},
			wantStatus: http.StatusMethodNotAllowed,
			wantBody:   "remote write needs POST\n",
			wantAllow:  "POST",
		},
		{
			name:           "not ready",
			notReady:       true,
			wantStatus:     http.StatusServiceUnavailable,
			wantBody:       "not ready: replaying write-ahead logs\n",
			wantRetryAfter: "5",
			wantRefused:    map[string]float64{"reason=not_ready": 1},
		},
		{
			name: "unsupported encoding",
			req: func(t *testing.T) *http.Request {
				h := rw1Headers()
				h.Set("Content-Encoding", "gzip")
				return newPost(gzipped(t, marshalWR(t, happyWR())), h)
			},
			wantStatus:  http.StatusUnsupportedMediaType,
			wantBody:    "unsupported Content-Encoding \"gzip\": remote write needs block-format snappy (Content-Encoding: snappy)\n",
			wantRefused: map[string]float64{"reason=unsupported": 1},
		},
		{
			name: "remote write 1.0 body sent as 2.0",
			req: func(t *testing.T) *http.Request {
				h := rw1Headers()
				h.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
				return newPost(encodeWR(t, happyWR()), h)
			},
			wantStatus:  http.StatusBadRequest,
			wantBody:    "body is not a valid protobuf io.prometheus.write.v2.Request: field 1 is reserved in 2.0 (it is Remote Write 1.0's timeseries or metadata: is the Content-Type right?)\n",
			wantRefused: map[string]float64{"reason=decode": 1},
		},
		{
			name: "remote write 2.0 not accepted",
			cfg:  func(c *HandlerConfig) { c.Decode.Messages = []string{MessageV1} },
			req: func(t *testing.T) *http.Request {
				h := rw1Headers()
				h.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
				return newPost(encodeWR(t, happyWR()), h)
			},
			wantStatus:  http.StatusUnsupportedMediaType,
			wantBody:    "unsupported protobuf message \"io.prometheus.write.v2.Request\" in Content-Type: this receiver accepts prometheus.WriteRequest\n",
			wantRefused: map[string]float64{"reason=unsupported": 1},
		},
		{
			name: "body too large",
			cfg:  func(c *HandlerConfig) { c.Decode.MaxBodyBytes = 10 },
			req: func(t *testing.T) *http.Request {
				return newPost(make([]byte, 11), nil)
			},
			wantStatus:  http.StatusRequestEntityTooLarge,
			wantBody:    "body of 11 bytes is over the limit of 10 bytes\n",
			wantRefused: map[string]float64{"reason=too_large": 1},
		},
		{
			name: "decoded body too large",
			cfg:  func(c *HandlerConfig) { c.Decode.MaxDecodedBytes = 1000 },
			req: func(*testing.T) *http.Request {
				return newPost(snappy.Encode(nil, make([]byte, 1001)), nil)
			},
			wantStatus:  http.StatusRequestEntityTooLarge,
			wantBody:    "body decompresses to 1001 bytes, over the limit of 1000 bytes\n",
			wantRefused: map[string]float64{"reason=too_large": 1},
		},
		{
			name: "gzip body declared snappy",
			req: func(t *testing.T) *http.Request {
				return newPost(gzipped(t, marshalWR(t, happyWR())), nil)
			},
			wantStatus:  http.StatusBadRequest,
			wantBody:    "body is not block-format snappy (it looks gzip-compressed): snappy: corrupt input\n",
			wantRefused: map[string]float64{"reason=decode": 1},
		},
		{
			name: "not a WriteRequest",
			req: func(*testing.T) *http.Request {
				return newPost(snappy.Encode(nil, []byte("\x0a\xff\xff\xff")), nil)
			},
			wantStatus:  http.StatusBadRequest,
			wantBody:    "body is not a protobuf prometheus.WriteRequest: unexpected EOF\n",
			wantRefused: map[string]float64{"reason=decode": 1},
		},
		{
			name:        "over the series limit",
			cfg:         func(c *HandlerConfig) { c.Limits.MaxSeriesPerRequest = 1 },
			wantStatus:  http.StatusBadRequest,
			wantBody:    "request has 2 series, over the limit of 1 per request (lower the sender's max_samples_per_send)\n",
			wantRefused: map[string]float64{"reason=limits": 1},
		},
		{
			name:              "storage unavailable",
			err:               fmt.Errorf("open tenant: %w", tenant.ErrUnavailable),
			wantStatus:        http.StatusServiceUnavailable,
			wantBody:          "open tenant: tenant storage unavailable\n",
			wantRetryAfter:    "5",
			wantTenant:        tenant.DefaultID,
			wantSeries:        happyStored(),
			wantStorageErrors: map[string]float64{"class=unavailable," + dt: 1},
		},
		{
			name:              "storage closing",
			err:               tenant.ErrClosed,
			wantStatus:        http.StatusServiceUnavailable,
			wantBody:          "tenant storage is closing\n",
			wantRetryAfter:    "5",
			wantTenant:        tenant.DefaultID,
			wantSeries:        happyStored(),
			wantStorageErrors: map[string]float64{"class=unavailable," + dt: 1},
		},
		{
			name:              "write cancelled",
			err:               fmt.Errorf("write cancelled: %w", context.Canceled),
			wantStatus:        http.StatusServiceUnavailable,
			wantBody:          "write cancelled: context canceled\n",
			wantRetryAfter:    "5",
			wantTenant:        tenant.DefaultID,
			wantSeries:        happyStored(),
			wantStorageErrors: map[string]float64{"class=unavailable," + dt: 1},
		},
		{
			name:              "storage failure",
			err:               errors.New("commit: wal: no space left on device"),
			wantStatus:        http.StatusInternalServerError,
			wantBody:          "commit: wal: no space left on device\n",
			wantTenant:        tenant.DefaultID,
			wantSeries:        happyStored(),
			wantStorageErrors: map[string]float64{"class=internal," + dt: 1},
		},
		{
			name: "partial write: original indexes, labels, counts by reason",
			req:  func(t *testing.T) *http.Request { return newPost(encodeWR(t, partialWR()), nil) },
			stats: write.Stats{
				Appended: [write.NumKinds]int{2, 0, 0},
				Rejected: []write.Rejection{
					// Indexes into the validated slice: 1 is the request's series 2, 2 its series 4.
					{Series: 1, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 2, Err: errors.New("out of order sample")},
					{Series: 2, Kind: write.KindExemplar, Reason: write.ReasonInvalidExemplar, Count: 1, Err: errors.New("out of order exemplar")},
				},
			},
			wantStatus: http.StatusBadRequest,
			wantBody: "partial write: 6 points rejected, 2 written (duplicate_label_name: 2, no_labels: 2, out_of_order: 2)\n" +
				`series 1: 2 sample(s) rejected (duplicate_label_name): {a="1", b="1", b="2"}: label name "b" appears more than once` + "\n" +
				"series 3: 1 sample(s) rejected (no_labels): {}: series has no labels\n" +
				"series 3: 1 histogram(s) rejected (no_labels): {}: series has no labels\n" +
				`series 2: 2 sample(s) rejected (out_of_order): {__name__="b"}: out of order sample` + "\n",
			wantTenant: tenant.DefaultID,
			wantSeries: []prompb.TimeSeries{
				{Labels: lbls("__name__", "a", "job", "x"), Samples: samples(1)},
				{Labels: lbls("__name__", "b"), Samples: samples(1, 2, 3)},
				{Labels: lbls("__name__", "c"), Samples: samples(1), Exemplars: []prompb.Exemplar{{Value: 1, Timestamp: 1}}},
			},
			wantAppended: map[string]float64{"kind=sample," + dt: 2},
			wantRejected: map[string]float64{
				"kind=exemplar,reason=invalid_exemplar," + dt:   1,
				"kind=histogram,reason=no_labels," + dt:         1,
				"kind=sample,reason=duplicate_label_name," + dt: 2,
				"kind=sample,reason=no_labels," + dt:            1,
				"kind=sample,reason=out_of_order," + dt:         2,
			},
		},
		{
			name: "future points: partial write",
			cfg:  func(c *HandlerConfig) { c.Limits.FutureWindow = time.Minute },
			req: func(t *testing.T) *http.Request {
				now := handlerNow.UnixMilli()
				return newPost(encodeWR(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
					{Labels: lbls("__name__", "a"), Samples: samples(now, now+60_001)},
				}}), nil)
			},
			stats:      write.Stats{Appended: [write.NumKinds]int{1, 0, 0}},
			wantStatus: http.StatusBadRequest,
			wantBody: "partial write: 1 points rejected, 1 written (too_far_in_future: 1)\n" +
				"series 0: 1 sample(s) rejected (too_far_in_future): 1 samples stamped after 2023-11-14T22:14:20Z (receiver clock plus the future window)\n",
			wantTenant:   tenant.DefaultID,
			wantSeries:   []prompb.TimeSeries{{Labels: lbls("__name__", "a"), Samples: samples(handlerNow.UnixMilli())}},
			wantAppended: map[string]float64{"kind=sample," + dt: 1},
			wantRejected: map[string]float64{"kind=sample,reason=too_far_in_future," + dt: 1},
		},
		{
			name: "only exemplars rejected: success",
			stats: write.Stats{
				Appended: [write.NumKinds]int{1, 1, 0},
				Rejected: []write.Rejection{{Series: 1, Kind: write.KindExemplar, Reason: write.ReasonExemplarsDisabled, Count: 1, Err: errors.New("exemplar storage is disabled")}},
			},
			wantStatus:   http.StatusNoContent,
			wantTenant:   tenant.DefaultID,
			wantSeries:   happyStored(),
			wantAppended: map[string]float64{"kind=histogram," + dt: 1, "kind=sample," + dt: 1},
			wantRejected: map[string]float64{"kind=exemplar,reason=exemplars_disabled," + dt: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			storage := &fakeStorage{stats: tc.stats, err: tc.err}
			h, reg := newTestHandler(t, cfg, storage, func() bool { return !tc.notReady })
			h.now = func() time.Time { return handlerNow }

			var r *http.Request
			if tc.req != nil {
				r = tc.req(t)
			} else {
				r = newPost(encodeWR(t, happyWR()), nil)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			require.Equal(t, tc.wantStatus, w.Code)
			require.Equal(t, tc.wantBody, w.Body.String())
			require.Equal(t, tc.wantRetryAfter, w.Header().Get("Retry-After"))
			require.Equal(t, tc.wantAllow, w.Header().Get("Allow"))

			if tc.wantTenant == "" {
				require.Zero(t, storage.calls, "storage must not be called")
			} else {
				require.Equal(t, 1, storage.calls)
				require.Equal(t, []string{tc.wantTenant}, storage.tenants)
				require.Equal(t, tc.wantSeries, storage.series[0])
			}

			for name, want := range map[string]map[string]float64{
				"weir_receive_requests_refused_total": tc.wantRefused,
				"weir_receive_appended_total":         tc.wantAppended,
				"weir_receive_rejected_total":         tc.wantRejected,
				"weir_receive_storage_errors_total":   tc.wantStorageErrors,
			} {
				if want == nil {
					want = map[string]float64{}
				}
				require.Equal(t, want, metricValues(t, reg, name), name)
			}
		})
	}
}

// handlerNow is the receiver clock of the handler tests: 2023-11-14T22:13:20Z.
var handlerNow = time.UnixMilli(1_700_000_000_000)

// TestHandlerPartialWriteNamesFirstSeries: a write with many rejected series names only the first
// maxExamples of them, and counts all.
func TestHandlerPartialWriteNamesFirstSeries(t *testing.T) {
	wr := &prompb.WriteRequest{}
	var rejected []write.Rejection
	for i := range 8 {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: lbls("i", fmt.Sprint(i)), Samples: samples(1)})
		rejected = append(rejected, write.Rejection{Series: i, Kind: write.KindFloat, Reason: write.ReasonTooOld, Count: 1, Err: errors.New("too old")})
	}
	storage := &fakeStorage{stats: write.Stats{Rejected: rejected}}
	h, reg := newTestHandler(t, testConfig(), storage, alwaysReady)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newPost(encodeWR(t, wr), nil))

	require.Equal(t, http.StatusBadRequest, w.Code)
	want := "partial write: 8 points rejected, 0 written (too_old: 8)\n"
	for i := range maxExamples {
		want += fmt.Sprintf("series %d: 1 sample(s) rejected (too_old): {i=\"%d\"}: too old\n", i, i)
	}
	require.Equal(t, want, w.Body.String())
	require.Equal(t, map[string]float64{"kind=sample,reason=too_old,tenant=default-tenant": 8}, metricValues(t, reg, "weir_receive_rejected_total"))
}

// TestHandlerMetricsAccumulate sends several requests to one handler and checks that the counters add
// up per tenant.
func TestHandlerMetricsAccumulate(t *testing.T) {
	storage := &fakeStorage{stats: write.Stats{Appended: [write.NumKinds]int{3, 0, 1}}}
	ready := false
	h, reg := newTestHandler(t, testConfig(), storage, func() bool { return ready })
	body := encodeWR(t, happyWR())

	serve := func(tenantID string) int {
		r := newPost(body, nil)
		if tenantID != "" {
			r.Header.Set("THANOS-TENANT", tenantID)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	require.Equal(t, http.StatusServiceUnavailable, serve(""))
	require.Equal(t, http.StatusServiceUnavailable, serve("a"))
	ready = true
	require.Equal(t, http.StatusNoContent, serve(""))
	require.Equal(t, http.StatusNoContent, serve("a"))
	require.Equal(t, http.StatusNoContent, serve("a"))
	require.Equal(t, http.StatusBadRequest, serve("a/b"))

	require.Equal(t, 3, storage.calls)
	require.Equal(t, []string{tenant.DefaultID, "a", "a"}, storage.tenants)
	require.Equal(t, map[string]float64{
		"kind=sample,tenant=default-tenant":   3,
		"kind=exemplar,tenant=default-tenant": 1,
		"kind=sample,tenant=a":                6,
		"kind=exemplar,tenant=a":              2,
	}, metricValues(t, reg, "weir_receive_appended_total"))
	require.Equal(t, map[string]float64{"reason=not_ready": 2, "reason=invalid_tenant": 1},
		metricValues(t, reg, "weir_receive_requests_refused_total"))
	require.Empty(t, metricValues(t, reg, "weir_receive_rejected_total"))
}

// TestHandlerPassesRequestContext: storage gets the client request's context, so a client that goes
// away cancels the write.
func TestHandlerPassesRequestContext(t *testing.T) {
	storage := &fakeStorage{}
	h, _ := newTestHandler(t, testConfig(), storage, alwaysReady)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newPost(encodeWR(t, happyWR()), nil).WithContext(ctx))
	require.Equal(t, []error{context.Canceled}, storage.ctxErrs)
}

func TestHandlerConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		mod     func(*HandlerConfig)
		wantErr string
	}{
		{name: "valid", mod: func(*HandlerConfig) {}},
		{name: "no tenant header", mod: func(c *HandlerConfig) { c.TenantHeader = "" }, wantErr: "--receive.tenant-header is empty"},
		{name: "zero body limit", mod: func(c *HandlerConfig) { c.Decode.MaxBodyBytes = 0 }, wantErr: "--remote-write.max-body-size: 0 must be positive"},
		{name: "zero decoded limit", mod: func(c *HandlerConfig) { c.Decode.MaxDecodedBytes = 0 }, wantErr: "--remote-write.max-decoded-size: 0 must be positive"},
		{name: "negative future window", mod: func(c *HandlerConfig) { c.Limits.FutureWindow = -time.Second }, wantErr: "--tsdb.too-far-in-future.time-window: -1s is negative (0 disables the limit)"},
		{name: "negative series limit", mod: func(c *HandlerConfig) { c.Limits.MaxSeriesPerRequest = -1 }, wantErr: "--receive.limits.max-series-per-request: -1 is negative (0 disables the limit)"},
		{name: "negative value length", mod: func(c *HandlerConfig) { c.Limits.MaxLabelValueLength = -1 }, wantErr: "--receive.limits.max-label-value-length: -1 is negative (0 disables the limit)"},
		{name: "bad default tenant", mod: func(c *HandlerConfig) { c.DefaultTenant = ".." }, wantErr: `--receive.default-tenant-id: invalid tenant ID: ".." is not allowed`},
		{name: "empty default tenant", mod: func(c *HandlerConfig) { c.DefaultTenant = "" }, wantErr: "--receive.default-tenant-id: invalid tenant ID: empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.mod(&cfg)
			h, err := NewHandler(cfg, &fakeStorage{}, nil, alwaysReady, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.NotNil(t, h)
				return
			}
			require.EqualError(t, err, tc.wantErr)
			require.Nil(t, h)
		})
	}
}

// TestLabelsString: the labels in an answer are bounded and quote what needs quoting.
func TestLabelsString(t *testing.T) {
	require.Equal(t, "{}", labelsString(nil))
	require.Equal(t, `{__name__="up", job="a\"b"}`, labelsString(lbls("__name__", "up", "job", `a"b`)))
	require.Equal(t, `{"\xff"="\xfe"}`, labelsString(lbls("\xff", "\xfe")))

	long := labelsString(lbls("a", strings.Repeat("v", 10_000), "b", "c"))
	require.Len(t, long, 256+len("…}"))
	require.True(t, strings.HasPrefix(long, `{a="vvv`))
	require.True(t, strings.HasSuffix(long, "…}"))

	many := labelsString(slices.Repeat(lbls("n", "v"), 1000))
	require.Len(t, many, 256+len("…}"))
}
