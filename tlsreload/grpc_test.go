package tlsreload

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/weir-metrics/weir/internal/reload"
	"github.com/weir-metrics/weir/internal/testutil"
)

// TestGRPCMutualTLS: gRPC over the reloading configurations on both sides (gRPC's credentials clone
// the configuration and insist on ALPN h2, which GetConfigForClient's answer must carry), and a
// rotated server certificate seen by the next connection.
func TestGRPCMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "ingester", testutil.CertOptions{CommonName: "ingester-1"})
	srvTLS, err := NewServer(ServerConfig{CertFile: cert, KeyFile: key, CAFile: ca.File}, []string{"h2"},
		reload.Options{Name: "grpc-server-tls", Interval: time.Millisecond})
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvTLS)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })

	check := func(c ClientConfig) (string, error) {
		cliTLS, err := NewClient(c, reload.Options{Name: "grpc-client-tls"})
		require.NoError(t, err)
		cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cliTLS)))
		require.NoError(t, err)
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var p peer.Peer
		if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(false)); err != nil {
			return "", err
		}
		return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].Subject.CommonName, nil
	}
	ccert, ckey := ca.Issue(t, dir, "router", testutil.CertOptions{CommonName: "router"})
	router := ClientConfig{CertFile: ccert, KeyFile: ckey, CAFile: ca.File, ServerName: "localhost"}
	name, err := check(router)
	require.NoError(t, err)
	require.Equal(t, "ingester-1", name)

	_, err = check(ClientConfig{CAFile: ca.File, ServerName: "localhost"})
	require.Error(t, err, "a client without a certificate got in")

	ca.Issue(t, dir, "ingester", testutil.CertOptions{CommonName: "ingester-2"})
	testutil.Eventually(t, 10*time.Second, testutil.DefaultInterval, "the rotated certificate", func() error {
		name, err := check(router)
		if err == nil && name != "ingester-2" {
			return fmt.Errorf("still %s", name)
		}
		return err
	})
}
