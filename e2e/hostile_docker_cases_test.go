//go:build e2e

package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// The hostile requests of issue 8 §4, each with the answer receive/doc.go documents for it. They are
// built from the same request helpers as e2e/badrequest_test.go (which asserts the encodings, limits and
// tenant IDs against a process); here they run against the container image, with the full list.

// hostileCase is one request and the answer it must get.
type hostileCase struct {
	name     string
	tenant   string      // THANOS-TENANT; "" leaves the header out
	header   http.Header // replaces rwHeaders when set (the tenant is still added)
	body     func() []byte
	wantCode []int  // any of these (one, except where the input is random)
	wantBody string // a part of the answer that tells the sender what is wrong
}

// hostileTenant is the tenant the hostile bodies are sent for; nothing valid is ever written to it, so
// its TSDB must not exist afterwards.
const hostileTenant = "hostile-x"

// hostileCases returns the cases. known is a tenant holding samples at about t0 (so that timestamps
// far before it are too old for its head), t0 a timestamp within the last minutes.
func hostileCases(t *testing.T, known string, t0 int64) []hostileCase {
	t.Helper()
	enc := func(req *prompb.WriteRequest) func() []byte {
		return func() []byte { return mustEncode(t, req) }
	}
	one := func(kv []string, ts int64, v float64) *prompb.WriteRequest {
		return writeReq(series(kv, smp(ts, v)))
	}
	raw := func(b []byte) func() []byte { return func() []byte { return b } }
	withHeader := func(kv ...string) http.Header {
		h := rwHeaders()
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				h.Del(kv[i])
			} else {
				h.Set(kv[i], kv[i+1])
			}
		}
		return h
	}
	valid := enc(one(lbls("__name__", "hostile_should_not_be_stored"), t0, 1))

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	proto, err := one(lbls("__name__", "hostile_gzip"), t0, 1).Marshal()
	require.NoError(t, err)
	_, _ = zw.Write(proto)
	require.NoError(t, zw.Close())
	var framed bytes.Buffer
	sw := snappy.NewBufferedWriter(&framed)
	_, _ = sw.Write(proto)
	require.NoError(t, sw.Close())
	gigabytes := append(binary.AppendUvarint(nil, 3<<30), 0, 1, 2, 3) // a block claiming 3 GiB
	rnd := make([]byte, 4096)
	r := rand.New(rand.NewPCG(8, 4)) // fixed seed: the same bytes every run
	for i := range rnd {
		rnd[i] = byte(r.UintN(256))
	}
	manyLabels := make([]string, 0, 200_002)
	manyLabels = append(manyLabels, "__name__", "hostile_many_labels")
	for i := range 100_000 {
		manyLabels = append(manyLabels, fmt.Sprintf("l%06d", i), "v")
	}
	farFuture := time.Now().AddDate(1, 0, 0).UnixMilli()

	return []hostileCase{
		// Bodies that are not a snappy-compressed WriteRequest: 400, nothing written.
		{"empty body", hostileTenant, nil, raw(nil), []int{400}, "snappy"},
		{"gzip body, snappy header", hostileTenant, nil, raw(gz.Bytes()), []int{400}, "gzip"},
		{"framed snappy body", hostileTenant, nil, raw(framed.Bytes()), []int{400}, "framed"},
		{"truncated protobuf", hostileTenant, nil, raw(snappy.Encode(nil, proto[:len(proto)-3])), []int{400}, "protobuf"},
		{"random bytes", hostileTenant, nil, raw(rnd), []int{400, 413}, ""},
		{"random bytes, snappy-compressed", hostileTenant, nil, raw(snappy.Encode(nil, rnd)), []int{400}, "protobuf"},
		// Sizes: checked before allocating.
		{"snappy header claiming 3 GiB", hostileTenant, nil, raw(gigabytes), []int{413}, "limit"},
		// Encodings and types.
		{"Content-Encoding gzip", hostileTenant, withHeader("Content-Encoding", "gzip"), raw(gz.Bytes()), []int{415}, "gzip"},
		{"Content-Encoding zstd", hostileTenant, withHeader("Content-Encoding", "zstd"), valid, []int{415}, "zstd"},
		{"Content-Encoding absent, Content-Type absent", hostileTenant, withHeader("Content-Encoding", "", "Content-Type", ""), raw(gz.Bytes()), []int{400}, "gzip"},
		// Labels: the series is refused (400 partial write naming it); nothing else was in the request.
		{"100k labels in one series", hostileTenant, nil, enc(one(manyLabels, t0, 1)), []int{400}, "too_many_labels"},
		{"1 MB label value", hostileTenant, nil, enc(one(lbls("__name__", "hostile_big", "v", strings.Repeat("x", 1<<20)), t0, 1)), []int{400}, "label_value_too_long"},
		{"empty label name", hostileTenant, nil, enc(one(lbls("__name__", "hostile_empty", "", "v"), t0, 1)), []int{400}, "empty_label_name"},
		{"duplicate label names", hostileTenant, nil, enc(one(lbls("__name__", "hostile_dup", "a", "1", "a", "2"), t0, 1)), []int{400}, "duplicate_label_name"},
		{"invalid UTF-8 label value", hostileTenant, nil, enc(one(lbls("__name__", "hostile_utf8", "v", "a\xff\xfe"), t0, 1)), []int{400}, "invalid_label_value"},
		{"invalid UTF-8 label name", hostileTenant, nil, enc(one(lbls("__name__", "hostile_utf8", "a\xffb", "v"), t0, 1)), []int{400}, "invalid_label_name"},
		{"no labels", hostileTenant, nil, enc(one(nil, t0, 1)), []int{400}, "no_labels"},
		// Timestamps the known tenant's head cannot take (its samples are at about t0).
		{"timestamp 0", known, nil, enc(one(lbls("__name__", "hostile_ts", "at", "zero"), 0, 1)), []int{400}, "too_old"},
		{"negative timestamp", known, nil, enc(one(lbls("__name__", "hostile_ts", "at", "negative"), -1_000_000, 1)), []int{400}, "too_old"},
		{"timestamp a year ahead", known, nil, enc(one(lbls("__name__", "hostile_ts", "at", "future"), farFuture, 1)), []int{400}, "too_far_in_future"},
		{"timestamp MaxInt64", known, nil, enc(one(lbls("__name__", "hostile_ts", "at", "max"), 1<<63-1, 1)), []int{400}, "too_far_in_future"},
		// Tenant IDs (the directory of the tenant's TSDB): 400 before the body is read.
		{"tenant ..", "..", nil, valid, []int{400}, "invalid tenant ID"},
		{"tenant ../x", "../x", nil, valid, []int{400}, "invalid tenant ID"},
		{"tenant a/b", "a/b", nil, valid, []int{400}, "invalid tenant ID"},
		{"tenant /etc", "/etc", nil, valid, []int{400}, "invalid tenant ID"},
		{"tenant 10k characters", strings.Repeat("t", 10_000), nil, valid, []int{400}, "invalid tenant ID"},
		{"tenant with a tab", "a\tb", nil, valid, []int{400}, "invalid tenant ID"},
		{"tenant non-ASCII", "tenänt", nil, valid, []int{400}, "invalid tenant ID"},
	}
}

// controlTenants are tenant IDs with control characters, which Go's HTTP client refuses to send: they go
// out as raw HTTP/1.1 requests (rawPost), and the server must refuse them with a 400 (its own, or
// Weir's "invalid tenant ID").
var controlTenants = []string{"a\x00b", "a\x01b", "a\x1bb", "a\x7fb", "a\rb"}

func mustEncode(t *testing.T, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// runHostileCase posts the case and checks the answer.
func runHostileCase(t *testing.T, client *http.Client, url string, tc hostileCase) {
	t.Helper()
	h := tc.header
	if h == nil {
		h = rwHeaders()
	}
	h = h.Clone()
	if tc.tenant != "" {
		h.Set("THANOS-TENANT", tc.tenant)
	}
	resp, err := post(client, url, bytes.NewReader(tc.body()), h)
	require.NoError(t, err, tc.name)
	require.Contains(t, tc.wantCode, resp.Code, "%s: answer %.300q", tc.name, resp.Body)
	require.Contains(t, resp.Body, tc.wantBody, "%s: the answer should say what is wrong", tc.name)
	if resp.Code == http.StatusServiceUnavailable || resp.Code >= 500 {
		t.Fatalf("%s: a 5xx makes senders retry a request that can never succeed", tc.name)
	}
}

// readAllString reads r to the end as a string (raw responses).
func readAllString(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}
