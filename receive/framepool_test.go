package receive

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFramePool(t *testing.T) {
	p := &framePool{}
	for _, n := range []int{0, 1, 4095, 4096, 4097, 1 << 20, 1<<20 + 1} {
		b := p.Get(n)
		require.Len(t, *b, n)
		require.GreaterOrEqual(t, cap(*b), max(n, 1<<minFrameClass))
		require.Zero(t, cap(*b)&(cap(*b)-1), "capacity %d is a size class", cap(*b))
		p.Put(b)
	}
	require.Greater(t, frameClass(1<<maxFrameClass+1), maxFrameClass) // allocated, not pooled
	odd := make([]byte, 5000)
	p.Put(&odd) // not a size class: dropped
	require.Equal(t, 13, frameClass(5000))
	require.Equal(t, 12, frameClass(4096))
	require.Equal(t, 0, frameClass(1))
}
