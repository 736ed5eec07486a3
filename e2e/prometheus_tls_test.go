package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/weir-metrics/weir/auth"
	"github.com/weir-metrics/weir/internal/testutil"
)

// TestPrometheusSecureEdge: a real Prometheus remote-writes to two weir nodes over TLS with each way
// of proving its tenant, and is refused in each way it should be:
//
//	                       ┌─ mtls     (client cert O=team-a) ──────────────┐
//	                       ├─ unknown-ca (client cert of another CA) ───────┤──► node M: TLS, client CA,
//	                       ├─ expired  (expired client cert) ───────────────┘    tenant from organization
//	Prometheus (self-scrape)
//	                       ├─ bearer   (token of team-b) ───────────────────┐
//	                       ├─ basic    (user of team-c) ────────────────────┤
//	                       ├─ wrong-token ──────────────────────────────────┤──► node C: TLS, credentials
//	                       ├─ other-tenant (token of team-b, header team-x) ┤
//	                       └─ plain-http (http:// to the TLS port) ─────────┘
//
// The accepted queues write their tenants and nothing else, with no failed sample; the refused ones
// write nothing: 401, 403 and plain HTTP (400) are dropped by Prometheus (samples_failed_total) and
// counted by weir by reason, failed handshakes are retried. The refused senders name tenants of
// their own, so a write of theirs would show. Then node M's certificate file is replaced while
// Prometheus keeps sending: new handshakes get the new certificate, and no sample fails.
func TestPrometheusSecureEdge(t *testing.T) {
	t.Parallel()
	requireBinary(t)
	bin := prometheusBinary(t)
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	other := testutil.NewCA(t, dir, "other-ca")
	srvCert, srvKey := ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "server-1"})
	tlsArgs := []string{"--remote-write.server-tls-cert=" + srvCert, "--remote-write.server-tls-key=" + srvKey}
	mtls := startWeir(t, t.TempDir(), append(tlsArgs, "--remote-write.server-tls-client-ca="+ca.File,
		"--receive.tenant-certificate-field=organization")...)
	credsFile := filepath.Join(dir, "credentials.yaml")
	pw, err := bcrypt.GenerateFromPassword([]byte("secret-c"), bcrypt.DefaultCost)
	require.NoError(t, err)
	testutil.WriteFileAtomic(t, credsFile, fmt.Appendf(nil, "tenants:\n  team-b:\n    bearer_token_sha256: [%s]\n  team-c:\n    basic_auth_users: {prom-c: '%s'}\n",
		auth.HashToken("token-b"), pw))
	creds := startWeir(t, t.TempDir(), append(tlsArgs, "--receive.credentials-file="+credsFile)...)

	clientA, clientAKey := ca.Issue(t, dir, "client-a", testutil.CertOptions{CommonName: "prometheus", Organization: []string{"team-a"}})
	stranger, strangerKey := other.Issue(t, dir, "stranger", testutil.CertOptions{Organization: []string{"intruder-ca"}})
	expired, expiredKey := ca.Issue(t, dir, "expired", testutil.CertOptions{Organization: []string{"intruder-expired"}, NotAfter: time.Now().Add(-time.Hour)})
	tlsCA := fmt.Sprintf("tls_config: {ca_file: %q}", ca.File)
	withCert := func(cert, key string) string {
		return fmt.Sprintf("tls_config: {ca_file: %q, cert_file: %q, key_file: %q}", ca.File, cert, key)
	}
	queues := []struct{ name, addr, extra string }{
		{"mtls", "https://" + mtls.RemoteWriteAddr, withCert(clientA, clientAKey)},
		{"unknown-ca", "https://" + mtls.RemoteWriteAddr, withCert(stranger, strangerKey)},
		{"expired", "https://" + mtls.RemoteWriteAddr, withCert(expired, expiredKey)},
		{"bearer", "https://" + creds.RemoteWriteAddr, tlsCA + "\n    authorization: {credentials: token-b}"},
		{"basic", "https://" + creds.RemoteWriteAddr, tlsCA + "\n    basic_auth: {username: prom-c, password: secret-c}"},
		{"wrong-token", "https://" + creds.RemoteWriteAddr, tlsCA + "\n    authorization: {credentials: token-x}"},
		{"other-tenant", "https://" + creds.RemoteWriteAddr, tlsCA + "\n    authorization: {credentials: token-b}\n    headers: {THANOS-TENANT: team-x}"},
		{"plain-http", "http://" + creds.RemoteWriteAddr, "authorization: {credentials: token-b}"},
	}
	var rw strings.Builder
	for _, q := range queues {
		fmt.Fprintf(&rw, "  - url: %s/api/v1/receive\n    name: %s\n    %s\n    queue_config: {batch_send_deadline: 200ms, min_shards: 1, max_shards: 1, min_backoff: 50ms, max_backoff: 500ms}\n",
			q.addr, q.name, q.extra)
	}
	prom := startPrometheusWith(t, bin, rw.String())
	metric := func(name, queue string) (float64, error) {
		v, _, err := scrapeMetric(mtls.client, prom.url+"/metrics", name, "remote_name", queue)
		return v, err
	}
	waitMetric := func(name, queue string, atLeast float64) {
		t.Helper()
		waitFor(t, 60*time.Second, fmt.Sprintf("%s{remote_name=%q} ≥ %g", name, queue, atLeast), func() error {
			if prom.proc.exited() {
				t.Fatalf("prometheus exited with code %d", prom.proc.exitCode())
			}
			v, err := metric(name, queue)
			if err == nil && v < atLeast {
				err = fmt.Errorf("%g", v)
			}
			return err
		})
	}
	noFailures := func() {
		t.Helper()
		for _, q := range []string{"mtls", "bearer", "basic"} {
			v, err := metric("prometheus_remote_storage_samples_failed_total", q)
			require.NoError(t, err)
			require.Zero(t, v, "failed samples of queue %s", q)
		}
	}

	for _, q := range []string{"mtls", "bearer", "basic"} {
		waitMetric("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", q, 1) // sent; failures below
	}
	for _, q := range []string{"wrong-token", "other-tenant", "plain-http"} {
		waitMetric("prometheus_remote_storage_samples_failed_total", q, 1)
	}
	for _, q := range []string{"unknown-ca", "expired"} {
		waitMetric("prometheus_remote_storage_samples_retried_total", q, 1)
	}
	noFailures()
	for _, want := range []struct {
		n      *weirNode
		reason string
	}{{creds, "unauthenticated"}, {creds, "forbidden"}} {
		v, _ := want.n.Metric(t, "weir_receive_requests_refused_total", "reason", want.reason)
		require.Positive(t, v, "requests refused as %s", want.reason)
	}

	// Rotation under load: node M's certificate file is replaced while Prometheus keeps sending.
	rotated := time.Now()
	ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "server-2"})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	clientCert, err := tls.LoadX509KeyPair(clientA, clientAKey)
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "the rotated certificate on new handshakes", func() error {
		conn, err := tls.Dial("tcp", mtls.RemoteWriteAddr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}})
		if err != nil {
			return err
		}
		defer conn.Close()
		if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "server-2" {
			return fmt.Errorf("still %s", cn)
		}
		return nil
	})
	waitMetric("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", "mtls", float64(rotated.Unix()+2))
	noFailures()
	reloads, _ := mtls.Metric(t, "weir_config_reloads_total", "config", "remote-write-tls", "result", "success")
	require.Equal(t, 1.0, reloads, "reloads of the remote-write certificate")

	// Killed, not stopped: the queues of the refused handshakes would hold its shutdown for their
	// flush deadline, and nothing it has not sent yet is checked.
	prom.proc.killGroup()
	require.True(t, prom.proc.wait(stopTimeout), "prometheus did not die")
	mtls.Stop()
	creds.Stop()
	require.Equal(t, []string{"team-a"}, tenantDirs(t, mtls.Dir))
	require.Equal(t, []string{"team-b", "team-c"}, tenantDirs(t, creds.Dir))
}
