package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/weir-metrics/weir/internal/reload"
	"github.com/weir-metrics/weir/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// credentialsYAML is a credentials file for tenants a and b: a token each, a user each.
func credentialsYAML(t testing.TB, cost int, tokenA, tokenB, passwordA string) string {
	t.Helper()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
		require.NoError(t, err)
		return string(h)
	}
	return fmt.Sprintf(`tenants:
  team-a:
    bearer_token_sha256: [%s]
    basic_auth_users:
      prom-a: %s
  team-b:
    bearer_token_sha256:
      - %s
    basic_auth_users:
      prom-b: %s
`, HashToken(tokenA), hash(passwordA), HashToken(tokenB), hash("password-b"))
}

func writeFile(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	testutil.WriteFileAtomic(t, path, []byte(content))
	return path
}

type request struct {
	bearer     string
	user, pass string
	subject    *pkix.Name // a verified client certificate
}

func (q request) http() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/receive", nil)
	switch {
	case q.bearer != "":
		r.Header.Set("Authorization", "Bearer "+q.bearer)
	case q.user != "":
		r.SetBasicAuth(q.user, q.pass)
	}
	if q.subject != nil {
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: *q.subject}}}}
	}
	return r
}

func TestAuthenticate(t *testing.T) {
	path := writeFile(t, credentialsYAML(t, bcrypt.MinCost, "token-a", "token-b", "password-a"))
	creds, err := New(Config{CredentialsFile: path}, reload.Options{Name: "c"})
	require.NoError(t, err)
	certs, err := New(Config{CertificateField: FieldOrganization}, reload.Options{Name: "o"})
	require.NoError(t, err)
	both, err := New(Config{CertificateField: FieldCommonName, CredentialsFile: path}, reload.Options{Name: "b"})
	require.NoError(t, err)
	ou, err := New(Config{CertificateField: FieldOrganizationalUnit}, reload.Options{Name: "u"})
	require.NoError(t, err)
	none, err := New(Config{}, reload.Options{Name: "n"})
	require.NoError(t, err)
	require.Nil(t, none, "nothing configured: no authenticator, the header decides")

	subject := &pkix.Name{CommonName: "team-a", Organization: []string{"team-b", "x"}, OrganizationalUnit: []string{"team-c"}}
	for _, tc := range []struct {
		name string
		a    *Authenticator
		req  request
		want string
		err  error
	}{
		{"bearer", creds, request{bearer: "token-a"}, "team-a", nil},
		{"bearer b", creds, request{bearer: "token-b"}, "team-b", nil},
		{"wrong bearer", creds, request{bearer: "token-c"}, "", ErrUnauthenticated},
		{"basic", creds, request{user: "prom-a", pass: "password-a"}, "team-a", nil},
		{"basic again (cached)", creds, request{user: "prom-a", pass: "password-a"}, "team-a", nil},
		{"basic wrong password after a cached one", creds, request{user: "prom-a", pass: "password-b"}, "", ErrUnauthenticated},
		{"basic wrong password", creds, request{user: "prom-b", pass: "password-a"}, "", ErrUnauthenticated},
		{"basic unknown user", creds, request{user: "prom-c", pass: "password-a"}, "", ErrUnauthenticated},
		{"no credentials", creds, request{}, "", ErrUnauthenticated},
		{"certificate organization", certs, request{subject: subject}, "team-b", nil},
		{"certificate organizationalUnit", ou, request{subject: subject}, "team-c", nil},
		{"no certificate", certs, request{bearer: "token-a"}, "", ErrUnauthenticated},
		{"certificate without the field", certs, request{subject: &pkix.Name{CommonName: "x"}}, "", ErrForbidden},
		{"certificate and token agree", both, request{subject: subject, bearer: "token-a"}, "team-a", nil},
		{"certificate and token disagree", both, request{subject: subject, bearer: "token-b"}, "", ErrForbidden},
		{"certificate without token", both, request{subject: subject}, "", ErrUnauthenticated},
		{"token without certificate", both, request{bearer: "token-a"}, "", ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.a.Authenticate(tc.req.http())
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.NotContains(t, err.Error(), "password-", "an error names a secret")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestReload: a changed file takes effect without a restart, with an empty cache (a changed password
// stops working at once); a bad file keeps the previous one.
func TestReload(t *testing.T) {
	path := writeFile(t, credentialsYAML(t, bcrypt.MinCost, "token-a", "token-b", "password-a"))
	reg := prometheus.NewRegistry()
	a, err := New(Config{CredentialsFile: path}, reload.Options{Name: "c", Interval: time.Nanosecond, Registerer: reg})
	require.NoError(t, err)
	auth := func(q request) (string, error) { return a.Authenticate(q.http()) }
	_, err = auth(request{user: "prom-a", pass: "password-a"})
	require.NoError(t, err)

	testutil.WriteFileAtomic(t, path, []byte(credentialsYAML(t, bcrypt.MinCost, "token-a2", "token-b", "password-a2")))
	_, err = auth(request{bearer: "token-a"})
	require.ErrorIs(t, err, ErrUnauthenticated, "a token removed from the file still works")
	_, err = auth(request{user: "prom-a", pass: "password-a"})
	require.ErrorIs(t, err, ErrUnauthenticated, "a changed password still works (cache not dropped)")
	got, err := auth(request{user: "prom-a", pass: "password-a2"})
	require.NoError(t, err)
	require.Equal(t, "team-a", got)

	testutil.WriteFileAtomic(t, path, []byte("tenants: [this is not a map"))
	got, err = auth(request{bearer: "token-a2"})
	require.NoError(t, err, "a bad file replaced the good one")
	require.Equal(t, "team-a", got)
}

func TestFileErrors(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	require.NoError(t, err)
	token := HashToken("t")
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", "tenants:\n  a:\n    bearer_tokens: [x]\n", "unknown field"},
		{"invalid tenant", "tenants:\n  ../x:\n    bearer_token_sha256: [" + token + "]\n", "invalid tenant ID"},
		{"short hash", "tenants:\n  a:\n    bearer_token_sha256: [abcd]\n", "not a hex SHA-256"},
		{"token twice", "tenants:\n  a:\n    bearer_token_sha256: [" + token + "]\n  b:\n    bearer_token_sha256: [" + token + "]\n", "the same token"},
		{"user twice", "tenants:\n  a:\n    basic_auth_users: {u: '" + string(h) + "'}\n  b:\n    basic_auth_users: {u: '" + string(h) + "'}\n", "also a user"},
		{"plain password", "tenants:\n  a:\n    basic_auth_users: {u: secret}\n", "not a bcrypt hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{CredentialsFile: writeFile(t, tc.yaml)}, reload.Options{Name: "c"})
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "--receive.credentials-file")
		})
	}
	_, err = New(Config{CredentialsFile: filepath.Join(t.TempDir(), "missing")}, reload.Options{Name: "c"})
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestFlags(t *testing.T) {
	app := kingpin.New("t", "")
	var c Config
	c.RegisterFlags(app)
	_, err := app.Parse([]string{"--receive.tenant-certificate-field=organizationalUnit", "--receive.credentials-file=/x"})
	require.NoError(t, err)
	require.Equal(t, Config{CertificateField: FieldOrganizationalUnit, CredentialsFile: "/x"}, c)
	_, err = app.Parse([]string{"--receive.tenant-certificate-field=serialNumber"})
	require.Error(t, err)
	require.ErrorContains(t, Config{CertificateField: "x"}.Validate(), "--receive.tenant-certificate-field")
}

// TestPasswordSlots: a password waiting for a verification slot gives up with its request.
func TestPasswordSlots(t *testing.T) {
	path := writeFile(t, credentialsYAML(t, bcrypt.MinCost, "a", "b", "password-a"))
	c, err := loadCredentials(path, 1)
	require.NoError(t, err)
	c.slots <- struct{}{} // the only slot is busy
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.userTenant(ctx, "prom-a", "password-a")
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, ErrUnauthenticated), "a busy server is not a wrong password")
}

// BenchmarkAuthenticate measures what identifying a request costs, per method. The basic-auth rows
// show why verified passwords are cached: bcrypt at its default cost is tens of milliseconds.
func BenchmarkAuthenticate(b *testing.B) {
	path := writeFile(b, credentialsYAML(b, bcrypt.DefaultCost, "token-a", "token-b", "password-a"))
	a, err := New(Config{CredentialsFile: path}, reload.Options{Name: "c"})
	require.NoError(b, err)
	certs, err := New(Config{CertificateField: FieldCommonName}, reload.Options{Name: "o"})
	require.NoError(b, err)
	run := func(name string, a *Authenticator, q request, prepare func()) {
		b.Run(name, func(b *testing.B) {
			r := q.http()
			b.ReportAllocs()
			for b.Loop() {
				if prepare != nil {
					prepare()
				}
				if _, err := a.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("method=certificate", certs, request{subject: &pkix.Name{CommonName: "team-a"}}, nil)
	run("method=bearer", a, request{bearer: "token-a"}, nil)
	run("method=basic/cached", a, request{user: "prom-a", pass: "password-a"}, nil)
	creds := a.creds.Get()
	run("method=basic/uncached", a, request{user: "prom-a", pass: "password-a"}, func() {
		creds.cache.mu.Lock()
		clear(creds.cache.macs)
		creds.cache.mu.Unlock()
	})
}
