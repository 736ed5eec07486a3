package receive

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/weir-metrics/weir/auth"
	"github.com/weir-metrics/weir/internal/reload"
	"github.com/weir-metrics/weir/internal/testutil"
	"github.com/weir-metrics/weir/tlsreload"
)

// edgeServer is a remote-write listener as a node runs it: TLS from tlsreload, the Handler with an
// Authenticator, over a fake storage that records the tenants written.
type edgeServer struct {
	addr    string
	storage *fakeStorage
}

func startEdge(t *testing.T, tlsCfg tlsreload.ServerConfig, authCfg auth.Config) *edgeServer {
	t.Helper()
	opts := reload.Options{Name: "remote-write-tls", Interval: 50 * time.Millisecond}
	serverTLS, err := tlsreload.NewServer(tlsCfg, []string{"h2", "http/1.1"}, opts)
	require.NoError(t, err)
	opts.Name = "credentials"
	a, err := auth.New(authCfg, opts)
	require.NoError(t, err)
	s := &edgeServer{storage: &fakeStorage{}}
	cfg := testConfig()
	cfg.Limits = benchLimits // Prometheus sends up to 2,000 series a request
	h, err := NewHandler(cfg, s.storage, nil, alwaysReady, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), WithAuthenticator(a))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: h, TLSConfig: serverTLS, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)} // the refused handshakes are expected
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return s
}

// tenants are the tenants written so far.
func (s *edgeServer) tenants() []string {
	s.storage.mu.Lock()
	defer s.storage.mu.Unlock()
	out := slices.Clone(s.storage.tenants)
	slices.Sort(out)
	return slices.Compact(out)
}

// TestPrometheusSecureEdge: a real Prometheus remote-writes over TLS with each way of proving its
// tenant, and is refused in each way it should be:
//
//	                       ┌─ mtls     (client cert O=team-a) ──────────────┐
//	                       ├─ unknown-ca (client cert of another CA) ───────┤──► edge M: TLS, client CA,
//	                       ├─ expired  (expired client cert) ───────────────┘    tenant from organization
//	Prometheus (self-scrape)
//	                       ├─ bearer   (token of team-b) ───────────────────┐
//	                       ├─ basic    (user of team-c) ────────────────────┤
//	                       ├─ wrong-token ──────────────────────────────────┤──► edge C: TLS, credentials
//	                       ├─ other-tenant (token of team-b, header team-x) ┤
//	                       └─ plain-http (http:// to the TLS port) ─────────┘
//
// The accepted queues write their tenants and nothing else; the refused ones write nothing: 401/403
// and plain HTTP (400) are dropped by Prometheus (samples_failed_total), failed handshakes retried.
// Then edge M's certificate is rotated while Prometheus keeps sending: new handshakes get the new
// certificate and the queues keep succeeding.
func TestPrometheusSecureEdge(t *testing.T) {
	bin := testutil.RequireTool(t, "WEIR_PROMETHEUS", "bin/prometheus",
		"GOBIN=$PWD/bin go install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0 (or make tools)")
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	other := testutil.NewCA(t, dir, "other-ca")
	srvCert, srvKey := ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "server-1"})
	mtls := startEdge(t, tlsreload.ServerConfig{CertFile: srvCert, KeyFile: srvKey, CAFile: ca.File},
		auth.Config{CertificateField: auth.FieldOrganization})
	credsFile := filepath.Join(dir, "credentials.yaml")
	pw, err := bcrypt.GenerateFromPassword([]byte("secret-c"), bcrypt.DefaultCost)
	require.NoError(t, err)
	testutil.WriteFileAtomic(t, credsFile, fmt.Appendf(nil, "tenants:\n  team-b:\n    bearer_token_sha256: [%s]\n  team-c:\n    basic_auth_users: {prom-c: '%s'}\n",
		auth.HashToken("token-b"), pw))
	creds := startEdge(t, tlsreload.ServerConfig{CertFile: srvCert, KeyFile: srvKey}, auth.Config{CredentialsFile: credsFile})

	clientA, clientAKey := ca.Issue(t, dir, "client-a", testutil.CertOptions{CommonName: "prometheus", Organization: []string{"team-a"}})
	// The refused senders name tenants of their own: a write of theirs would show.
	stranger, strangerKey := other.Issue(t, dir, "stranger", testutil.CertOptions{Organization: []string{"intruder-ca"}})
	expired, expiredKey := ca.Issue(t, dir, "expired", testutil.CertOptions{Organization: []string{"intruder-expired"}, NotAfter: time.Now().Add(-time.Hour)})
	tlsCA := fmt.Sprintf("tls_config: {ca_file: %q}", ca.File)
	withCert := func(cert, key string) string {
		return fmt.Sprintf("tls_config: {ca_file: %q, cert_file: %q, key_file: %q}", ca.File, cert, key)
	}
	queues := []struct{ name, url, extra string }{
		{"mtls", "https://" + mtls.addr, withCert(clientA, clientAKey)},
		{"unknown-ca", "https://" + mtls.addr, withCert(stranger, strangerKey)},
		{"expired", "https://" + mtls.addr, withCert(expired, expiredKey)},
		{"bearer", "https://" + creds.addr, tlsCA + "\n    authorization: {credentials: token-b}"},
		{"basic", "https://" + creds.addr, tlsCA + "\n    basic_auth: {username: prom-c, password: secret-c}"},
		{"wrong-token", "https://" + creds.addr, tlsCA + "\n    authorization: {credentials: token-x}"},
		{"other-tenant", "https://" + creds.addr, tlsCA + "\n    authorization: {credentials: token-b}\n    headers: {THANOS-TENANT: team-x}"},
		{"plain-http", "http://" + creds.addr, "authorization: {credentials: token-b}"},
	}
	var rw strings.Builder
	for _, q := range queues {
		fmt.Fprintf(&rw, "  - url: %s/api/v1/receive\n    name: %s\n    %s\n    queue_config: {batch_send_deadline: 200ms, min_shards: 1, max_shards: 1, min_backoff: 50ms, max_backoff: 500ms}\n",
			q.url, q.name, q.extra)
	}
	prom := startPrometheus(t, bin, dir, rw.String())

	for _, q := range []string{"mtls", "bearer", "basic"} {
		prom.waitSent(t, q, 1) // sent, not necessarily accepted: failures are checked below
	}
	for _, q := range []string{"wrong-token", "other-tenant", "plain-http"} {
		prom.waitMetric(t, "prometheus_remote_storage_samples_failed_total", q, 1)
	}
	for _, q := range []string{"unknown-ca", "expired"} {
		prom.waitMetric(t, "prometheus_remote_storage_samples_retried_total", q, 1)
	}
	for _, q := range []string{"mtls", "bearer", "basic"} {
		require.Zero(t, prom.metric(t, "prometheus_remote_storage_samples_failed_total", q), q)
	}
	require.Equal(t, []string{"team-a"}, mtls.tenants())
	require.Equal(t, []string{"team-b", "team-c"}, creds.tenants())

	// Rotation under load: a new server certificate for edge M while Prometheus keeps sending.
	rotated := time.Now()
	ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "server-2"})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	clientCert, err := tls.LoadX509KeyPair(clientA, clientAKey)
	require.NoError(t, err)
	testutil.Eventually(t, 10*time.Second, testutil.DefaultInterval, "the rotated certificate on new handshakes", func() error {
		conn, err := tls.Dial("tcp", mtls.addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}})
		if err != nil {
			return err
		}
		defer conn.Close()
		if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "server-2" {
			return fmt.Errorf("still %s", cn)
		}
		return nil
	})
	prom.waitSent(t, "mtls", float64(rotated.Unix()+2))
	for _, q := range []string{"mtls", "bearer", "basic"} {
		require.Zero(t, prom.metric(t, "prometheus_remote_storage_samples_failed_total", q), q)
	}
	require.Equal(t, []string{"team-a"}, mtls.tenants())
}

// promProcess is a Prometheus scraping itself and remote-writing.
type promProcess struct {
	url  string
	cmd  *exec.Cmd
	done chan error
}

func startPrometheus(t *testing.T, bin, dir, remoteWrite string) *promProcess {
	t.Helper()
	addr := testutil.LoopbackAddrs(t, 1)[0]
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: prometheus\n    static_configs: [{targets: [%q]}]\nremote_write:\n%s", addr, remoteWrite)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	p := &promProcess{url: "http://" + addr, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=debug")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	testutil.Eventually(t, 60*time.Second, testutil.DefaultInterval, "prometheus to be ready", func() error {
		select {
		case err := <-p.done:
			p.done <- err
			return testutil.Permanent(fmt.Errorf("prometheus exited: %v", err))
		default:
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %d", resp.StatusCode)
		}
		return nil
	})
	return p
}

// metric is the value of a remote-storage metric of one queue (remote_name), 0 when absent.
func (p *promProcess) metric(t *testing.T, name, queue string) float64 {
	t.Helper()
	v, err := p.scrape(name, queue)
	require.NoError(t, err)
	return v
}

func (p *promProcess) scrape(name, queue string) (float64, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, p.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, `remote_name="`+queue+`"`) {
			f := strings.Fields(line)
			return strconv.ParseFloat(f[len(f)-1], 64)
		}
	}
	return 0, sc.Err()
}

func (p *promProcess) waitMetric(t *testing.T, name, queue string, atLeast float64) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, 100*time.Millisecond, fmt.Sprintf("%s{remote_name=%q} ≥ %g", name, queue, atLeast), func() error {
		v, err := p.scrape(name, queue)
		if err == nil && v < atLeast {
			err = fmt.Errorf("%g", v)
		}
		return err
	})
}

// waitSent waits until the queue has sent samples scraped at unix time ts or later.
func (p *promProcess) waitSent(t *testing.T, queue string, ts float64) {
	t.Helper()
	p.waitMetric(t, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds", queue, ts)
}
