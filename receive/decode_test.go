package receive

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func TestCheckHeaders(t *testing.T) {
	cases := []struct {
		name     string
		encoding string   // "" leaves the header out
		ctype    string   // "" leaves the header out
		accepted []string // DecodeLimits.Messages
		want     string   // the message taken, MessageV1 when empty
		wantErr  bool
		contains []string // substrings of the error message
	}{
		{name: "no headers is RW 1.0", wantErr: false},
		{name: "RW 1.0 headers", encoding: "snappy", ctype: "application/x-protobuf"},
		{name: "snappy any case", encoding: "SNAPPY", ctype: "application/x-protobuf"},
		{name: "only encoding", encoding: "snappy"},
		{name: "only content type", ctype: "application/x-protobuf"},
		{name: "proto param v1", encoding: "snappy", ctype: "application/x-protobuf;proto=prometheus.WriteRequest"},
		{name: "proto param v1 with space", encoding: "snappy", ctype: "application/x-protobuf; proto=prometheus.WriteRequest"},
		{name: "media type any case", encoding: "snappy", ctype: "Application/X-Protobuf"},
		{
			name: "gzip", encoding: "gzip", ctype: "application/x-protobuf", wantErr: true,
			contains: []string{`unsupported Content-Encoding "gzip"`, "Content-Encoding: snappy"},
		},
		{
			name: "zstd", encoding: "zstd", ctype: "application/x-protobuf", wantErr: true,
			contains: []string{`unsupported Content-Encoding "zstd"`},
		},
		{
			name: "identity", encoding: "identity", wantErr: true,
			contains: []string{`unsupported Content-Encoding "identity"`},
		},
		{
			name: "text/plain", encoding: "snappy", ctype: "text/plain", wantErr: true,
			contains: []string{`unsupported Content-Type "text/plain"`, "application/x-protobuf"},
		},
		{
			name: "json", ctype: "application/json", wantErr: true,
			contains: []string{`unsupported Content-Type "application/json"`},
		},
		{name: "remote write 2.0", encoding: "snappy", ctype: "application/x-protobuf;proto=io.prometheus.write.v2.Request", want: MessageV2},
		{
			name: "remote write 2.0 not accepted", encoding: "snappy", ctype: "application/x-protobuf;proto=io.prometheus.write.v2.Request",
			accepted: []string{MessageV1}, wantErr: true,
			contains: []string{`unsupported protobuf message "io.prometheus.write.v2.Request"`, "accepts prometheus.WriteRequest"},
		},
		{
			name: "remote write 1.0 not accepted", encoding: "snappy", accepted: []string{MessageV2}, wantErr: true,
			contains: []string{`unsupported protobuf message "prometheus.WriteRequest"`, "accepts io.prometheus.write.v2.Request"},
		},
		{
			name: "unknown proto", encoding: "snappy", ctype: "application/x-protobuf;proto=foo.Bar", wantErr: true,
			contains: []string{`unsupported protobuf message "foo.Bar"`},
		},
		{
			name: "unparsable", encoding: "snappy", ctype: "application/x-protobuf;;=", wantErr: true,
			contains: []string{"unparsable Content-Type"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.encoding != "" {
				h.Set("Content-Encoding", tc.encoding)
			}
			if tc.ctype != "" {
				h.Set("Content-Type", tc.ctype)
			}
			msg, err := checkHeaders(h, DecodeLimits{Messages: tc.accepted})
			if !tc.wantErr {
				require.NoError(t, err)
				want := tc.want
				if want == "" {
					want = MessageV1
				}
				require.Equal(t, want, msg)
				return
			}
			require.Error(t, err)
			require.Equal(t, ClassUnsupported, ClassOf(err))
			require.Equal(t, http.StatusUnsupportedMediaType, StatusCode(err))
			for _, s := range tc.contains {
				require.Contains(t, err.Error(), s)
			}
		})
	}
}

// sampleWriteRequest is a request with every kind of content a RW 1.0 sender puts in one.
func sampleWriteRequest() *prompb.WriteRequest {
	h := &histogram.Histogram{
		Schema: 1, Count: 12, Sum: 18.4, ZeroThreshold: 0.001, ZeroCount: 2,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
		PositiveBuckets: []int64{1, 1, -1, 0},
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 1}},
		NegativeBuckets: []int64{2},
	}
	fh := &histogram.FloatHistogram{
		Schema: 0, Count: 5.5, Sum: 10, ZeroThreshold: 0.001, ZeroCount: 0.5,
		PositiveSpans:   []histogram.Span{{Offset: 1, Length: 2}},
		PositiveBuckets: []float64{2, 3},
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 1}},
		NegativeBuckets: []float64{0},
	}
	return &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:  lbls("__name__", "http_requests_total", "code", "200", "job", "api"),
				Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}, {Value: 2.5, Timestamp: 2000}},
				Exemplars: []prompb.Exemplar{{
					Labels: lbls("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"), Value: 1, Timestamp: 1500,
				}},
			},
			{
				Labels:     lbls("__name__", "rpc_duration_seconds", "job", "api"),
				Histograms: []prompb.Histogram{prompb.FromIntHistogram(3000, h), prompb.FromFloatHistogram(4000, fh)},
			},
		},
		Metadata: []prompb.MetricMetadata{{
			Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests.", Unit: "",
		}},
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	want := sampleWriteRequest()
	body := encodeWR(t, want)

	req, err := Decode(newPost(body, nil), DecodeLimits{MaxBodyBytes: int64(len(body)), MaxDecodedBytes: 1 << 20})
	require.NoError(t, err)
	defer req.Release()
	require.Equal(t, *sampleWriteRequest(), req.Write)

	req2, err := DecodeBytes(body, 1<<20)
	require.NoError(t, err)
	defer req2.Release()
	require.Equal(t, *sampleWriteRequest(), req2.Write)
}

// TestDecodePooledReuse decodes a big request, releases it, and decodes a smaller one: nothing of the
// first may show through the pooled buffers of the second.
func TestDecodePooledReuse(t *testing.T) {
	a := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "a_total", Help: "A."}}}
	for i := range 50 {
		a.Timeseries = append(a.Timeseries, prompb.TimeSeries{
			Labels:     lbls("__name__", "a_total", "instance", strings.Repeat("x", i+1), "job", "a", "zone", "eu-1"),
			Samples:    samples(int64(i), int64(i)+1, int64(i)+2),
			Exemplars:  []prompb.Exemplar{{Labels: lbls("trace_id", "abc"), Value: 1, Timestamp: 1}},
			Histograms: histogramsAt(int64(i)),
		})
	}
	b := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "b"), Samples: samples(7)},
		{Labels: lbls("__name__", "c", "x", "y")},
	}}
	bodyA, bodyB := encodeWR(t, a), encodeWR(t, b)
	limits := DecodeLimits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: 1 << 20}

	// Several rounds, some with validation in between (it shortens the series slice in place), so that
	// the pools hand the same objects back at least some of the time, also under the race detector.
	for round := range 20 {
		ra, err := Decode(newPost(bodyA, nil), limits)
		require.NoError(t, err)
		require.Len(t, ra.Write.Timeseries, 50)
		if round%2 == 1 {
			_, _, err := Limits{}.validate(&ra.Write, time.Unix(0, 0))
			require.NoError(t, err)
		}
		ra.Release()

		rb, err := Decode(newPost(bodyB, nil), limits)
		require.NoError(t, err)
		require.Equal(t, *b, rb.Write, "round %d", round)
		rb.Release()

		rb, err = DecodeBytes(bodyB, 1<<20)
		require.NoError(t, err)
		require.Equal(t, *b, rb.Write, "round %d", round)
		rb.Release()
	}
}

// failingReader fails the test if the body is read at all.
type failingReader struct{ t *testing.T }

func (f failingReader) Read([]byte) (int, error) {
	f.t.Error("body was read although Content-Length is over the limit")
	return 0, io.EOF
}

func TestDecodeContentLengthOverLimit(t *testing.T) {
	r := newPost(nil, nil)
	r.Body = io.NopCloser(failingReader{t})
	r.ContentLength = 1001
	req, err := Decode(r, DecodeLimits{MaxBodyBytes: 1000, MaxDecodedBytes: 1 << 20})
	require.Nil(t, req)
	require.Equal(t, ClassTooLarge, ClassOf(err))
	require.Equal(t, http.StatusRequestEntityTooLarge, StatusCode(err))
	require.EqualError(t, err, "body of 1001 bytes is over the limit of 1000 bytes")
}

func TestDecodeBodyLimit(t *testing.T) {
	body := encodeWR(t, sampleWriteRequest())
	n := int64(len(body))
	cases := []struct {
		name          string
		contentLength int64 // -1: chunked, length unknown
		limit         int64
		wantErr       string
	}{
		{name: "declared length at limit", contentLength: n, limit: n},
		{name: "chunked at limit", contentLength: -1, limit: n},
		{name: "chunked one over limit", contentLength: -1, limit: n - 1, wantErr: "body is over the limit of " + itoa(n-1) + " bytes"},
		{name: "chunked far over limit", contentLength: -1, limit: 10, wantErr: "body is over the limit of 10 bytes"},
		{name: "declared length one over", contentLength: n, limit: n - 1, wantErr: "body of " + itoa(n) + " bytes is over the limit of " + itoa(n-1) + " bytes"},
		// A sender that lies about the length is still caught while reading.
		{name: "declared short, body long", contentLength: 5, limit: 10, wantErr: "body is over the limit of 10 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newPost(nil, nil)
			r.Body = io.NopCloser(bytes.NewReader(body)) // hides the length from net/http
			r.ContentLength = tc.contentLength
			req, err := Decode(r, DecodeLimits{MaxBodyBytes: tc.limit, MaxDecodedBytes: 1 << 20})
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, *sampleWriteRequest(), req.Write)
				req.Release()
				return
			}
			require.Nil(t, req)
			require.EqualError(t, err, tc.wantErr)
			require.Equal(t, http.StatusRequestEntityTooLarge, StatusCode(err))
		})
	}
}

// errReader fails mid-body, as a connection reset does.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestDecodeBodyReadError(t *testing.T) {
	r := newPost(nil, nil)
	r.Body = io.NopCloser(errReader{})
	r.ContentLength = -1
	_, err := Decode(r, DecodeLimits{MaxBodyBytes: 1000, MaxDecodedBytes: 1000})
	require.EqualError(t, err, "reading body: unexpected EOF")
	require.Equal(t, ClassInvalid, ClassOf(err))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// snappyHeader returns a snappy block header declaring n decoded bytes, followed by garbage.
func snappyHeader(n uint64) []byte {
	b := binary.AppendUvarint(nil, n)
	return append(b, "garbage that is not snappy at all"...)
}

func TestDecodeDeclaredLength(t *testing.T) {
	raw := marshalWR(t, sampleWriteRequest())
	valid := snappy.Encode(nil, raw)
	n := int64(len(raw))
	cases := []struct {
		name    string
		body    []byte
		limit   int64
		class   Class
		wantErr string
	}{
		{name: "at limit", body: valid, limit: n},
		{name: "one over limit", body: valid, limit: n - 1, class: ClassTooLarge,
			wantErr: "body decompresses to " + itoa(n) + " bytes, over the limit of " + itoa(n-1) + " bytes"},
		{name: "claims 4 GiB-1", body: snappyHeader(1<<32 - 1), limit: 1 << 20, class: ClassTooLarge,
			wantErr: "body decompresses to 4294967295 bytes, over the limit of 1048576 bytes"},
		{name: "claims 1 GiB", body: snappyHeader(1 << 30), limit: 1 << 20, class: ClassTooLarge,
			wantErr: "body decompresses to 1073741824 bytes, over the limit of 1048576 bytes"},
		// Block snappy cannot describe 4 GiB or more: that header is corrupt, not too large.
		{name: "claims 4 GiB", body: snappyHeader(1 << 32), limit: 1 << 20, class: ClassInvalid,
			wantErr: "body is not block-format snappy: snappy: corrupt input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := DecodeBytes(tc.body, tc.limit)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, *sampleWriteRequest(), req.Write)
				req.Release()
				return
			}
			require.Nil(t, req)
			require.EqualError(t, err, tc.wantErr)
			require.Equal(t, tc.class, ClassOf(err))

			// Through HTTP as well, with the declared length well within the body limit.
			_, err = Decode(newPost(tc.body, nil), DecodeLimits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: tc.limit})
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

// TestDecodeHugeClaimDoesNotAllocate checks that a few bytes claiming gigabytes cost no more than a few
// bytes: the declared length is checked before a buffer is allocated for it.
func TestDecodeHugeClaimDoesNotAllocate(t *testing.T) {
	body := snappyHeader(1<<32 - 1)
	const rounds = 20

	// Warm the pools so that only per-call allocations are measured.
	_, err := DecodeBytes(body, 1<<20)
	require.Equal(t, ClassTooLarge, ClassOf(err))

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		_, err := DecodeBytes(body, 1<<20)
		require.Equal(t, ClassTooLarge, ClassOf(err))
		_, err = Decode(newPost(body, nil), DecodeLimits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: 1 << 20})
		require.Equal(t, ClassTooLarge, ClassOf(err))
	}
	runtime.ReadMemStats(&after)
	perRound := (after.TotalAlloc - before.TotalAlloc) / rounds
	t.Logf("%d bytes allocated per round for a body claiming 4 GiB", perRound)
	// A round costs a few kilobytes (request, error message); the claim is 4 GiB.
	require.Less(t, perRound, uint64(64<<10), "allocated %d bytes per round", perRound)
}

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func framedSnappy(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.True(t, bytes.HasPrefix(buf.Bytes(), []byte("\xff\x06\x00\x00sNaPpY")))
	return buf.Bytes()
}

func TestDecodeInvalidBodies(t *testing.T) {
	raw := marshalWR(t, sampleWriteRequest())
	cases := []struct {
		name     string
		body     []byte
		contains []string
	}{
		{name: "empty body", body: nil, contains: []string{"body is not block-format snappy: snappy: corrupt input"}},
		{name: "gzip", body: gzipped(t, raw), contains: []string{"body is not block-format snappy (it looks gzip-compressed)"}},
		{name: "framed snappy", body: framedSnappy(t, raw), contains: []string{"body is not block-format snappy (it is framed snappy; remote write uses the block format)"}},
		{name: "uncompressed protobuf", body: raw, contains: []string{"body is not block-format snappy"}},
		{name: "random bytes", body: []byte("\x07\x93\x11\xfa\x00\x12 not snappy, not protobuf"), contains: []string{"body is not block-format snappy"}},
		{name: "truncated snappy", body: snappy.Encode(nil, raw)[:20], contains: []string{"body is not block-format snappy"}},
		{name: "truncated protobuf", body: snappy.Encode(nil, raw[:len(raw)-3]), contains: []string{"body is not a protobuf prometheus.WriteRequest: "}},
		{name: "snappy of random bytes", body: snappy.Encode(nil, []byte("\xff\xff\xff\xff garbage")), contains: []string{"body is not a protobuf prometheus.WriteRequest: "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := DecodeBytes(tc.body, 1<<20)
			require.Nil(t, req)
			require.Error(t, err)
			require.Equal(t, ClassInvalid, ClassOf(err))
			require.Equal(t, http.StatusBadRequest, StatusCode(err))
			for _, s := range tc.contains {
				require.Contains(t, err.Error(), s)
			}

			req, err = Decode(newPost(tc.body, nil), DecodeLimits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: 1 << 20})
			require.Nil(t, req)
			require.Equal(t, http.StatusBadRequest, StatusCode(err))
			for _, s := range tc.contains {
				require.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestDecodeEmptyRequest(t *testing.T) {
	req, err := DecodeBytes(snappy.Encode(nil, nil), 1<<20)
	require.NoError(t, err)
	require.Empty(t, req.Write.Timeseries)
	require.Empty(t, req.Write.Metadata)
	req.Release()
}

func TestDecodeChecksHeadersFirst(t *testing.T) {
	h := rw1Headers()
	h.Set("Content-Encoding", "gzip")
	r := newPost(nil, h)
	r.Body = io.NopCloser(failingReader{t})
	_, err := Decode(r, DecodeLimits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: 1 << 20})
	require.Equal(t, http.StatusUnsupportedMediaType, StatusCode(err))
}
