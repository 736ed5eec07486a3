package receive

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/weir-metrics/weir/auth"
	"github.com/weir-metrics/weir/internal/reload"
	"github.com/weir-metrics/weir/internal/testutil"
	"github.com/weir-metrics/weir/tenant"
)

// TestHandlerAuthentication: with credentials, the tenant is the identity's; a header may repeat it
// but never name another (403); missing or wrong credentials are 401 with WWW-Authenticate, and no
// write reaches storage.
func TestHandlerAuthentication(t *testing.T) {
	pw, err := bcrypt.GenerateFromPassword([]byte("secret-a"), bcrypt.MinCost)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	testutil.WriteFileAtomic(t, path, fmt.Appendf(nil, "tenants:\n  team-a:\n    bearer_token_sha256: [%s]\n    basic_auth_users: {prom-a: '%s'}\n  team-b:\n    bearer_token_sha256: [%s]\n",
		auth.HashToken("token-a"), pw, auth.HashToken("token-b")))
	a, err := auth.New(auth.Config{CredentialsFile: path}, reload.Options{Name: "credentials"})
	require.NoError(t, err)
	storage := &fakeStorage{}
	reg := prometheus.NewRegistry()
	h, err := NewHandler(testConfig(), storage, nil, alwaysReady, slog.New(slog.DiscardHandler), reg, WithAuthenticator(a))
	require.NoError(t, err)

	body := encodeWR(t, happyWR())
	for _, tc := range []struct {
		name       string
		authz      string // Authorization header
		user, pass string
		tenantHdr  string
		wantCode   int
		wantTenant string
	}{
		{name: "no credentials", wantCode: 401},
		{name: "wrong token", authz: "Bearer token-c", wantCode: 401},
		{name: "other scheme", authz: "Digest x", wantCode: 401},
		{name: "token", authz: "Bearer token-a", wantCode: 204, wantTenant: "team-a"},
		{name: "token, own tenant header", authz: "Bearer token-a", tenantHdr: "team-a", wantCode: 204, wantTenant: "team-a"},
		{name: "token of A, header of B", authz: "Bearer token-a", tenantHdr: "team-b", wantCode: 403},
		{name: "token, invalid header", authz: "Bearer token-b", tenantHdr: "../x", wantCode: 400},
		{name: "basic auth", user: "prom-a", pass: "secret-a", wantCode: 204, wantTenant: "team-a"},
		{name: "basic auth, wrong password", user: "prom-a", pass: "secret-b", wantCode: 401},
		{name: "basic auth, header of B", user: "prom-a", pass: "secret-a", tenantHdr: "team-b", wantCode: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := storage.calls
			h1 := rw1Headers()
			if tc.authz != "" {
				h1.Set("Authorization", tc.authz)
			}
			if tc.tenantHdr != "" {
				h1.Set(tenant.DefaultHeader, tc.tenantHdr)
			}
			r := newPost(body, h1)
			if tc.user != "" {
				r.SetBasicAuth(tc.user, tc.pass)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, tc.wantCode, w.Code, w.Body.String())
			if tc.wantCode == http.StatusUnauthorized {
				require.Contains(t, w.Header().Get("WWW-Authenticate"), "Bearer")
			}
			if tc.wantTenant == "" {
				require.Equal(t, calls, storage.calls, "a refused request reached storage")
				return
			}
			require.Equal(t, tc.wantTenant, storage.tenants[len(storage.tenants)-1])
		})
	}
	require.Equal(t, map[string]float64{"reason=unauthenticated": 4, "reason=forbidden": 2, "reason=invalid_tenant": 1},
		metricValues(t, reg, "weir_receive_requests_refused_total"))
}
