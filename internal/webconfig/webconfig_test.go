package webconfig

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/weir-metrics/weir/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serve(t *testing.T, c Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- c.Serve(srv, ln, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { _ = srv.Close(); require.NoError(t, <-done) })
	return ln.Addr().String()
}

// TestServe: with a web config, the ops endpoints want TLS and a user; without, plain HTTP.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "ops", testutil.CertOptions{CommonName: "ops"})
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	file := filepath.Join(dir, "web.yml")
	testutil.WriteFileAtomic(t, file, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  ops: %s\n", cert, key, hash))
	c := Config{File: file}
	require.NoError(t, c.Check())
	addr := serve(t, c)

	client := ca.HTTPClient(t, "", "")
	get := func(url, user, pass string) int {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, get("https://"+addr+"/metrics", "", ""))
	require.Equal(t, http.StatusUnauthorized, get("https://"+addr+"/metrics", "ops", "wrong"))
	require.Equal(t, http.StatusOK, get("https://"+addr+"/metrics", "ops", "s3cret"))
	require.Equal(t, http.StatusBadRequest, get("http://"+addr+"/metrics", "ops", "s3cret"), "plain HTTP to the TLS port")

	plain := serve(t, Config{})
	require.Equal(t, http.StatusOK, get("http://"+plain+"/metrics", "", ""))
}

func TestFlagAndCheck(t *testing.T) {
	app := kingpin.New("t", "")
	var c Config
	c.RegisterFlags(app)
	_, err := app.Parse([]string{"--http.config=/nonexistent/web.yml"})
	require.NoError(t, err)
	require.ErrorContains(t, c.Check(), "--http.config")
	require.NoError(t, Config{}.Check())
}
