package tenant

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/weir-metrics/weir/write"
)

// SeriesLimits returns a tenant's series limits as this ingester's shares (limits.IngesterShare of
// the whole-cluster figures): active series in its head, and per metric name; 0 is no limit. It is
// called only when a series is about to be created, never for a sample of an existing series, and
// must be safe for concurrent use.
type SeriesLimits func(tenantID string) (headSeries, perMetric int64)

// ManagerOption sets an optional dependency of a Manager.
type ManagerOption func(*Manager)

// WithSeriesLimits makes the Manager refuse new series of a tenant over its limits (nil: none).
func WithSeriesLimits(f SeriesLimits) ManagerOption {
	return func(m *Manager) { m.seriesLimits = f }
}

// ErrSeriesLimit is wrapped by the refusal of a new series over a tenant's series limit: a
// permanent, per-series rejection (write.ReasonHeadSeriesLimit or write.ReasonSeriesPerMetricLimit),
// answered as a partial write while the tenant's existing series keep being written.
var ErrSeriesLimit = errors.New("series limit")

// seriesLimitError is a new series refused by a series limit.
type seriesLimitError struct {
	reason string // write.ReasonHeadSeriesLimit or write.ReasonSeriesPerMetricLimit
	msg    string
}

func (e *seriesLimitError) Error() string        { return e.msg }
func (e *seriesLimitError) Is(target error) bool { return target == ErrSeriesLimit }

// seriesTracker is a tenant TSDB's tsdb.SeriesLifecycleCallback: the head asks it before it creates
// a series (PreCreation), which is where series limits are enforced — the cost falls on new series
// only, and a refused series never enters the head. It counts series per metric name (PostCreation,
// PostDeletion on head GC); the head's own count is the active series. Nothing is refused while the
// TSDB replays its WAL: what was acknowledged comes back whatever the limits are now.
type seriesTracker struct {
	tenant string
	limits SeriesLimits
	// head is the TSDB's count of head series, set once it is open; until then nothing is enforced.
	head atomic.Pointer[func() uint64]

	refusedHead      prometheus.Counter
	refusedPerMetric prometheus.Counter

	mu        sync.Mutex
	perMetric map[string]int64
}

// newSeriesTracker returns the tracker of tenantID's TSDB; its metrics go to reg, the tenant's own
// registerer (labelled with the tenant, unregistered when the TSDB closes).
func newSeriesTracker(tenantID string, limits SeriesLimits, reg prometheus.Registerer) *seriesTracker {
	t := &seriesTracker{tenant: tenantID, limits: limits, perMetric: map[string]int64{}}
	f := promauto.With(reg)
	refused := f.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_tenant_series_refused_total",
		Help: "Attempts to create a series refused by the tenant's series limits on this ingester, by limit (each refused sample of a new series is one attempt).",
	}, []string{"limit"})
	t.refusedHead = refused.WithLabelValues(write.ReasonHeadSeriesLimit)
	t.refusedPerMetric = refused.WithLabelValues(write.ReasonSeriesPerMetricLimit)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_tenant_head_series_limit",
		Help: "This ingester's share of the tenant's head_series_limit (0: none); compare with prometheus_tsdb_head_series.",
	}, func() float64 { h, _ := t.limitsNow(); return float64(h) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_tenant_series_per_metric_limit",
		Help: "This ingester's share of the tenant's series_per_metric_limit (0: none).",
	}, func() float64 { _, p := t.limitsNow(); return float64(p) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_tenant_series_per_metric_max",
		Help: "Active series of the tenant's metric name with the most of them on this ingester.",
	}, func() float64 { _, most := t.metrics(); return float64(most) })
	return t
}

func (t *seriesTracker) limitsNow() (head, perMetric int64) {
	if t.limits == nil {
		return 0, 0
	}
	return t.limits(t.tenant)
}

// enforce starts enforcing the limits, with headSeries as the count of active series.
func (t *seriesTracker) enforce(headSeries func() uint64) { t.head.Store(&headSeries) }

// PreCreation refuses a new series over the tenant's limits.
func (t *seriesTracker) PreCreation(lset labels.Labels) error {
	head := t.head.Load()
	if head == nil || t.limits == nil {
		return nil
	}
	maxHead, maxPerMetric := t.limits(t.tenant)
	if maxHead > 0 {
		if n := (*head)(); n >= uint64(maxHead) {
			t.refusedHead.Inc()
			return &seriesLimitError{reason: write.ReasonHeadSeriesLimit, msg: fmt.Sprintf(
				"new series refused: tenant %s has %d active series on this ingester, its share of the tenant's head_series_limit is %d (existing series are still written)",
				t.tenant, n, maxHead)}
		}
	}
	if maxPerMetric > 0 {
		name := lset.Get(model.MetricNameLabel)
		t.mu.Lock()
		n := t.perMetric[name]
		t.mu.Unlock()
		if n >= maxPerMetric {
			t.refusedPerMetric.Inc()
			return &seriesLimitError{reason: write.ReasonSeriesPerMetricLimit, msg: fmt.Sprintf(
				"new series refused: tenant %s has %d active series of metric %q on this ingester, its share of the tenant's series_per_metric_limit is %d (existing series are still written)",
				t.tenant, n, name, maxPerMetric)}
		}
	}
	return nil
}

// PostCreation counts a series created (by a write or the WAL replay).
func (t *seriesTracker) PostCreation(lset labels.Labels) {
	name := lset.Get(model.MetricNameLabel)
	t.mu.Lock()
	if _, ok := t.perMetric[name]; !ok {
		name = strings.Clone(name) // a new key must not pin the series' labels
	}
	t.perMetric[name]++
	t.mu.Unlock()
}

// PostDeletion uncounts series removed from the head.
func (t *seriesTracker) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, lset := range deleted {
		name := lset.Get(model.MetricNameLabel)
		if n := t.perMetric[name] - 1; n > 0 {
			t.perMetric[name] = n
		} else {
			delete(t.perMetric, name)
		}
	}
}

// metrics returns the number of metric names with active series and the most series of one of them.
func (t *seriesTracker) metrics() (names int, most int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range t.perMetric {
		most = max(most, n)
	}
	return len(t.perMetric), most
}

// SeriesUsage is a tenant's series on this ingester against its series limits (shares).
type SeriesUsage struct {
	HeadSeries      uint64 `json:"head_series"`
	HeadSeriesLimit int64  `json:"head_series_limit_share"`
	MetricNames     int    `json:"metric_names"`
	MaxPerMetric    int64  `json:"max_series_per_metric"`
	PerMetricLimit  int64  `json:"series_per_metric_limit_share"`
}

// SeriesUsage returns the series usage of every tenant whose TSDB is open.
func (m *Manager) SeriesUsage() map[string]SeriesUsage {
	out := map[string]SeriesUsage{}
	for _, d := range m.openDBs() {
		if d.series == nil {
			continue
		}
		u := SeriesUsage{HeadSeries: d.tsdb.Head().NumSeries()}
		u.MetricNames, u.MaxPerMetric = d.series.metrics()
		u.HeadSeriesLimit, u.PerMetricLimit = d.series.limitsNow()
		out[d.id] = u
	}
	return out
}
