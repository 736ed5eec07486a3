package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLocalGossipScript runs the README's memberlist example (deploy/local/gossip.sh) as a user
// would, on shifted ports: the three nodes find each other by gossip and agree on one ring of three
// ingesters, a write through one node is acknowledged and lands on all three (RF=3), and SIGTERM to
// the script stops them cleanly.
func TestLocalGossipScript(t *testing.T) {
	s := startLocalScript(t, "gossip.sh", []int{19291, 10901, 10902, 7946}, true)
	var want []string
	for i := range 3 {
		want = append(want, strings.TrimPrefix(s.url(10901, i), "http://"))
	}
	waitFor(t, 60*time.Second, "three nodes on one ring of three", func() error {
		var first string
		for i := range 3 {
			code, body, err := httpGet(s.client, s.url(10902, i)+"/api/v1/status/ring")
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("node %d: status %d", i, code)
			}
			var st memberlistStatus
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				return fmt.Errorf("node %d: %w: %s", i, err, body)
			}
			if got := slices.Sorted(slices.Values(st.endpoints())); !slices.Equal(got, want) {
				return fmt.Errorf("node %d: ring %v", i, got)
			}
			if i == 0 {
				first = st.ConfigHash
			} else if st.ConfigHash != first {
				return fmt.Errorf("node %d: config hash %s, node 0 %s", i, st.ConfigHash, first)
			}
		}
		return nil
	})

	ts := s.writeOne(t, 1, "gossip_script")
	s.stopAndCheck(t, "gossip_script", ts)
}
