package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestHTTPConfig: with --http.config (Prometheus' web config: TLS and a basic-auth user) the ops
// port of a weir process answers only HTTPS with the user's password — /metrics and /-/ready alike —
// while remote write on its own port is unaffected.
func TestHTTPConfig(t *testing.T) {
	t.Parallel()
	requireBinary(t)
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "ops", testutil.CertOptions{CommonName: "ops"})
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	web := filepath.Join(dir, "web.yml")
	testutil.WriteFileAtomic(t, web, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  ops: %s\n", cert, key, hash))

	logPath := filepath.Join(dir, "weir.log")
	var p *proc
	cleanupProc(t, "weir", logPath, func() *proc { return p })
	p, err = launch(logPath, dir, weirBinary, "receive", "--tsdb.path="+filepath.Join(dir, "data"),
		"--remote-write.address=127.0.0.1:0", "--http-address=127.0.0.1:0", "--grpc-address=127.0.0.1:0", "--http.config="+web)
	require.NoError(t, err)
	var rw, ops string
	waitFor(t, readyTimeout, "the start-up line", func() error {
		if p.exited() {
			return testutil.Permanent(fmt.Errorf("weir exited with code %d", p.exitCode()))
		}
		var ok bool
		if rw, ops, ok = startedAddrs(readFrom(logPath, 0)); !ok {
			return errors.New("no start-up line yet")
		}
		return nil
	})
	client := ca.HTTPClient(t, "", "")
	get := func(url, user, pass string) (int, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	waitFor(t, readyTimeout, "/-/ready over HTTPS with the password", func() error {
		code, err := get("https://"+ops+"/-/ready", "ops", "s3cret")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("/-/ready answered %d", code)
		}
		return err
	})
	for _, tc := range []struct {
		url, user, pass string
		want            int
	}{
		{"https://" + ops + "/metrics", "ops", "s3cret", http.StatusOK},
		{"https://" + ops + "/metrics", "", "", http.StatusUnauthorized},
		{"https://" + ops + "/-/ready", "ops", "wrong", http.StatusUnauthorized},
		{"http://" + ops + "/metrics", "ops", "s3cret", http.StatusBadRequest}, // plain HTTP to the TLS port
	} {
		code, err := get(tc.url, tc.user, tc.pass)
		require.NoError(t, err)
		require.Equal(t, tc.want, code, "%s as %q", tc.url, tc.user)
	}
	l := newRingLoad(10)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	r, err := post(&http.Client{Timeout: 10 * time.Second, Transport: tr}, "http://"+rw+"/api/v1/receive", encodeWrite(t, l.request(0)), rwHeaders())
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, r.Code, "remote write: %s", r)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, p.wait(stopTimeout), "weir did not stop")
	require.Equal(t, 0, p.exitCode())
}
