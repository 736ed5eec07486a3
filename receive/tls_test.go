package receive

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of the CA certificate
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue writes a certificate and key signed by ca for 127.0.0.1 and localhost, usable by servers and
// clients, and returns the file names.
func (ca *testCA) issue(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

// TestPeerTLS: the node-to-node port with TLS and with mTLS; a client that does not trust the
// server's CA, or has no certificate when one is required, or speaks plain text, is refused.
func TestPeerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	otherCA := newTestCA(t, dir, "other-ca")
	serverCert, serverKey := ca.issue(t, dir, "server")
	clientCert, clientKey := ca.issue(t, dir, "client")
	strangerCert, strangerKey := otherCA.issue(t, dir, "stranger")

	tlsOnly := TLSConfig{CertFile: serverCert, KeyFile: serverKey}
	mTLS := TLSConfig{CertFile: serverCert, KeyFile: serverKey, CAFile: ca.file}
	cases := []struct {
		name   string
		server TLSConfig
		client TLSConfig
		ok     bool
	}{
		{"tls", tlsOnly, TLSConfig{CAFile: ca.file}, true},
		{"tls server name", tlsOnly, TLSConfig{CAFile: ca.file, ServerName: "localhost"}, true},
		{"tls wrong server name", tlsOnly, TLSConfig{CAFile: ca.file, ServerName: "elsewhere"}, false},
		{"tls wrong CA", tlsOnly, TLSConfig{CAFile: otherCA.file}, false},
		{"tls plain text client", tlsOnly, TLSConfig{}, false},
		{"mtls", mTLS, TLSConfig{CAFile: ca.file, CertFile: clientCert, KeyFile: clientKey}, true},
		{"mtls no client certificate", mTLS, TLSConfig{CAFile: ca.file}, false},
		{"mtls client certificate of another CA", mTLS, TLSConfig{CAFile: ca.file, CertFile: strangerCert, KeyFile: strangerKey}, false},
		{"mtls client does not trust the server", mTLS, TLSConfig{CAFile: otherCA.file, CertFile: clientCert, KeyFile: clientKey}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			node := newFakeNode("", modeOK)
			srv := startIngest(t, node, IngestConfig{TLS: tc.server}, nil)
			cfg := testPeerConfig()
			cfg.TLS = tc.client
			cfg.Timeout = 2 * time.Second
			p, _ := newTestPeerWriter(t, cfg)
			_, err := p.Forward(context.Background(), srv.addr, Share{Tenant: "t", Payload: forwardPayload(t, testSeries(3, 1))})
			if tc.ok {
				require.NoError(t, err)
				require.Len(t, node.series(), 3)
				return
			}
			require.Error(t, err)
			require.Equal(t, ClassUnavailable, ClassOf(err), "%v", err)
			require.Contains(t, []codes.Code{codes.Unavailable, codes.DeadlineExceeded}, status.Code(err), "%v", err)
			require.Empty(t, node.series())
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := TLSConfig{CertFile: "x"}.ServerTLS()
	require.Error(t, err)
	_, err = TLSConfig{CAFile: "x"}.ServerTLS()
	require.ErrorContains(t, err, "needs a server certificate")
	_, err = TLSConfig{CertFile: filepath.Join(dir, "missing"), KeyFile: filepath.Join(dir, "missing")}.ServerTLS()
	require.Error(t, err)
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	_, err = TLSConfig{CAFile: notPEM}.ClientTLS()
	require.ErrorContains(t, err, "no PEM certificate")
	cfg, err := TLSConfig{}.ClientTLS()
	require.NoError(t, err)
	require.Nil(t, cfg)
	cfg, err = TLSConfig{}.ServerTLS()
	require.NoError(t, err)
	require.Nil(t, cfg)
	_, err = IngestConfig{TLS: TLSConfig{CAFile: notPEM}}.ServerOptions()
	require.Error(t, err)
}
