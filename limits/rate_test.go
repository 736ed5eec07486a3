package limits

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	routers := 2
	r := NewRateLimiter(func(string) int { return routers })
	r.now = func() time.Time { return now }
	l := &Limits{IngestionRate: 200, IngestionBurst: 100} // 100/s on each of two routers

	ok, _ := r.Allow("a", l, 100)
	require.True(t, ok, "a full bucket takes a burst")
	ok, retry := r.Allow("a", l, 50)
	require.False(t, ok)
	require.Equal(t, time.Second, retry, "50 tokens at 100/s: within a second")
	ok, _ = r.Allow("b", l, 100)
	require.True(t, ok, "tenants have their own buckets")

	now = now.Add(500 * time.Millisecond)
	ok, _ = r.Allow("a", l, 50)
	require.True(t, ok, "refilled at the router's share of the rate")

	// A request larger than the bucket passes once the bucket is full, and only then.
	ok, retry = r.Allow("a", l, 1000)
	require.False(t, ok)
	require.Equal(t, time.Second, retry)
	now = now.Add(time.Second)
	ok, _ = r.Allow("a", l, 1000)
	require.True(t, ok)

	// A change of the limits (or of the routers) applies at the next request.
	l2 := &Limits{IngestionRate: 2000, IngestionBurst: 10}
	now = now.Add(time.Hour)
	ok, _ = r.Allow("a", l2, 10)
	require.True(t, ok)
	ok, retry = r.Allow("a", l2, 10)
	require.False(t, ok)
	require.Equal(t, time.Second, retry)
	routers = 1
	now = now.Add(5 * time.Millisecond) // 5 tokens at the old share (1000/s), then 2000/s
	ok, _ = r.Allow("a", l2, 10)
	require.False(t, ok)
	now = now.Add(3 * time.Millisecond) // 6 more at 2000/s
	ok, _ = r.Allow("a", l2, 10)
	require.True(t, ok)

	// Long waits are said as such.
	slow := &Limits{IngestionRate: 1, IngestionBurst: 100}
	ok, _ = r.Allow("c", slow, 100)
	require.True(t, ok)
	ok, retry = r.Allow("c", slow, 30)
	require.False(t, ok)
	require.Equal(t, 30*time.Second, retry)

	ok, _ = r.Allow("d", &Limits{}, 1<<30)
	require.True(t, ok, "no rate limit")
	require.Equal(t, -1.0, r.Tokens("d"), "and no bucket for it")
}

func BenchmarkRateLimiterAllow(b *testing.B) {
	r := NewRateLimiter(nil)
	l := &Limits{IngestionRate: 1e12, IngestionBurst: 1e9}
	b.ReportAllocs()
	for b.Loop() {
		r.Allow("tenant", l, 2000)
	}
}
