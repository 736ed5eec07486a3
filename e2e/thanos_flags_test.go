package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// TestRingThanosArguments: a ring started with the arguments a Thanos Receive ring takes. The router
// gets its hashrings inline (--receive.hashrings), Thanos' hidden forward-timeout name and flags that
// change nothing in Weir; it routes every write to a quorum of the two ingesters, and names each flag
// without effect once in its log.
func TestRingThanosArguments(t *testing.T) {
	t.Parallel()
	grpcAddrs := testutil.LoopbackAddrs(t, 2)
	ingesters := make([]*weirNode, len(grpcAddrs))
	for i, addr := range grpcAddrs {
		ingesters[i] = startIngester(t, addr, "--no-tsdb.wal-compression", "--tsdb.min-block-duration=2h", "--tsdb.max-block-duration", "2h")
	}
	router := startWeir(t, t.TempDir(),
		"--receive.hashrings="+string(hashringsJSON(t, grpcAddrs...)),
		"--receive.hashrings-algorithm=ketama", "--receive.replication-factor=2", "--receive-forward-timeout=3s",
		"--receive.replication-protocol=capnproto", "--hash-func=SHA256", "--enable-feature=metric-names-filter")

	st := getRingStatus(t, router)
	require.ElementsMatch(t, grpcAddrs, st.endpoints())
	require.Equal(t, uint64(1), st.Version)

	l := newRingLoad(50)
	const requests = 10
	require.NoError(t, sendAll(l, []string{"thanos-args"}, requests, func(int, int) *weirNode { return router }))
	stopAll(append([]*weirNode{router}, ingesters...)...)

	acked, sent := l.ackedRequests("thanos-args")
	require.Len(t, acked, requests)
	require.Equal(t, requests, sent)
	stored := l.readAll(t, ingesters, "thanos-args")
	want := l.want(acked)
	for j := range ingesters {
		requireSameSeries(t, fmt.Sprintf("ingester %d", j), want, stored[j])
	}

	for _, flag := range []string{"receive.replication-protocol", "hash-func", "enable-feature"} {
		require.Equal(t, 1, strings.Count(router.Log(), "--"+flag+" is accepted for compatibility with Thanos Receive and has no effect"), "--%s", flag)
	}
	require.Equal(t, 1, strings.Count(ingesters[0].Log(), "--tsdb.min-block-duration is accepted for compatibility"))
}

// TestRingSplitTenantLabel: with Thanos' --receive.split-tenant-label-name on the router, one request
// carrying series of three tenants (two named by the label, one by the header) is stored in three
// tenants on both ingesters (RF=2), each series without the label.
func TestRingSplitTenantLabel(t *testing.T) {
	t.Parallel()
	grpcAddrs := testutil.LoopbackAddrs(t, 2)
	ingesters := startIngesters(t, grpcAddrs)
	router := startWeir(t, t.TempDir(), "--receive.hashrings="+string(hashringsJSON(t, grpcAddrs...)),
		"--receive.replication-factor=2", "--receive.split-tenant-label-name=team")

	now := time.Now().UnixMilli()
	series := func(job, team string) prompb.TimeSeries {
		ls := []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: job}}
		if team != "" {
			ls = append(ls, prompb.Label{Name: "team", Value: team})
		}
		return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}
	}
	resp := router.Write(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("a", "alpha"), series("b", ""), series("c", "beta"), series("d", "alpha"),
	}}, "THANOS-TENANT", "shared")
	require.Equal(t, http.StatusNoContent, resp.Code, resp.Body)
	stopAll(append([]*weirNode{router}, ingesters...)...)

	want := map[string][]string{
		"alpha":  {`{__name__="up", job="a"}`, `{__name__="up", job="d"}`},
		"beta":   {`{__name__="up", job="c"}`},
		"shared": {`{__name__="up", job="b"}`},
	}
	for i, ing := range ingesters {
		require.Equal(t, []string{"alpha", "beta", "shared"}, tenantDirs(t, ing.Dir), "ingester %d", i)
		for tn, keys := range want {
			got := readTenant(t, ing.Dir, tn)
			require.ElementsMatch(t, keys, slices.Collect(maps.Keys(got)), "ingester %d, tenant %s", i, tn)
		}
	}
}
