package receive

import (
	"math/bits"
	"sync"
)

// framePool is the mem.BufferPool of the ingest codec: message buffers in power-of-two size classes.
// Unlike gRPC's default pool it does not zero the buffers it hands out — the codec overwrites every
// byte it asks for (a request frame is written whole; a received message is copied in whole), and
// the zeroing was about 5% of a router's CPU in the RF=3 ring benchmark.
type framePool struct {
	classes [maxFrameClass + 1]sync.Pool
}

const (
	minFrameClass = 12 // 4 KiB: smaller buffers come from the heap
	maxFrameClass = 27 // 128 MiB: larger ones are not pooled
)

var ingestBuffers = &framePool{}

// Get returns a buffer of length n.
func (p *framePool) Get(n int) *[]byte {
	c := frameClass(n)
	if c > maxFrameClass {
		b := make([]byte, n)
		return &b
	}
	if c < minFrameClass {
		c = minFrameClass
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// Put returns a buffer that Get handed out; others (of a capacity that is no size class) are
// dropped.
func (p *framePool) Put(b *[]byte) {
	c := cap(*b)
	if c == 0 || c&(c-1) != 0 {
		return
	}
	if k := bits.TrailingZeros(uint(c)); k >= minFrameClass && k <= maxFrameClass {
		p.classes[k].Put(b)
	}
}

// frameClass is the size class of n bytes: the smallest k with 1<<k >= n.
func frameClass(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}
