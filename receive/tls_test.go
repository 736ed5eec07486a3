package receive

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-metrics/weir/internal/testutil"
	"github.com/weir-metrics/weir/tlsreload"
)

// TestPeerTLS: the node-to-node port with TLS and with mTLS; a client that does not trust the
// server's CA, or has no certificate when one is required, or speaks plain text, is refused.
func TestPeerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	otherCA := testutil.NewCA(t, dir, "other-ca")
	serverCert, serverKey := ca.Issue(t, dir, "server", testutil.CertOptions{CommonName: "server"})
	clientCert, clientKey := ca.Issue(t, dir, "client", testutil.CertOptions{CommonName: "client"})
	strangerCert, strangerKey := otherCA.Issue(t, dir, "stranger", testutil.CertOptions{CommonName: "stranger"})

	tlsOnly := tlsreload.ServerConfig{CertFile: serverCert, KeyFile: serverKey}
	mTLS := tlsreload.ServerConfig{CertFile: serverCert, KeyFile: serverKey, CAFile: ca.File}
	type client = tlsreload.ClientConfig
	cases := []struct {
		name   string
		server tlsreload.ServerConfig
		client client
		ok     bool
	}{
		{"tls", tlsOnly, client{CAFile: ca.File}, true},
		{"tls server name", tlsOnly, client{CAFile: ca.File, ServerName: "localhost"}, true},
		{"tls wrong server name", tlsOnly, client{CAFile: ca.File, ServerName: "elsewhere"}, false},
		{"tls wrong CA", tlsOnly, client{CAFile: otherCA.File}, false},
		{"tls plain text client", tlsOnly, client{}, false},
		{"mtls", mTLS, client{CAFile: ca.File, CertFile: clientCert, KeyFile: clientKey}, true},
		{"mtls no client certificate", mTLS, client{CAFile: ca.File}, false},
		{"mtls client certificate of another CA", mTLS, client{CAFile: ca.File, CertFile: strangerCert, KeyFile: strangerKey}, false},
		{"mtls client does not trust the server", mTLS, client{CAFile: otherCA.File, CertFile: clientCert, KeyFile: clientKey}, false},
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
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	_, err := IngestConfig{TLS: tlsreload.ServerConfig{CertFile: "x"}}.ServerOptions(nil, nil)
	require.Error(t, err)
	_, err = IngestConfig{TLS: tlsreload.ServerConfig{CertFile: notPEM, KeyFile: notPEM}}.ServerOptions(nil, nil)
	require.Error(t, err)
	require.Error(t, PeerConfig{TLS: tlsreload.ClientConfig{CertFile: "a"}}.Validate())
	_, err = NewPeerWriter(PeerConfig{TLS: tlsreload.ClientConfig{CAFile: notPEM}}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.ErrorContains(t, err, "no PEM certificate")
}
