package receive

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/write"
)

func splitSeries() []prompb.TimeSeries {
	s := func(nv ...string) prompb.TimeSeries {
		return prompb.TimeSeries{Labels: lbls(nv...), Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}}
	}
	return []prompb.TimeSeries{
		s("__name__", "up", "job", "a", "team", "alpha"),
		s("__name__", "up", "job", "b"),
		s("__name__", "up", "job", "c", "team", "beta"),
		s("__name__", "up", "job", "d", "team", "alpha"),
	}
}

func TestSplitTenants(t *testing.T) {
	series := splitSeries()
	shares, err := splitTenants(series, "team", "hdr", false)
	require.NoError(t, err)
	require.Len(t, shares, 3)
	got := map[string][]int{}
	for _, s := range shares {
		got[s.tenant] = s.index
		for _, ts := range s.series {
			require.Equal(t, -1, labelIndex(ts.Labels, "team"), "the split label is removed")
		}
	}
	require.Equal(t, map[string][]int{"alpha": {0, 3}, "hdr": {1}, "beta": {2}}, got)

	shares, err = splitTenants(splitSeries()[1:2], "team", "hdr", false)
	require.NoError(t, err)
	require.Nil(t, shares, "no series carries the label: no split, the fast path")

	bad := splitSeries()
	bad[2].Labels[2].Value = ".."
	_, err = splitTenants(bad, "team", "hdr", false)
	require.ErrorIs(t, err, tenant.ErrInvalidID)
	require.Equal(t, http.StatusBadRequest, StatusCode(err))

	_, err = splitTenants(splitSeries(), "team", "alpha", true)
	require.ErrorIs(t, err, tenant.ErrOtherTenant, "an authenticated sender cannot write another tenant through the label")
	require.Equal(t, http.StatusForbidden, StatusCode(err))
	shares, err = splitTenants(splitSeries()[:1], "team", "alpha", true)
	require.NoError(t, err)
	require.Len(t, shares, 1, "its own tenant, named by the label, is fine")
}

// TestHandlerSplitTenants: a request is written as one batch per tenant, the label removed; a
// request without the label is written whole, with its frames (the router's fast path).
func TestHandlerSplitTenants(t *testing.T) {
	cfg := testConfig()
	cfg.SplitTenantLabel = "team"
	st := &fakeStorage{}
	h, _ := newTestHandler(t, cfg, st, alwaysReady)

	hdr := rw1Headers()
	hdr.Set(tenant.DefaultHeader, "hdr")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newPost(payloadOf(t, splitSeries()), hdr))
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.ElementsMatch(t, []string{"alpha", "hdr", "beta"}, st.tenants)
	for i, tn := range st.tenants {
		for _, ts := range st.series[i] {
			require.Equal(t, -1, labelIndex(ts.Labels, "team"), "tenant %s", tn)
		}
		if tn == "alpha" {
			require.Len(t, st.series[i], 2)
		}
	}

	w = httptest.NewRecorder()
	h.ServeHTTP(w, newPost(payloadOf(t, splitSeries()[1:2]), hdr))
	require.Equal(t, http.StatusNoContent, w.Code)
	require.Equal(t, "hdr", st.tenants[len(st.tenants)-1])

	bad := splitSeries()
	bad[0].Labels[2].Value = "a/b"
	w = httptest.NewRecorder()
	h.ServeHTTP(w, newPost(payloadOf(t, bad), hdr))
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "label team of series 0")

	// Each share's rejection is answered with the series' index in the request as sent.
	st.stats.Rejected = []write.Rejection{{Series: 0, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 1, Err: errors.New("out of order")}}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, newPost(payloadOf(t, splitSeries()), hdr))
	require.Equal(t, http.StatusBadRequest, w.Code)
	for _, want := range []string{`series 0: 1 sample(s) rejected (out_of_order): tenant alpha: {__name__="up", job="a"}`,
		`series 1: 1 sample(s) rejected (out_of_order): tenant hdr: {__name__="up", job="b"}`,
		`series 2: 1 sample(s) rejected (out_of_order): tenant beta: {__name__="up", job="c"}`} { // the first series of each share
		require.Contains(t, w.Body.String(), want)
	}
	require.NotContains(t, w.Body.String(), `job="d"`)

	cfg.SplitTenantLabel = "not-a-label"
	require.ErrorContains(t, cfg.Validate(), "--receive.split-tenant-label-name")
}
