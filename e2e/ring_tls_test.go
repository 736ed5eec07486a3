package e2e

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestRingMutualTLS: mutual TLS everywhere, with real weir processes. A sender proves its tenant with
// a client certificate (organization=team-a) to a router that serves remote write over mutual TLS;
// the router forwards over gRPC with its own client certificate to two ingesters that accept only
// clients of the ring's CA. Every write is answered 204 and lands on both ingesters, as team-a. A
// tenant header naming another tenant is refused (403), a sender without a certificate does not get
// through the handshake, and a second router without a client certificate is refused by the
// ingesters (its writes get 503, never 2xx).
//
//	sender (O=team-a) ──HTTPS, mTLS──▶ router ──gRPC, mTLS──┬──▶ ingester 0 (client CA: ring CA)
//	                                   RF=2                  └──▶ ingester 1
//	                                   rogue router (no client certificate) ──✗──▶ ingesters
func TestRingMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testutil.NewCA(t, dir, "ring-ca")
	grpcAddrs := testutil.LoopbackAddrs(t, 2)
	file := filepath.Join(dir, "hashrings.json")
	writeHashrings(t, file, grpcAddrs...)
	ingesters := make([]*weirNode, len(grpcAddrs))
	for i, addr := range grpcAddrs {
		name := "ingester-" + string(rune('0'+i))
		cert, key := ca.Issue(t, dir, name, testutil.CertOptions{CommonName: name})
		ingesters[i] = startIngester(t, addr, "--grpc-server-tls-cert="+cert, "--grpc-server-tls-key="+key,
			"--grpc-server-tls-client-ca="+ca.File)
	}
	routerCert, routerKey := ca.Issue(t, dir, "router", testutil.CertOptions{CommonName: "router"})
	router := startWeir(t, t.TempDir(), routerArgs(file, 2, "ketama",
		"--remote-write.client-tls-cert="+routerCert, "--remote-write.client-tls-key="+routerKey,
		"--remote-write.client-tls-ca="+ca.File,
		"--remote-write.server-tls-cert="+routerCert, "--remote-write.server-tls-key="+routerKey,
		"--remote-write.server-tls-client-ca="+ca.File, "--receive.tenant-certificate-field=organization")...)
	rogue := startWeir(t, t.TempDir(), routerArgs(file, 2, "ketama", "--remote-write.client-tls-ca="+ca.File)...)

	senderCert, senderKey := ca.Issue(t, dir, "sender", testutil.CertOptions{CommonName: "prometheus", Organization: []string{"team-a"}})
	sender := ca.HTTPClient(t, senderCert, senderKey)
	url := "https://" + router.RemoteWriteAddr + "/api/v1/receive"
	l := newRingLoad(50)
	const requests = 5
	for k := range requests {
		r, err := post(sender, url, encodeWrite(t, l.request(k)), rwHeaders())
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, r.Code, "request %d: %s", k, r)
	}
	r, err := post(sender, url, encodeWrite(t, l.request(requests)), rwHeaders("THANOS-TENANT", "team-b"))
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, r.Code, "a header naming another tenant: %s", r)
	_, err = post(ca.HTTPClient(t, "", ""), url, encodeWrite(t, l.request(requests)), rwHeaders())
	require.Error(t, err, "a sender without a client certificate got through the handshake")

	r, err = post(rogue.client, rogue.RemoteWriteURL, encodeWrite(t, l.request(requests)), rwHeaders("THANOS-TENANT", "team-a"))
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, r.Code, "a router without a client certificate: %s", r)

	stopAll(append([]*weirNode{router, rogue}, ingesters...)...)
	ks := make([]int, requests)
	for k := range ks {
		ks[k] = k
	}
	for i, n := range ingesters {
		require.Equal(t, []string{"team-a"}, tenantDirs(t, n.Dir), "ingester %d", i)
		require.Equal(t, l.want(ks), readNode(t, n, "team-a"), "ingester %d", i)
	}
}
