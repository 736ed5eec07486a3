package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/stretchr/testify/require"
)

// TestBadRequests: one node with a 64 KiB body limit. Hostile or broken requests — invalid tenant IDs
// (path traversal among them), bad snappy, wrong encodings and content types, oversized bodies (declared,
// chunked, and a snappy header claiming gigabytes) — get their 4xx and write nothing: no directory
// appears inside or next to the data directory. A request mixing valid series with one with duplicate
// label names is a 400 partial write naming the bad series' index, and only the valid series are
// stored. The node stays healthy and ready throughout.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	n := startWeir(t, dir, "--remote-write.max-body-size=64KiB")
	t0 := baseTime()
	before := tree(t, root)

	valid := func() io.Reader {
		return encodeWrite(t, writeReq(series(lbls("__name__", "should_not_be_stored", "a", "b"), smp(t0, 1))))
	}
	with := func(h http.Header, kv ...string) http.Header {
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("metric 1\n"))
	require.NoError(t, zw.Close())
	huge := bytes.Repeat([]byte{'x'}, 100<<10) // over the 64 KiB limit
	// A snappy block whose header claims 4 GiB of output, followed by a few bytes.
	claim := binary.AppendUvarint(nil, 0xF0000000)
	claim = append(claim, 0, 1, 2, 3)
	notProto := snappy.Encode(nil, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01})

	cases := []struct {
		name     string
		method   string
		body     func() io.Reader
		header   http.Header
		wantCode int
		wantBody string // a part of the answer that tells the sender what is wrong
	}{
		{"tenant path traversal", "", valid, rwHeaders("THANOS-TENANT", "../etc"), 400, "invalid tenant ID"},
		{"tenant with slash", "", valid, rwHeaders("THANOS-TENANT", "a/b"), 400, "invalid tenant ID"},
		{"tenant dot-dot", "", valid, rwHeaders("THANOS-TENANT", ".."), 400, "invalid tenant ID"},
		{"tenant dot", "", valid, rwHeaders("THANOS-TENANT", "."), 400, "invalid tenant ID"},
		{"tenant empty", "", valid, rwHeaders("THANOS-TENANT", ""), 400, "invalid tenant ID"},
		{"tenant too long", "", valid, rwHeaders("THANOS-TENANT", strings.Repeat("a", 151)), 400, "invalid tenant ID"},
		{"tenant header twice", "", valid, rwHeaders("THANOS-TENANT", "team-a", "THANOS-TENANT", "team-b"), 400, "invalid tenant ID"},
		{"bad snappy", "", func() io.Reader { return strings.NewReader("this is not snappy at all") }, rwHeaders("THANOS-TENANT", "team-x"), 400, "snappy"},
		{"gzip body as snappy", "", func() io.Reader { return bytes.NewReader(gz.Bytes()) }, rwHeaders("THANOS-TENANT", "team-x"), 400, "gzip"},
		{"snappy but not protobuf", "", func() io.Reader { return bytes.NewReader(notProto) }, rwHeaders("THANOS-TENANT", "team-x"), 400, "protobuf"},
		{"gzip Content-Encoding", "", func() io.Reader { return bytes.NewReader(gz.Bytes()) }, with(rwHeaders("THANOS-TENANT", "team-x"), "Content-Encoding", "gzip"), 415, "gzip"},
		{"JSON Content-Type", "", valid, with(rwHeaders("THANOS-TENANT", "team-x"), "Content-Type", "application/json"), 415, "application/json"},
		{"remote write 1.0 body sent as 2.0", "", valid, with(rwHeaders("THANOS-TENANT", "team-x"), "Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"), 400, "is the Content-Type right?"},
		{"unknown protobuf message", "", valid, with(rwHeaders("THANOS-TENANT", "team-x"), "Content-Type", "application/x-protobuf;proto=io.prometheus.write.v3.Request"), 415, "io.prometheus.write.v3.Request"},
		{"body over limit, Content-Length", "", func() io.Reader { return bytes.NewReader(huge) }, rwHeaders("THANOS-TENANT", "team-x"), 413, "limit"},
		{"body over limit, chunked", "", func() io.Reader { return io.MultiReader(bytes.NewReader(huge)) }, rwHeaders("THANOS-TENANT", "team-x"), 413, "limit"},
		{"snappy claims 4 GiB", "", func() io.Reader { return bytes.NewReader(claim) }, rwHeaders("THANOS-TENANT", "team-x"), 413, "limit"},
		{"GET", http.MethodGet, func() io.Reader { return nil }, rwHeaders("THANOS-TENANT", "team-x"), 405, "POST"},
	}
	for _, tc := range cases {
		method := tc.method
		if method == "" {
			method = http.MethodPost
		}
		req, err := http.NewRequest(method, n.RemoteWriteURL, tc.body())
		require.NoError(t, err)
		req.Header = tc.header
		resp, err := n.client.Do(req)
		require.NoError(t, err, tc.name)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, tc.wantCode, resp.StatusCode, "%s: answer %q", tc.name, b)
		require.Contains(t, string(b), tc.wantBody, "%s: the answer should say what is wrong", tc.name)
	}

	// Nothing was written anywhere: not in the data directory, not next to it ("../etc").
	require.Equal(t, before, tree(t, root), "files or directories created by refused requests")
	require.NoDirExists(t, filepath.Join(root, "etc"))
	v, _ := n.Metric(t, "weir_receive_appended_total")
	require.Zero(t, v, "points appended by refused requests")
	v, _ = n.Metric(t, "weir_receive_requests_refused_total", "reason", "invalid_tenant")
	require.Equal(t, 7.0, v, "requests refused for their tenant")

	// Partial write: series 1 has a duplicate label name; series 0 and 2 are valid and written.
	r := n.Write(t, writeReq(
		series(lbls("__name__", "good", "i", "0"), smp(t0, 10)),
		series(lbls("__name__", "dup", "a", "1", "a", "2"), smp(t0, 11)),
		series(lbls("__name__", "good", "i", "2"), smp(t0, 12), smp(t0+1000, 13)),
	), "THANOS-TENANT", "team-c")
	require.Equal(t, http.StatusBadRequest, r.Code, "%s", r)
	require.Contains(t, r.Body, "series 1:", "the answer names the rejected series by index")
	require.Contains(t, r.Body, "duplicate_label_name")
	require.Contains(t, r.Body, `"a"`, "the answer names the duplicate label")
	require.NotContains(t, r.Body, "series 0:")
	require.NotContains(t, r.Body, "series 2:")

	code, _ := n.Get(t, "/-/healthy")
	require.Equal(t, http.StatusOK, code)
	code, _ = n.Get(t, "/-/ready")
	require.Equal(t, http.StatusOK, code)
	n.Stop()

	require.Equal(t, []string{"team-c"}, tenantDirs(t, dir))
	require.NoDirExists(t, filepath.Join(root, "etc"))
	require.NoDirExists(t, filepath.Join(dir, "a"))
	require.Equal(t, map[string][]sample{
		key("__name__", "good", "i", "0"): {{T: t0, V: 10}},
		key("__name__", "good", "i", "2"): {{T: t0, V: 12}, {T: t0 + 1000, V: 13}},
	}, readTenant(t, dir, "team-c"))
}

// TestRejectedSamples: one node. Points the TSDB must refuse for good — older than the series' newest
// (across requests and inside one request), a second value for a stored timestamp, too far in the
// future, too old for the head — each get a 400 partial write naming the reason and the series index,
// while the valid points of the same request are written; an exact duplicate is accepted (204). After a
// clean stop the stored data is exactly the accepted points.
func TestRejectedSamples(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startWeir(t, dir)
	t0 := baseTime()
	a := lbls("__name__", "ooo", "s", "a")
	b := lbls("__name__", "ooo", "s", "b")
	c := lbls("__name__", "ooo", "s", "c")
	const tenant = "team-o"

	r := n.Write(t, writeReq(series(a, smp(t0+2000, 2))), "THANOS-TENANT", tenant)
	require.Equal(t, http.StatusNoContent, r.Code, "%s", r)

	// Older than the newest sample of the series.
	r = n.Write(t, writeReq(series(a, smp(t0+1000, 1))), "THANOS-TENANT", tenant)
	require.Equal(t, http.StatusBadRequest, r.Code, "out of order: %s", r)
	require.Contains(t, r.Body, "out_of_order")
	require.Contains(t, r.Body, "series 0:")

	// Same timestamp, another value.
	r = n.Write(t, writeReq(series(a, smp(t0+2000, 99))), "THANOS-TENANT", tenant)
	require.Equal(t, http.StatusBadRequest, r.Code, "duplicate timestamp: %s", r)
	require.Contains(t, r.Body, "duplicate")

	// Same timestamp, same value: a harmless resend.
	r = n.Write(t, writeReq(series(a, smp(t0+2000, 2))), "THANOS-TENANT", tenant)
	require.Equal(t, http.StatusNoContent, r.Code, "exact duplicate: %s", r)

	// Mixed: series 0 out of order, series 1 new and valid, series 2 with a sample older than its
	// predecessor in the same request, series 3 one sample too far in the future, series 4 too old.
	r = n.Write(t, writeReq(
		series(a, smp(t0+500, 0.5)),
		series(b, smp(t0+1000, 5)),
		series(c, smp(t0+3000, 30), smp(t0+2500, 25), smp(t0+4000, 40)),
		series(lbls("__name__", "ooo", "s", "future"), smp(t0, 1), smp(t0+int64(24*3600*1000), 2)),
		series(lbls("__name__", "ooo", "s", "old"), smp(t0-int64(5*3600*1000), 3)),
	), "THANOS-TENANT", tenant)
	require.Equal(t, http.StatusBadRequest, r.Code, "mixed request: %s", r)
	for _, want := range []string{"series 0:", "series 2:", "series 3:", "series 4:", "out_of_order", "too_far_in_future", "too_old"} {
		require.Contains(t, r.Body, want)
	}
	require.NotContains(t, r.Body, "series 1:")
	require.Contains(t, r.Body, "4 written", "series 1 (1 point), series 2 (2 of 3) and series 3 (1 of 2) are written")

	// Series removed by validation and points refused by storage in one request: the answer indexes
	// every series as the sender sent it.
	r = n.Write(t, writeReq(
		series(lbls("__name__", "bad", "x", "1", "x", "2"), smp(t0+5000, 1)),
		series(lbls("__name__", "bad", "v", "\xff"), smp(t0+5000, 1)),
		series(a, smp(t0+1500, 1.5)),
		series(lbls("", "noname", "__name__", "bad"), smp(t0+5000, 1)),
		series(b, smp(t0+5000, 6)),
	), "THANOS-TENANT", tenant)
	require.Equal(t, http.StatusBadRequest, r.Code, "validation and storage rejections: %s", r)
	for i, reason := range []string{"duplicate_label_name", "invalid_label_value", "out_of_order", "empty_label_name"} {
		require.Regexp(t, fmt.Sprintf(`(?m)^series %d: .*\(%s\)`, i, reason), r.Body)
	}
	require.NotContains(t, r.Body, "series 4:")

	code, _ := n.Get(t, "/-/healthy")
	require.Equal(t, http.StatusOK, code)
	n.Stop()

	require.Equal(t, map[string][]sample{
		key(a...):                             {{T: t0 + 2000, V: 2}},
		key(b...):                             {{T: t0 + 1000, V: 5}, {T: t0 + 5000, V: 6}},
		key(c...):                             {{T: t0 + 3000, V: 30}, {T: t0 + 4000, V: 40}},
		key("__name__", "ooo", "s", "future"): {{T: t0, V: 1}},
	}, readTenant(t, dir, tenant))
}
