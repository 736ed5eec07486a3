package queryapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/tenant"
)

// TestTSDBStatus: /api/v1/status/tsdb answers as Thanos Receive does: a list of the head statistics of
// the tenant named by the header (the default tenant without one), or of every open tenant with
// all_tenants=true; limit bounds the top lists; a tenant not open here is an empty list.
func TestTSDBStatus(t *testing.T) {
	f := newFixture(t)
	for _, job := range []string{"a", "b", "c"} {
		f.write(t, "team-a", []string{"__name__", "up", "job", job}, 0, 1, 60_000, 1)
	}
	f.write(t, "team-a", []string{"__name__", "mem", "job", "a"}, 0, 1)
	f.write(t, "team-b", []string{"__name__", "up", "job", "b"}, 0, 1)
	f.write(t, tenant.DefaultID, []string{"__name__", "up"}, 0, 1)

	get := func(tenantID string, params url.Values) []tsdbStatus {
		t.Helper()
		var out []tsdbStatus
		require.NoError(t, json.Unmarshal([]byte(f.ok(t, "/api/v1/status/tsdb", tenantID, params)), &out))
		return out
	}
	a := get("team-a", nil)
	require.Len(t, a, 1)
	require.Equal(t, "team-a", a[0].Tenant)
	require.Equal(t, headStats{NumSeries: 4, NumLabelPairs: 5, ChunkCount: 4, MinTime: f.base, MaxTime: f.base + 60_000}, a[0].HeadStats)
	require.Equal(t, []stat{{"up", 3}, {"mem", 1}}, a[0].SeriesCountByMetricName)
	require.Equal(t, []stat{{"job", 3}, {"__name__", 2}}, a[0].LabelValueCountByLabelName)
	require.Equal(t, stat{"__name__=up", 3}, a[0].SeriesCountByLabelValuePair[0])

	limited := get("team-a", url.Values{"limit": {"1"}})
	require.Equal(t, []stat{{"up", 3}}, limited[0].SeriesCountByMetricName)

	require.Equal(t, tenant.DefaultID, get("", nil)[0].Tenant, "no header: the default tenant")
	require.Empty(t, get("team-c", nil), "not open here")

	all := get("", url.Values{"all_tenants": {"true"}})
	require.Len(t, all, 3)
	require.Equal(t, []string{tenant.DefaultID, "team-a", "team-b"}, []string{all[0].Tenant, all[1].Tenant, all[2].Tenant})

	for name, tc := range map[string]struct {
		tenant string
		params url.Values
	}{
		"bad limit":      {"team-a", url.Values{"limit": {"x"}}},
		"zero limit":     {"team-a", url.Values{"limit": {"0"}}},
		"tenant and all": {"team-a", url.Values{"all_tenants": {"true"}}},
		"invalid tenant": {"../x", nil},
	} {
		code, resp := f.do(t, http.MethodGet, "/api/v1/status/tsdb", tc.tenant, tc.params)
		require.Equal(t, http.StatusBadRequest, code, name)
		require.Equal(t, "bad_data", resp.ErrorType, name)
	}
	require.Equal(t, []string{tenant.DefaultID, "team-a", "team-b"}, f.m.Tenants(), "the status opens no TSDB")
}
