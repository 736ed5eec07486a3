//go:build race

package receive

// raceEnabled: the race detector makes sync.Pool drop items at random, so code that allocates
// nothing in a normal build (regexp machines pooled by model/relabel) may allocate.
const raceEnabled = true
