package receive

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// DefaultLimiterWait is the default of LimiterConfig.MaxWait.
const DefaultLimiterWait = 5 * time.Second

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Slots is the number of writes decoded and applied at once (zero: GOMAXPROCS, one per core the
	// Go runtime uses: the work under a slot is CPU — decoding, validation, hashing, TSDB append).
	Slots int
	// MaxWait bounds how long a write waits for a slot, within its own deadline (zero:
	// DefaultLimiterWait). A write that gets none in time is answered 503 with Retry-After.
	MaxWait time.Duration
}

// Limiter bounds the remote-write work a node does at once, so that under overload requests queue
// for a CPU slot (briefly, then 503: the sender backs off and retries) instead of all being decoded
// at the same time — each holding its decoded request in memory and taking longer as more arrive,
// until every one of them misses its deadline. The remote-write handler and the ingest service of
// a node share one Limiter. What a slot covers: decoding, validation and the local write; a router
// gives its slot back before it waits for the other replicas (see releaseSlot). Reading a body from
// the network is not covered: a slow client must not hold a slot.
type Limiter struct {
	slots   chan struct{}
	maxWait time.Duration
	waiting prometheus.Gauge
	inUse   prometheus.Gauge
	refused prometheus.Counter
}

// NewLimiter returns a limiter; its metrics are registered on reg.
func NewLimiter(cfg LimiterConfig, reg prometheus.Registerer) (*Limiter, error) {
	if cfg.Slots < 0 || cfg.MaxWait < 0 {
		return nil, errors.New("limiter slots and wait must not be negative")
	}
	if reg == nil {
		return nil, errors.New("limiter needs a registerer")
	}
	if cfg.Slots == 0 {
		cfg.Slots = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultLimiterWait
	}
	f := promauto.With(reg)
	f.NewGauge(prometheus.GaugeOpts{
		Name: "weir_write_slots",
		Help: "Writes (remote write and node-to-node) that may be decoded and applied at once.",
	}).Set(float64(cfg.Slots))
	return &Limiter{
		slots:   make(chan struct{}, cfg.Slots),
		maxWait: cfg.MaxWait,
		waiting: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_write_slots_waiting",
			Help: "Writes waiting for a slot.",
		}),
		inUse: f.NewGauge(prometheus.GaugeOpts{
			Name: "weir_write_slots_in_use",
			Help: "Writes holding a slot.",
		}),
		refused: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_write_slots_refused_total",
			Help: "Writes answered as unavailable (503, or gRPC Unavailable) because no slot came free in time.",
		}),
	}, nil
}

// Slot is a held slot of a Limiter. Release gives it back; later calls do nothing, so that the
// router may release early and the handler release again when done. A nil *Slot is valid and
// holds nothing.
type Slot struct {
	l    *Limiter
	done atomic.Bool
}

// Release gives the slot back (once).
func (s *Slot) Release() {
	if s == nil || !s.done.CompareAndSwap(false, true) {
		return
	}
	<-s.l.slots
	s.l.inUse.Dec()
}

// Acquire waits for a slot until one is free, ctx is done or the limiter's wait passed, whichever
// comes first. A nil Limiter hands out nil slots at once. The error is ClassUnavailable.
func (l *Limiter) Acquire(ctx context.Context) (*Slot, error) {
	if l == nil {
		return nil, nil
	}
	select {
	case l.slots <- struct{}{}:
		l.inUse.Inc()
		return &Slot{l: l}, nil
	default:
	}
	l.waiting.Inc()
	defer l.waiting.Dec()
	t := time.NewTimer(l.maxWait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		l.inUse.Inc()
		return &Slot{l: l}, nil
	case <-ctx.Done():
		l.refused.Inc()
		return nil, &Error{Class: ClassUnavailable, Err: fmt.Errorf("overloaded: gave up waiting for one of %d write slots: %w", cap(l.slots), ctx.Err())}
	case <-t.C:
		l.refused.Inc()
		return nil, errorf(ClassUnavailable, "overloaded: no write slot came free in %s (%d slots, all busy); retry later", l.maxWait, cap(l.slots))
	}
}

type slotKey struct{}

// withSlot returns ctx carrying s, for releaseSlot further down.
func withSlot(ctx context.Context, s *Slot) context.Context {
	if s == nil {
		return ctx
	}
	return context.WithValue(ctx, slotKey{}, s)
}

// releaseSlot gives back the slot ctx carries, if any: the caller is done with CPU work and is about
// to wait (a router for the other replicas).
func releaseSlot(ctx context.Context) {
	if s, ok := ctx.Value(slotKey{}).(*Slot); ok {
		s.Release()
	}
}

// Validate reports the first configuration error, naming its flag.
func (c LimiterConfig) Validate() error {
	if c.MaxWait <= 0 {
		return fmt.Errorf("--receive.write-slot-wait: %s must be positive", c.MaxWait)
	}
	return nil
}
