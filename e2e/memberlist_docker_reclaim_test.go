//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A crashed ingester pod that Kubernetes recreates comes back under the same node name (the pod name)
// but usually with a new IP address. memberlist refuses an alive message whose address differs from
// the one it knows for the name ("conflicting address") unless the old entry is dead and
// DeadNodeReclaimTime (--memberlist.dead-node-reclaim-time) has passed since; with 0 (memberlist's
// default) the name is only free again once the dead entry was reaped (GossipToTheDeadTime, 30 s) and
// the new node happens to gossip its state again (push/pull, every 30 s).

// reclaimBound is how long after the restart the restarted member may take to be an active member
// at its new address on every node: dead detection (about 6 s), the reclaim time (5 s by default)
// and two join retries (2 s each), with a generous margin.
const reclaimBound = 20 * time.Second

// gossipMember is a member as /api/v1/status/ring lists it (memberlist mode), with its gossip
// address, which memberlistStatus does not decode.
type gossipMember struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   string `json:"state"`
	InRing  bool   `json:"in_ring"`
}

// gossipMembersOf fetches the members nd's /api/v1/status/ring lists.
func gossipMembersOf(nd *dockerNode) ([]gossipMember, error) {
	code, body, err := httpGet(http.DefaultClient, nd.ops+"/api/v1/status/ring")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: /api/v1/status/ring answered %d: %s", nd.host, code, body)
	}
	var st struct {
		Members []gossipMember `json:"members"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return nil, fmt.Errorf("%s: /api/v1/status/ring: %w: %s", nd.host, err, body)
	}
	return st.Members, nil
}

// memberAs is how nd sees the member named name (found false: not listed).
func memberAs(nd *dockerNode, name string) (m gossipMember, found bool, err error) {
	ms, err := gossipMembersOf(nd)
	if err != nil {
		return m, false, err
	}
	for _, m := range ms {
		if m.Name == name {
			return m, true, nil
		}
	}
	return m, false, nil
}

// containerIP is the container's address in the cluster's network (empty while it is stopped).
func (c *dockerCluster) containerIP(nd *dockerNode) string {
	c.t.Helper()
	return strings.TrimSpace(dockerCmd(c.t, "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", c.network), nd.container))
}

// restartOnNewAddress SIGKILLs nd and starts it again (same container: same name, network alias and
// data directory) with another IP address, as a recreated pod gets one. Docker hands a started
// container the lowest free address of the network, which is the one the killed container just gave
// back; a placeholder container started in between takes it. It returns when the start was issued,
// and the old and new addresses.
func (c *dockerCluster) restartOnNewAddress(nd *dockerNode) (startedAt time.Time, oldIP, newIP string) {
	c.t.Helper()
	oldIP = c.containerIP(nd)
	dockerCmd(c.t, "kill", "-s", "KILL", nd.container)
	squatter := nd.container + "-squatter"
	c.t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", "-v", squatter).Run() })
	dockerCmd(c.t, "run", "-d", "--name", squatter, "--network", c.network, c.image)
	startedAt = time.Now()
	dockerCmd(c.t, "start", nd.container)
	newIP = c.containerIP(nd)
	// The new address is taken: the placeholder can go (a recreated pod's old address is free again
	// too).
	dockerCmd(c.t, "rm", "-f", "-v", squatter)
	c.waitReady(nd)
	return startedAt, oldIP, newIP
}

// TestDockerMemberlistReclaim: three ingesters that route (gossip, RF=3) under steady load through
// weir-ingester-0; weir-ingester-2 is SIGKILLed and started again under the same name with a new IP
// address. Within reclaimBound of its start, every node (its own too) must list it as an active
// member at its new gossip address, in the ring; writes sent to it directly must be acknowledged
// afterwards, weir-ingester-0 must forward to it again, and nothing acknowledged may be lost.
// The figures: when the others saw it dead, when each node took the new address, and the failed
// requests of both senders.
func TestDockerMemberlistReclaim(t *testing.T) {
	c := startDockerClusterWith(t, clusterOptions{ingesters: 3, memberlist: true})
	victim := c.nodes[2]
	others := c.nodes[:2]
	l := startDockerLoad(t, c, 3000)
	l.waitAcked(t, 20, 30*time.Second)

	killAt := time.Now()
	startedAt, oldIP, newIP := c.restartOnNewAddress(victim)
	require.NotEmpty(t, newIP)
	require.NotEqual(t, oldIP, newIP, "the restarted container kept its address: the scenario needs a new one")
	restartTook := startedAt.Sub(killAt)
	newAddr := net.JoinHostPort(newIP, "7946")

	// Writes sent to the restarted node itself, from the moment it is ready: a router that is a
	// member but not yet accepted by the others.
	p, u := newStatusProxy(t, c.remoteWrite(victim))
	direct := startBenchWith(t, u, benchOptions{rate: 1000, labelsPerSeries: 9})

	// Watch every node's view of the victim until all list it active at its new address, in the
	// ring: when each did first, and when weir-ingester-0 first saw it dead.
	var deadSeen time.Duration = -1
	accepted := map[string]time.Duration{}
	var lastViews []string
	deadline := startedAt.Add(120 * time.Second)
	for len(accepted) < len(c.nodes) {
		require.True(t, time.Now().Before(deadline), "the restarted member is not active at %s on every node within 120s: %v", newAddr, lastViews)
		lastViews = lastViews[:0]
		for _, nd := range c.nodes {
			if _, ok := accepted[nd.host]; ok {
				continue
			}
			m, found, err := memberAs(nd, victim.host)
			switch {
			case err != nil:
				lastViews = append(lastViews, err.Error())
			case !found:
				lastViews = append(lastViews, nd.host+": not listed")
			default:
				lastViews = append(lastViews, fmt.Sprintf("%s: %s at %s, in ring %t", nd.host, m.State, m.Address, m.InRing))
				if nd == others[0] && m.State == "dead" && deadSeen < 0 {
					deadSeen = time.Since(killAt)
				}
				if m.State == "active" && m.Address == newAddr && m.InRing {
					accepted[nd.host] = time.Since(startedAt)
				}
			}
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	var rejoined time.Duration
	for _, d := range accepted {
		rejoined = max(rejoined, d)
	}
	t.Logf("%s SIGKILLed and started again on %s (was %s) %s later; weir-ingester-0 saw it dead %s after the kill (-1ns: never); active at the new address on %v after the start",
		victim.host, newIP, oldIP, restartTook.Round(time.Millisecond), deadSeen.Round(time.Millisecond), accepted)
	c.waitRing(c.nodes, c.endpoints(c.nodes), 30*time.Second)
	rejoinedAt := time.Now()

	// After the rejoin: the restarted node takes writes, and the entry node forwards to it.
	direct.waitAcked(t, 20, 30*time.Second)
	c.waitForwarding(others[0], victim, 30*time.Second)
	l.waitAcked(t, 20, 30*time.Second)
	directAfter := 0
	for _, n := range failedOf(p, rejoinedAt, time.Now()) {
		directAfter += n
	}
	directDuring := failedOf(p, startedAt, rejoinedAt)

	dr := direct.stop(t)
	f := l.stop(t)
	c.stopAll()
	res := verifyQuorumLogs(t, c, quorumRF3, append(l.ackLogs(), direct.ackLog)...)
	dn, dByStatus := non2xx(dr)
	t.Logf("FIGURES memberlist-reclaim: %s restarted %s after SIGKILL with a new address (%s → %s), seen dead by weir-ingester-0 %s after the kill, active at the new address on every node %s after its start (per node %v); load through weir-ingester-0: %s; writes sent to the restarted node: %d requests, %d not 2xx [%s] (before the rejoin %v, after it %d); ack logs %d samples, replicas found %d, samples lost %d",
		victim.host, restartTook.Round(time.Millisecond), oldIP, newIP, deadSeen.Round(time.Millisecond), rejoined.Round(time.Millisecond), accepted,
		f, dr.RequestsSent, dn, dByStatus, directDuring, directAfter, res.acked, res.replicas, res.lost)
	// Asserted after the figures, which show memberlist's default (0) too when run against an image
	// without the flag.
	require.Less(t, rejoined, reclaimBound, "the restarted member took %s to be active at its new address on every node", rejoined)
	require.Zero(t, directAfter, "writes sent to the restarted node failed after it rejoined")
}

// failedOf counts p's requests sent between from and to that failed, by status ("transport": no
// answer).
func failedOf(p *statusProxy, from, to time.Time) map[string]int {
	l := &dockerLoad{proxies: []*statusProxy{p}}
	return l.failedBetween(from, to)
}
