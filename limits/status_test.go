package limits

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestStatusAndShares(t *testing.T) {
	s, err := NewSource(Config{Inline: `
write:
  default:
    head_series_limit: 600
    ingestion_rate_limit: 300
  tenants:
    big:
      head_series_limit: 6000
      series_per_metric_limit: 60
`}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	ring := func(id string) (int, int) {
		if id == "big" {
			return 3, 6
		}
		return 0, 0 // no ring for the others: the whole figures
	}
	shares := s.SeriesShares(ring)
	h, p := shares("big")
	require.Equal(t, int64(3000), h)
	require.Equal(t, int64(30), p)
	h, p = shares("small")
	require.Equal(t, int64(600), h)
	require.Zero(t, p)

	routers := s.Routers(ring)
	require.Equal(t, 6, routers("big"))
	require.Equal(t, 1, routers("small"))
	fixed, err := NewSource(Config{Routers: 4}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.Equal(t, 4, fixed.Routers(ring)("big"))

	rl := NewRateLimiter(routers)
	ok, _ := rl.Allow("seen", s.Current().For("seen"), 10)
	require.True(t, ok)

	w := httptest.NewRecorder()
	s.StatusHandler(rl, routers, func() map[string]any {
		return map[string]any{"stored": map[string]int{"head_series": 7}}
	}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, StatusPath, nil))
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var st Status
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &st))
	require.True(t, st.Configured)
	require.Equal(t, uint64(1), st.Version)
	require.Equal(t, int64(600), st.Default.HeadSeries)
	require.Len(t, st.Tenants, 3)
	require.Equal(t, "big", st.Tenants[0].Tenant)
	require.True(t, st.Tenants[0].Own)
	require.Equal(t, int64(6000), st.Tenants[0].Limits.HeadSeries)
	require.Equal(t, 6, st.Tenants[0].Routers)
	require.Equal(t, 50.0, st.Tenants[0].RouterRate)
	require.Nil(t, st.Tenants[0].RateTokens)
	require.Equal(t, "seen", st.Tenants[1].Tenant)
	require.False(t, st.Tenants[1].Own)
	require.NotNil(t, st.Tenants[1].RateTokens)
	require.InDelta(t, 290.0, *st.Tenants[1].RateTokens, 5, "burst 300 less 10, refilling at 300/s")
	require.Equal(t, "stored", st.Tenants[2].Tenant)
	require.Equal(t, map[string]any{"head_series": 7.0}, st.Tenants[2].Usage)
}
