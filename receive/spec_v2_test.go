package receive

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/write"
)

// TestRemoteWrite2ReceiverSpec holds the handler to the receiver side of the Remote Write 2.0
// specification (https://prometheus.io/docs/specs/prw/remote_write_spec_2_0/), one case per MUST and
// SHOULD, named by it. The storage is a fake that reports what a real one would (stats, errors), so
// each case isolates what the handler answers.
func TestRemoteWrite2ReceiverSpec(t *testing.T) {
	ok := func(t *testing.T) *http.Request { return newPost(encodeV2(t, happyV2()), rw2Headers()) }
	withHeader := func(name, value string) func(*testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			r := ok(t)
			if value == "" {
				r.Header.Del(name)
			} else {
				r.Header.Set(name, value)
			}
			return r
		}
	}
	const written = "3/1/0" // samples/histograms/exemplars of happyV2
	for _, tc := range []struct {
		requirement string
		storage     *fakeStorage
		req         func(*testing.T) *http.Request
		wantStatus  int
		wantWritten string // samples/histograms/exemplars headers
	}{
		{requirement: "MUST accept io.prometheus.write.v2.Request with Content-Type application/x-protobuf;proto=io.prometheus.write.v2.Request",
			req: ok, wantStatus: http.StatusNoContent, wantWritten: written},
		{requirement: "SHOULD accept prometheus.WriteRequest (1.0) on the same endpoint for backward compatibility",
			req: func(t *testing.T) *http.Request {
				return newPost(encodeWR(t, happyWR()), http.Header{"Content-Type": {"application/x-protobuf;proto=prometheus.WriteRequest"}, "Content-Encoding": {"snappy"}})
			}, wantStatus: http.StatusNoContent, wantWritten: "0/0/0"},
		{requirement: "SHOULD take a Content-Type without proto as prometheus.WriteRequest (1.0)",
			req: func(t *testing.T) *http.Request {
				return newPost(encodeWR(t, happyWR()), http.Header{"Content-Type": {"application/x-protobuf"}, "Content-Encoding": {"snappy"}})
			}, wantStatus: http.StatusNoContent, wantWritten: "0/0/0"},
		{requirement: "MUST answer 415 Unsupported Media Type to a protobuf message it does not support",
			req: withHeader("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v3.Request"), wantStatus: http.StatusUnsupportedMediaType, wantWritten: "0/0/0"},
		{requirement: "MUST answer 415 Unsupported Media Type to a Content-Encoding it does not support (snappy is the one required)",
			req: withHeader("Content-Encoding", "zstd"), wantStatus: http.StatusUnsupportedMediaType, wantWritten: "0/0/0"},
		{requirement: "MUST NOT require X-Prometheus-Remote-Write-Version (senders send it; it only informs)",
			req: withHeader("X-Prometheus-Remote-Write-Version", ""), wantStatus: http.StatusNoContent, wantWritten: written},
		{requirement: "MUST send X-Prometheus-Remote-Write-*-Written with the exact counts of what was written, after a partial write too",
			storage: &fakeStorage{stats: write.Stats{Appended: [write.NumKinds]int{2, 1, 0}, Rejected: []write.Rejection{{Series: 0, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 1, Err: errors.New("out of order sample")}}}},
			req:     ok, wantStatus: http.StatusBadRequest, wantWritten: "2/1/0"},
		{requirement: "MUST answer 4xx (400) to a request that cannot be decoded, and not be retried",
			req: func(t *testing.T) *http.Request { return newPost([]byte("\xff\xff\xff\xff"), rw2Headers()) }, wantStatus: http.StatusBadRequest, wantWritten: "0/0/0"},
		{requirement: "MUST answer 400 to invalid data it refuses for good (a series without labels), writing the rest",
			req: func(t *testing.T) *http.Request {
				in := happyV2()
				in.Timeseries = append(in.Timeseries, writev2.TimeSeries{Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}})
				return newPost(encodeV2(t, in), rw2Headers())
			}, wantStatus: http.StatusBadRequest, wantWritten: written},
		{requirement: "MUST answer 5xx to a failure a retry can fix (storage unavailable), with nothing counted as written",
			storage: &fakeStorage{err: errorf(ClassUnavailable, "tenant TSDB is opening")},
			req:     ok, wantStatus: http.StatusServiceUnavailable, wantWritten: "0/0/0"},
		{requirement: "MUST answer 2xx when everything was written",
			req: ok, wantStatus: http.StatusNoContent, wantWritten: written},
	} {
		t.Run(tc.requirement, func(t *testing.T) {
			storage := tc.storage
			if storage == nil {
				storage = &fakeStorage{}
			}
			if storage.stats.Appended == ([write.NumKinds]int{}) && storage.err == nil {
				storage.stats.Appended = [write.NumKinds]int{3, 1, 0}
				if tc.wantWritten == "0/0/0" { // a 1.0 request or a refused one: the storage is not reached or not counted
					storage.stats.Appended = [write.NumKinds]int{}
				}
			}
			h, _ := newTestHandler(t, testConfig(), storage, alwaysReady)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tc.req(t))
			require.Equal(t, tc.wantStatus, rec.Code, rec.Body.String())
			got := rec.Header().Get(headerSamplesWritten) + "/" + rec.Header().Get(headerHistogramsWritten) + "/" + rec.Header().Get(headerExemplarsWritten)
			require.Equal(t, tc.wantWritten, got)
			if tc.wantStatus >= 400 {
				require.NotEmpty(t, rec.Body.String(), "the body says why")
			}
			if tc.wantStatus == http.StatusServiceUnavailable {
				_, err := strconv.Atoi(rec.Header().Get("Retry-After"))
				require.NoError(t, err, "Retry-After")
			}
		})
	}
}
