package queryapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/tenant"
)

// fixture is a Manager on a temporary directory with an API in front of it.
type fixture struct {
	m   *tenant.Manager
	srv *httptest.Server
	// base is a minute-aligned timestamp (ms) half an hour ago: the tests' samples are around it.
	base int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	m, err := tenant.NewManager(tenant.Config{
		Dir:             t.TempDir(),
		Retention:       6 * time.Hour,
		LabelName:       "tenant_id",
		OpenConcurrency: 2,
	}, nil, logger, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(New(m, Options{Logger: logger, Reg: reg}))
	t.Cleanup(srv.Close)
	require.Positive(t, testutil.CollectAndCount(reg), "engine metrics on the given registerer")
	return &fixture{m: m, srv: srv, base: time.Now().Add(-30 * time.Minute).Truncate(time.Minute).UnixMilli()}
}

// write appends one float series to tenant id: labels as name/value pairs, then (offset ms, value) pairs.
func (f *fixture) write(t *testing.T, id string, pairs []string, tv ...float64) {
	t.Helper()
	ts := prompb.TimeSeries{Labels: prompb.FromLabels(labels.FromStrings(pairs...), nil)}
	for i := 0; i+1 < len(tv); i += 2 {
		ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: f.base + int64(tv[i]), Value: tv[i+1]})
	}
	stats, err := f.m.Write(context.Background(), id, []prompb.TimeSeries{ts}, nil, nil)
	require.NoError(t, err)
	require.Empty(t, stats.Rejected)
}

// sec renders base+offset (ms) as a unix-seconds parameter.
func (f *fixture) sec(offset int64) string {
	return strconv.FormatFloat(float64(f.base+offset)/1000, 'f', -1, 64)
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// get requests path with params as tenant (no header when empty); POST sends them as a form.
func (f *fixture) do(t *testing.T, method, path, tenantID string, params url.Values) (int, apiResponse) {
	t.Helper()
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequest(method, f.srv.URL+path, strings.NewReader(params.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, err = http.NewRequest(method, f.srv.URL+path+"?"+params.Encode(), nil)
		require.NoError(t, err)
	}
	if tenantID != "" {
		req.Header.Set(tenant.DefaultHeader, tenantID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), string(body))
	var out apiResponse
	require.NoError(t, json.Unmarshal(body, &out), string(body))
	return resp.StatusCode, out
}

func (f *fixture) ok(t *testing.T, path, tenantID string, params url.Values) string {
	t.Helper()
	code, resp := f.do(t, http.MethodGet, path, tenantID, params)
	require.Equal(t, http.StatusOK, code, "%+v", resp)
	require.Equal(t, "success", resp.Status)
	return string(resp.Data)
}

func TestInstantQuery(t *testing.T) {
	f := newFixture(t)
	f.write(t, "team-a", []string{"__name__", "up", "job", "api"}, 0, 1, 15_000, 0.25, 30_000, 42.5)
	f.write(t, "team-a", []string{"__name__", "up", "job", "db"}, 0, 7)

	want := `{"resultType":"vector","result":[` +
		`{"metric":{"__name__":"up","job":"api"},"value":[` + f.sec(20_000) + `,"0.25"]},` +
		`{"metric":{"__name__":"up","job":"db"},"value":[` + f.sec(20_000) + `,"7"]}]}`
	require.JSONEq(t, want, f.ok(t, "/api/v1/query", "team-a", url.Values{"query": {"up"}, "time": {f.sec(20_000)}}))

	// RFC 3339 time, POST form, an aggregation and a scalar result.
	rfc := time.UnixMilli(f.base + 30_000).UTC().Format(time.RFC3339)
	code, resp := f.do(t, http.MethodPost, "/api/v1/query", "team-a", url.Values{"query": {"sum(up)"}, "time": {rfc}})
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"resultType":"vector","result":[{"metric":{},"value":[`+f.sec(30_000)+`,"49.5"]}]}`, string(resp.Data))
	require.JSONEq(t, `{"resultType":"scalar","result":[`+f.sec(0)+`,"3"]}`,
		f.ok(t, "/api/v1/query", "team-a", url.Values{"query": {"1+2"}, "time": {f.sec(0)}}))

	// Nothing matches: an empty vector, not null.
	require.JSONEq(t, `{"resultType":"vector","result":[]}`,
		f.ok(t, "/api/v1/query", "team-a", url.Values{"query": {"nope"}, "time": {f.sec(0)}}))
}

func TestRangeQuery(t *testing.T) {
	f := newFixture(t)
	f.write(t, "team-a", []string{"__name__", "req", "code", "200"}, 0, 1, 10_000, 2, 20_000, 3, 30_000, 4)

	want := `{"resultType":"matrix","result":[{"metric":{"__name__":"req","code":"200"},"values":[` +
		`[` + f.sec(0) + `,"1"],[` + f.sec(10_000) + `,"2"],[` + f.sec(20_000) + `,"3"],[` + f.sec(30_000) + `,"4"]]}]}`
	require.JSONEq(t, want, f.ok(t, "/api/v1/query_range", "team-a", url.Values{
		"query": {"req"}, "start": {f.sec(0)}, "end": {f.sec(30_000)}, "step": {"10s"},
	}))
	// Float step, a function.
	want = `{"resultType":"matrix","result":[{"metric":{"code":"200"},"values":[` +
		`[` + f.sec(0) + `,"2"],[` + f.sec(15_000) + `,"4"],[` + f.sec(30_000) + `,"8"]]}]}`
	require.JSONEq(t, want, f.ok(t, "/api/v1/query_range", "team-a", url.Values{
		"query": {"req * 2"}, "start": {f.sec(0)}, "end": {f.sec(30_000)}, "step": {"15"},
	}))
}

func TestSeriesAndLabels(t *testing.T) {
	f := newFixture(t)
	f.write(t, "team-a", []string{"__name__", "up", "job", "api"}, 0, 1)
	f.write(t, "team-a", []string{"__name__", "up", "job", "db", "zone", "eu"}, 0, 1)
	f.write(t, "team-a", []string{"__name__", "mem", "host", "h1"}, 0, 1)

	require.JSONEq(t, `[{"__name__":"up","job":"api"},{"__name__":"up","job":"db","zone":"eu"}]`,
		f.ok(t, "/api/v1/series", "team-a", url.Values{"match[]": {"up"}}))
	require.JSONEq(t, `[{"__name__":"mem","host":"h1"},{"__name__":"up","job":"db","zone":"eu"}]`,
		f.ok(t, "/api/v1/series", "team-a", url.Values{"match[]": {`{job="db"}`, "mem"}, "start": {f.sec(-60_000)}, "end": {f.sec(60_000)}}))
	// A time range without the data.
	require.JSONEq(t, `[]`, f.ok(t, "/api/v1/series", "team-a", url.Values{"match[]": {"up"}, "start": {f.sec(60_000)}, "end": {f.sec(120_000)}}))

	require.JSONEq(t, `["__name__","host","job","zone"]`, f.ok(t, "/api/v1/labels", "team-a", nil))
	require.JSONEq(t, `["__name__","job"]`, f.ok(t, "/api/v1/labels", "team-a", url.Values{"match[]": {`up{job="api"}`}}))
	require.JSONEq(t, `["__name__","host","job"]`, f.ok(t, "/api/v1/labels", "team-a", url.Values{"match[]": {`up{job="api"}`, "mem"}}))
}

func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	f.write(t, "team-a", []string{"__name__", "up", "who", "a"}, 0, 1)
	f.write(t, "team-b", []string{"__name__", "up", "who", "b"}, 0, 2)
	f.write(t, tenant.DefaultID, []string{"__name__", "up", "who", "default"}, 0, 3)

	at := url.Values{"query": {"up"}, "time": {f.sec(0)}}
	for id, want := range map[string]string{"team-a": "a", "team-b": "b", "": "default"} {
		require.JSONEq(t, `[{"__name__":"up","who":"`+want+`"}]`, f.ok(t, "/api/v1/series", id, url.Values{"match[]": {`{__name__=~".+"}`}}), id)
		require.Contains(t, f.ok(t, "/api/v1/query", id, at), `"who":"`+want+`"`, id)
		require.JSONEq(t, `["__name__","who"]`, f.ok(t, "/api/v1/labels", id, nil), id)
	}
	// No tenant label in results: it is an external label.
	require.NotContains(t, f.ok(t, "/api/v1/query", "team-a", at), "tenant_id")

	// A tenant with nothing here reads as empty, not as an error.
	require.JSONEq(t, `{"resultType":"vector","result":[]}`, f.ok(t, "/api/v1/query", "team-c", at))
	require.JSONEq(t, `{"resultType":"scalar","result":[`+f.sec(0)+`,"1"]}`,
		f.ok(t, "/api/v1/query", "team-c", url.Values{"query": {"1"}, "time": {f.sec(0)}}))
	require.JSONEq(t, `[]`, f.ok(t, "/api/v1/series", "team-c", url.Values{"match[]": {"up"}}))
	require.JSONEq(t, `[]`, f.ok(t, "/api/v1/labels", "team-c", nil))
	require.Equal(t, []string{tenant.DefaultID, "team-a", "team-b"}, f.m.Tenants(), "reading opens no TSDB")
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	f.write(t, "team-a", []string{"__name__", "up"}, 0, 1)
	for _, c := range []struct {
		name, path, tenant string
		params             url.Values
		msg                string
	}{
		{"bad tenant", "/api/v1/query", "../etc", url.Values{"query": {"up"}}, "invalid tenant ID"},
		{"bad tenant on labels", "/api/v1/labels", "a/b", nil, "invalid tenant ID"},
		{"no query", "/api/v1/query", "team-a", nil, `invalid parameter "query"`},
		{"bad query", "/api/v1/query", "team-a", url.Values{"query": {"sum("}}, `invalid parameter "query"`},
		{"bad time", "/api/v1/query", "team-a", url.Values{"query": {"up"}, "time": {"yesterday"}}, `invalid parameter "time"`},
		{"bad timeout", "/api/v1/query", "team-a", url.Values{"query": {"up"}, "timeout": {"soon"}}, `invalid parameter "timeout"`},
		{"no start", "/api/v1/query_range", "team-a", url.Values{"query": {"up"}, "end": {"2"}, "step": {"1"}}, `invalid parameter "start"`},
		{"no step", "/api/v1/query_range", "team-a", url.Values{"query": {"up"}, "start": {"1"}, "end": {"2"}}, `invalid parameter "step"`},
		{"zero step", "/api/v1/query_range", "team-a", url.Values{"query": {"up"}, "start": {"1"}, "end": {"2"}, "step": {"0"}}, "zero or negative"},
		{"end before start", "/api/v1/query_range", "team-a", url.Values{"query": {"up"}, "start": {"2"}, "end": {"1"}, "step": {"1"}}, "end timestamp must not be before start time"},
		{"too many points", "/api/v1/query_range", "team-a", url.Values{"query": {"up"}, "start": {"0"}, "end": {"100000"}, "step": {"1"}}, "11,000 points"},
		{"series without match", "/api/v1/series", "team-a", nil, "no match[] parameter provided"},
		{"series bad match", "/api/v1/series", "team-a", url.Values{"match[]": {"up{"}}, `invalid parameter "match[]"`},
		{"series empty matcher", "/api/v1/series", "team-a", url.Values{"match[]": {`{job=""}`}}, "at least one non-empty matcher"},
		{"labels bad end", "/api/v1/labels", "team-a", url.Values{"end": {"x"}}, `invalid parameter "end"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, resp := f.do(t, http.MethodGet, c.path, c.tenant, c.params)
			require.Equal(t, http.StatusBadRequest, code)
			require.Equal(t, "error", resp.Status)
			require.Equal(t, "bad_data", resp.ErrorType)
			require.Contains(t, resp.Error, c.msg)
		})
	}

	req, err := http.NewRequest(http.MethodDelete, f.srv.URL+"/api/v1/query", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestEngineErrors(t *testing.T) {
	f := newFixture(t)
	f.write(t, "team-a", []string{"__name__", "up", "job", "a"}, 0, 1)
	f.write(t, "team-a", []string{"__name__", "up", "job", "b"}, 0, 1)

	// Evaluation error: 422 execution, as in Prometheus.
	code, resp := f.do(t, http.MethodGet, "/api/v1/query", "team-a", url.Values{
		"query": {`label_replace(up, "job", "x", "job", ".*")`}, "time": {f.sec(0)},
	})
	require.Equal(t, http.StatusUnprocessableEntity, code, "%+v", resp)
	require.Equal(t, "execution", resp.ErrorType)

	// A query timeout: 503 timeout.
	code, resp = f.do(t, http.MethodGet, "/api/v1/query", "team-a", url.Values{
		"query": {"up"}, "time": {f.sec(0)}, "timeout": {"0.000000001"},
	})
	require.Equal(t, http.StatusServiceUnavailable, code, "%+v", resp)
	require.Equal(t, "timeout", resp.ErrorType)
}

func TestParseTimeAndDuration(t *testing.T) {
	ts, err := parseTime("1700000000.123")
	require.NoError(t, err)
	require.Equal(t, int64(1700000000123), ts.UnixMilli())
	ts, err = parseTime("2023-11-14T22:13:20.5Z")
	require.NoError(t, err)
	require.Equal(t, int64(1700000000500), ts.UnixMilli())
	ts, err = parseTime(MinTime.Format(time.RFC3339Nano))
	require.NoError(t, err)
	require.Equal(t, MinTime, ts)
	_, err = parseTime("NaN")
	require.Error(t, err)

	d, err := parseDuration("1m30s")
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, d)
	d, err = parseDuration("0.5")
	require.NoError(t, err)
	require.Equal(t, 500*time.Millisecond, d)
	_, err = parseDuration("1e300")
	require.Error(t, err)
}
