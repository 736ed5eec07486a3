//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sendMargin is how far before the highest timestamp Prometheus reports as sent a sample must be to
// count as surely sent: with one shard batches leave in WAL order, but scrapes of different targets
// are appended a little out of timestamp order.
const sendMargin = 5 * time.Second

// TestDockerRouterKilledPrometheusRetries kills the router a real Prometheus writes to with SIGKILL in
// the middle of a request, and starts it again on the same address:
//
//	Prometheus (host) ──remote write, 127.0.0.1:fixed──▶ weir-router ──gRPC──▶ weir-ingester-0..2 (RF=3)
//	   scrapes itself and the three ingesters every second       ↑ docker kill -s KILL, docker start
//
// To be sure a request is in flight at the kill, the ingesters are frozen (docker pause) just before
// it: the router's forwards hang, and it is killed once its in-flight gauge shows one; the ingesters
// are then unpaused and the router started. Prometheus retries what failed (the cut request, then
// refused connections). Afterwards everything in Prometheus' own TSDB up to a safe margin before the
// highest timestamp it reports as sent must be on at least 2 of the 3 ingesters, with identical values
// (resent duplicates are not loss); Prometheus failed no sample for good, and its log shows the request
// the kill cut (EOF or reset, not just refused connections).
func TestDockerRouterKilledPrometheusRetries(t *testing.T) {
	c := startDockerCluster(t, 3)
	router := startRouterContainer(t, c)
	var targets []string
	for _, nd := range c.nodes {
		_, ops := dockerPorts(t, nd.container)
		targets = append(targets, strings.TrimPrefix(ops, "http://"))
	}
	const tenantID = "team-prom"
	prom := startSenderPrometheus(t, router.url(), tenantID, targets)

	waitFor(t, 60*time.Second, "the router acknowledging Prometheus' writes", func() error {
		if v := router.acked(); v < 50 { // about ten seconds of traffic
			return fmt.Errorf("%g requests acknowledged", v)
		}
		return nil
	})
	// Freeze the ingesters (docker pause) so that the router's forwards hang, and kill it while it
	// holds Prometheus' request.
	pausedAt := time.Now()
	for _, nd := range c.nodes {
		dockerCmd(t, "pause", nd.container)
	}
	waitFor(t, 30*time.Second, "a forward in flight", func() error {
		if v := router.inFlight(); v < 1 {
			return fmt.Errorf("%g forwards in flight", v)
		}
		return nil
	})
	dockerCmd(t, "kill", "-s", "KILL", router.container)
	killedAt := time.Now()
	t.Logf("ingesters paused %s before the kill", killedAt.Sub(pausedAt).Round(time.Millisecond))
	for _, nd := range c.nodes {
		dockerCmd(t, "unpause", nd.container)
	}
	dockerCmd(t, "start", router.container)
	router.waitReady()
	readyAfter := time.Since(killedAt)
	waitFor(t, 60*time.Second, "the restarted router acknowledging writes", func() error {
		if v := router.acked(); v < 1 {
			return fmt.Errorf("%g requests acknowledged since the restart", v)
		}
		return nil
	})
	gap := time.Since(killedAt)
	t.Logf("router killed, ready again after %s, acknowledging again after %s", readyAfter.Round(time.Millisecond), gap.Round(time.Millisecond))

	// Wait until Prometheus has sent what it scraped ten seconds after the restart.
	mark := time.Now().Add(10 * time.Second)
	waitFor(t, 90*time.Second, "Prometheus caught up past the restart", func() error {
		if v := prom.metric(t, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"); v < float64(mark.Unix()) {
			return fmt.Errorf("highest sent timestamp %g, waiting for %d", v, mark.Unix())
		}
		return nil
	})
	failed := prom.metric(t, "prometheus_remote_storage_samples_failed_total")
	retried := prom.metric(t, "prometheus_remote_storage_samples_retried_total")
	sent := prom.metric(t, "prometheus_remote_storage_samples_total")
	require.Zero(t, failed, "samples Prometheus dropped for good")
	require.Positive(t, retried, "Prometheus retried nothing: the router was not killed under traffic")

	prom.stop(t)
	cut := prom.cutRequests()
	require.Positive(t, cut, "no request of Prometheus was cut by the kill (EOF or reset in its log)")
	dockerCmd(t, "stop", "-t", "60", router.container)
	c.stopAll()
	cutoff := mark.Add(-sendMargin).UnixMilli()
	res := verifyPrometheusOnIngesters(t, c, readTenant(t, prom.dataDir, "tsdb"), tenantID, cutoff, quorumRF3)
	t.Logf("FIGURES router-kill: Prometheus samples sent %g, retried %g, failed %g; requests cut by the kill (reset/EOF in Prometheus' log) %d; router ready %s and acknowledging %s after SIGKILL; "+
		"verified %d samples of %d series up to %s before the mark: lost %d, diverging %d, copies %d of %d",
		sent, retried, failed, cut, readyAfter.Round(time.Millisecond), gap.Round(time.Millisecond),
		res.checked, res.series, sendMargin, res.lost, res.diverging, res.copies, 3*res.checked)
}

// promCheck is what verifyPrometheusOnIngesters found.
type promCheck struct {
	series, checked, lost, diverging, copies int
}

// verifyPrometheusOnIngesters checks every sample of Prometheus' TSDB (by series) up to cutoff (ms)
// against the ingesters' TSDBs of the tenant: on at least quorum of them, with the same value bits.
func verifyPrometheusOnIngesters(t *testing.T, c *dockerCluster, sent map[string][]sample, tenantID string, cutoff int64, quorum int) promCheck {
	t.Helper()
	stored := make([]map[string]map[int64]uint64, len(c.nodes))
	for i, nd := range c.nodes {
		stored[i] = map[string]map[int64]uint64{}
		for k, samples := range readTenant(t, nd.dataDir, tenantID) {
			m := make(map[int64]uint64, len(samples))
			for _, s := range samples {
				m[s.T] = math.Float64bits(s.V)
			}
			stored[i][k] = m
		}
	}
	var res promCheck
	var examples []string
	for k, samples := range sent {
		res.series++
		for _, s := range samples {
			if s.T > cutoff || s.H != "" {
				continue
			}
			res.checked++
			found := 0
			for i := range stored {
				v, ok := stored[i][k][s.T]
				switch {
				case !ok:
				case v == math.Float64bits(s.V):
					found++
				default:
					res.diverging++
				}
			}
			res.copies += found
			if found < quorum {
				res.lost++
				if len(examples) < 5 {
					examples = append(examples, fmt.Sprintf("%s@%d (%s) on %d ingester(s)", k, s.T, time.UnixMilli(s.T).UTC().Format(time.RFC3339Nano), found))
				}
			}
		}
	}
	require.Positive(t, res.checked, "no sample of Prometheus to verify")
	require.Zero(t, res.lost+res.diverging, "samples of Prometheus lost (%d) or diverging (%d); first: %s", res.lost, res.diverging, strings.Join(examples, "; "))
	return res
}
