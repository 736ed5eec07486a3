package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLocalRingScript runs the README's three-node example (deploy/local/ring.sh, `make run-ring`) as
// a user would, on shifted ports: all three nodes become ready and agree on the ring, a write through
// one node is acknowledged by a quorum and lands on all three, and SIGTERM to the script stops them
// cleanly.
func TestLocalRingScript(t *testing.T) {
	s := startLocalScript(t, "ring.sh", []int{19291, 10901, 10902}, false)
	var hashes [3]string
	for i := range 3 {
		ops := s.url(10902, i)
		waitFor(t, 60*time.Second, "node "+strconv.Itoa(i)+" ready", func() error {
			code, _, err := httpGet(s.client, ops+"/-/ready")
			if err != nil {
				return err
			}
			if code != 200 {
				return fmt.Errorf("status %d", code)
			}
			return nil
		})
		_, body, err := httpGet(s.client, ops+"/api/v1/status/ring")
		require.NoError(t, err)
		var st struct {
			ConfigHash string `json:"config_hash"`
			Quorum     int    `json:"quorum"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &st), body)
		require.Equal(t, 2, st.Quorum)
		hashes[i] = st.ConfigHash
	}
	require.NotEmpty(t, hashes[0])
	require.Equal(t, []string{hashes[0], hashes[0]}, hashes[1:], "every node follows the same ring")

	ts := s.writeOne(t, 0, "ring_script")
	s.stopAndCheck(t, "ring_script", ts)
}
