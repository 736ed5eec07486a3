package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/weir-metrics/weir/internal/reload"
	"github.com/weir-metrics/weir/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlags(t *testing.T) {
	parse := func(args ...string) (ServerConfig, error) {
		app := kingpin.New("t", "")
		var c ServerConfig
		c.RegisterFlags(app, "remote-write.server-tls-", "the remote-write server")
		if _, err := app.Parse(args); err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	c, err := parse()
	require.NoError(t, err)
	require.False(t, c.Enabled())
	require.Equal(t, "1.3", c.MinVersion, "Thanos' default")

	c, err = parse("--remote-write.server-tls-cert=c", "--remote-write.server-tls-key", "k",
		"--remote-write.server-tls-min-version=1.2",
		"--remote-write.server-tls-ciphers=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		"--remote-write.server-tls-ciphers=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"--remote-write.server-tls-curves=X25519", "--remote-write.server-tls-curves=CurveP256")
	require.NoError(t, err)
	require.True(t, c.Enabled())
	require.Len(t, c.Ciphers, 2)
	require.Equal(t, []string{"X25519", "CurveP256"}, c.Curves)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--remote-write.server-tls-cert=c"}, "--remote-write.server-tls-cert and --remote-write.server-tls-key"},
		{[]string{"--remote-write.server-tls-client-ca=ca"}, "--remote-write.server-tls-client-ca needs"},
		{[]string{"--remote-write.server-tls-ciphers=RC4"}, `--remote-write.server-tls-ciphers: invalid cipher suite "RC4"`},
		{[]string{"--remote-write.server-tls-curves=P-256"}, `--remote-write.server-tls-curves: invalid curve "P-256"`},
		{[]string{"--remote-write.server-tls-min-version=1.4"}, "1.4"},
	} {
		_, err := parse(tc.args...)
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
	}
}

// server is an HTTPS server on loopback with a reloading configuration.
type server struct {
	addr string
	reg  *prometheus.Registry
}

func startServer(t *testing.T, c ServerConfig) *server {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg, err := NewServer(c, []string{"h2", "http/1.1"}, reload.Options{Name: "test", Interval: 10 * time.Millisecond, Registerer: reg})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }),
		TLSConfig: cfg, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return &server{addr: ln.Addr().String(), reg: reg}
}

// client is an HTTPS client trusting ca and presenting cert (if any); it keeps its connection.
func client(t *testing.T, ca *testutil.CA, certFile, keyFile string) *http.Client {
	t.Helper()
	return ca.HTTPClient(t, certFile, keyFile)
}

// get returns the serial number of the certificate the server presented.
func get(c *http.Client, addr string) (string, error) {
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.TLS.PeerCertificates[0].Subject.CommonName, nil
}

// TestServerRotation: a rotated certificate serves new handshakes, connections already open keep
// working, and a broken file keeps the previous certificate (counted as a failed reload).
func TestServerRotation(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "first"})
	s := startServer(t, ServerConfig{CertFile: cert, KeyFile: key})

	kept := client(t, ca, "", "")
	name, err := get(kept, s.addr)
	require.NoError(t, err)
	require.Equal(t, "first", name)

	ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "second"})
	testutil.Eventually(t, 10*time.Second, testutil.DefaultInterval, "the rotated certificate", func() error {
		name, err := get(client(t, ca, "", ""), s.addr)
		if err == nil && name != "second" {
			err = fmt.Errorf("still %s", name)
		}
		return err
	})
	// The connection opened before the rotation is still the same one: it saw the first certificate.
	name, err = get(kept, s.addr)
	require.NoError(t, err)
	require.Equal(t, "first", name, "the kept-alive connection was dropped")

	// A truncated certificate: the previous one keeps serving.
	testutil.WriteFileAtomic(t, cert, []byte("-----BEGIN CERTIFICATE-----\ntruncat"))
	testutil.Eventually(t, 10*time.Second, testutil.DefaultInterval, "a failed reload", func() error {
		_, _ = get(client(t, ca, "", ""), s.addr) // handshakes look at the files
		if n := promtest.ToFloat64(failedReloads(t, s.reg)); n != 1 {
			return fmt.Errorf("%v failed reloads", n)
		}
		return nil
	})
	name, err = get(client(t, ca, "", ""), s.addr)
	require.NoError(t, err)
	require.Equal(t, "second", name)
}

func failedReloads(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != "weir_config_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "failure" {
					g.Set(m.GetCounter().GetValue())
				}
			}
		}
	}
	return g
}

// TestServerClientCA: with a client CA, clients need a certificate it signed; a rotated CA bundle
// is picked up without a restart; expired client certificates and unknown CAs are refused.
func TestServerClientCA(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	other := testutil.NewCA(t, dir, "other")
	cert, key := ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "server"})
	clientCA := filepath.Join(dir, "clients.pem")
	copyFile(t, ca.File, clientCA)
	s := startServer(t, ServerConfig{CertFile: cert, KeyFile: key, CAFile: clientCA})

	good, goodKey := ca.Issue(t, dir, "good", testutil.CertOptions{CommonName: "good"})
	_, err := get(client(t, ca, good, goodKey), s.addr)
	require.NoError(t, err)
	_, err = get(client(t, ca, "", ""), s.addr)
	require.Error(t, err, "no client certificate")
	expired, expiredKey := ca.Issue(t, dir, "expired", testutil.CertOptions{CommonName: "expired", NotAfter: time.Now().Add(-time.Minute)})
	_, err = get(client(t, ca, expired, expiredKey), s.addr)
	require.Error(t, err, "expired client certificate")
	stranger, strangerKey := other.Issue(t, dir, "stranger", testutil.CertOptions{CommonName: "stranger"})
	_, err = get(client(t, ca, stranger, strangerKey), s.addr)
	require.Error(t, err, "client certificate of an unknown CA")

	// The bundle gains the other CA: its clients get in without a restart.
	both, err := os.ReadFile(ca.File)
	require.NoError(t, err)
	more, err := os.ReadFile(other.File)
	require.NoError(t, err)
	testutil.WriteFileAtomic(t, clientCA, append(both, more...))
	testutil.Eventually(t, 10*time.Second, testutil.DefaultInterval, "the new client CA", func() error {
		_, err := get(client(t, ca, stranger, strangerKey), s.addr)
		return err
	})
}

// TestServerVersions: the minimum version and curves are applied to every handshake.
func TestServerVersions(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "server"})
	s := startServer(t, ServerConfig{CertFile: cert, KeyFile: key, MinVersion: "1.3", Curves: []string{"CurveP384"}})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	_, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12})
	require.Error(t, err, "TLS 1.2 against a 1.3 minimum")
	_, err = tls.Dial("tcp", s.addr, &tls.Config{RootCAs: pool, CurvePreferences: []tls.CurveID{tls.X25519}})
	require.Error(t, err, "a curve the server does not offer")
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: pool, CurvePreferences: []tls.CurveID{tls.CurveP384}, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS13), conn.ConnectionState().Version)
	require.Equal(t, "h2", conn.ConnectionState().NegotiatedProtocol)
	require.NoError(t, conn.Close())

	// The expiry of the certificate in use is exported.
	mfs, err := s.reg.Gather()
	require.NoError(t, err)
	var notAfter float64
	for _, mf := range mfs {
		if mf.GetName() == "weir_tls_certificate_not_after_timestamp_seconds" {
			notAfter = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	require.InDelta(t, float64(time.Now().Add(24*time.Hour).Unix()), notAfter, 60)
}

func TestNewServerRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	cert, _ := ca.Issue(t, dir, "a", testutil.CertOptions{})
	_, key2 := ca.Issue(t, dir, "b", testutil.CertOptions{})
	_, err := NewServer(ServerConfig{CertFile: cert, KeyFile: key2}, nil, reload.Options{Name: "x"})
	require.ErrorContains(t, err, "private key does not match")
	cfg, err := NewServer(ServerConfig{}, nil, reload.Options{Name: "x"})
	require.NoError(t, err)
	require.Nil(t, cfg, "TLS off")
}

// TestClientRotation: a client certificate rotated under a running client is presented in the next
// handshake.
func TestClientRotation(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "server"})
	seen := make(chan string, 10)
	reg := prometheus.NewRegistry()
	srvCfg, err := NewServer(ServerConfig{CertFile: cert, KeyFile: key, CAFile: ca.File}, nil, reload.Options{Name: "s"})
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				seen <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })

	ccert, ckey := ca.Issue(t, dir, "client", testutil.CertOptions{CommonName: "client-1"})
	cfg, err := NewClient(ClientConfig{CertFile: ccert, KeyFile: ckey, CAFile: ca.File}, reload.Options{Name: "c", Interval: time.Nanosecond, Registerer: reg})
	require.NoError(t, err)
	dial := func() string {
		conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		require.NoError(t, err)
		_ = conn.Close()
		return <-seen
	}
	require.Equal(t, "client-1", dial())
	ca.Issue(t, dir, "client", testutil.CertOptions{CommonName: "client-2"})
	require.Equal(t, "client-2", dial())
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	testutil.WriteFileAtomic(t, to, b)
}
