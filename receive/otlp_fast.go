package receive

import (
	"context"
	"math"
	"sync"

	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP fast path: a protobuf ExportMetricsServiceRequest goes straight from the body into the
// otlpAppender, without pdata and without Prometheus' translator, which together cost most of the
// CPU of an OTLP request (building a pdata tree of small objects, then labels through builders).
//
// It covers what senders send nearly always: cumulative sums, gauges, explicit-bucket histograms as
// classic series, summaries; string, bool and int attributes; job/instance from the service
// attributes, promoted resource attributes and target_info; the default translation strategy. For
// anything else — JSON, exponential histograms, exemplars, delta or unspecified temporality, other
// strategies, NHCB, label names that collide or would be reserved, a metric without points, a
// target_info span the appender bounds, an unknown field — it declines the whole request before
// anything is written, and the pdata+translator path runs as before. What it accepts it turns into
// exactly the appender calls the translator would make, in the same order (FuzzOTLPFastMatches).

// otlpFastConfig is the part of the OTLP configuration the fast path needs; nil when the
// configuration is one the fast path does not replicate.
type otlpFastConfig struct {
	promote    map[string]struct{}
	targetInfo bool
	metricName otlptranslator.MetricNamer
	labelName  otlptranslator.LabelNamer
}

func newOTLPFastConfig(c OTLPConfig) *otlpFastConfig {
	if otlptranslator.TranslationStrategyOption(c.TranslationStrategy) != otlptranslator.UnderscoreEscapingWithSuffixes || c.ConvertHistogramsToNHCB {
		return nil
	}
	promote := make(map[string]struct{}, len(c.PromoteResourceAttributes))
	for _, a := range c.PromoteResourceAttributes {
		promote[a] = struct{}{}
	}
	return &otlpFastConfig{
		promote:    promote,
		targetInfo: c.EnableTargetInfo,
		metricName: otlptranslator.MetricNamer{WithMetricSuffixes: true},
		labelName:  otlptranslator.LabelNamer{},
	}
}

// otlpFastDecoder is the state of one fast-path translation; pooled with its scratch space.
type otlpFastDecoder struct {
	cfg *otlpFastConfig
	app *otlpAppender
	ctx context.Context

	sb    labels.ScratchBuilder
	attrs []otlpKV       // the data point's attributes
	base  []labels.Label // the data point's labels before name, le and quantile
	res   otlpFastResource
	seen  map[targetInfoKey]struct{}
	names map[string]string // attribute key → label name (LabelNamer.Build), kept across requests
}

// otlpFastResource is what a ResourceMetrics contributes to its series.
type otlpFastResource struct {
	attrs          []otlpKV
	job, instance  string
	promoted       []labels.Label
	minT, maxT     uint64 // of its points' timestamps, minT > maxT while it has none
	identifyingCnt int
}

// targetInfoKey is a target_info sample of the request, which is written once per label set and time.
type targetInfoKey struct {
	hash uint64
	t    int64
}

// maxCachedLabelNames bounds the label-name cache of a pooled decoder.
const maxCachedLabelNames = 4096

var otlpFastPool = sync.Pool{New: func() any {
	return &otlpFastDecoder{sb: labels.NewScratchBuilder(16), seen: map[targetInfoKey]struct{}{}, names: map[string]string{}}
}}

// otlpFastTranslate appends the request in body to app and reports true, or declines with false,
// having perhaps appended part of it: app must then be replaced by an empty one.
func otlpFastTranslate(ctx context.Context, cfg *otlpFastConfig, body []byte, app *otlpAppender) bool {
	d := otlpFastPool.Get().(*otlpFastDecoder)
	d.cfg, d.app, d.ctx = cfg, app, ctx
	ok := d.request(body)
	d.cfg, d.app, d.ctx = nil, nil, nil
	// Drop every reference into the body, also beyond the lengths last used.
	clear(d.attrs[:cap(d.attrs)])
	clear(d.base[:cap(d.base)])
	clear(d.seen)
	d.res.reset()
	if len(d.names) > maxCachedLabelNames {
		clear(d.names)
	}
	otlpFastPool.Put(d)
	return ok
}

func (r *otlpFastResource) reset() {
	clear(r.attrs[:cap(r.attrs)])
	clear(r.promoted[:cap(r.promoted)])
	*r = otlpFastResource{attrs: r.attrs[:0], promoted: r.promoted[:0], minT: math.MaxUint64}
}

// request reads an ExportMetricsServiceRequest: resource_metrics (1) only.
func (d *otlpFastDecoder) request(b []byte) bool {
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.num != 1 || f.typ != protowire.BytesType {
			return false
		}
		b = rest
		if d.ctx.Err() != nil || !d.resourceMetrics(f.b) {
			return false
		}
	}
	return true
}

// resourceMetrics reads a ResourceMetrics: its resource (1) first, wherever it is, then its
// scope_metrics (2) in order, then writes its target_info.
func (d *otlpFastDecoder) resourceMetrics(b []byte) bool {
	d.res.reset()
	var resource []byte
	var seen fieldSet
	for rest := b; len(rest) > 0; {
		f, next, ok := nextField(rest)
		if !ok || f.typ != protowire.BytesType {
			return false
		}
		rest = next
		switch f.num {
		case 1, 3: // resource, schema_url
			if !seen.once(f.num) {
				return false
			}
			if f.num == 1 {
				resource = f.b
			}
		case 2: // scope_metrics, read below
		default:
			return false
		}
	}
	if !d.resource(resource) {
		return false
	}
	for len(b) > 0 {
		f, rest, _ := nextField(b)
		b = rest
		if f.num == 2 && !d.scopeMetrics(f.b) {
			return false
		}
	}
	return d.targetInfo()
}

// resource reads a Resource's attributes (1) and dropped_attributes_count (2), and derives job,
// instance and the promoted labels from them.
func (d *otlpFastDecoder) resource(b []byte) bool {
	var seen fieldSet
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			kv, ok := d.parseKeyValue(f.b)
			if !ok {
				return false
			}
			d.res.attrs = append(d.res.attrs, kv)
		case f.num == 2 && f.typ == protowire.VarintType && seen.once(f.num):
		default:
			return false
		}
	}
	return d.resourceLabels()
}

// scopeMetrics reads a ScopeMetrics: scope (1, checked and ignored: scope labels are off), metrics
// (2) in order, schema_url (3).
func (d *otlpFastDecoder) scopeMetrics(b []byte) bool {
	var seen fieldSet
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.typ != protowire.BytesType {
			return false
		}
		b = rest
		switch f.num {
		case 1:
			if !seen.once(f.num) || !d.checkScope(f.b) {
				return false
			}
		case 2:
			if d.ctx.Err() != nil || !d.metric(f.b) {
				return false
			}
		case 3:
			if !seen.once(f.num) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// checkScope checks an InstrumentationScope is one pdata decodes: name (1), version (2), attributes
// (3), dropped_attributes_count (4).
func (d *otlpFastDecoder) checkScope(b []byte) bool {
	var seen fieldSet
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		switch {
		case (f.num == 1 || f.num == 2) && f.typ == protowire.BytesType && seen.once(f.num):
		case f.num == 3 && f.typ == protowire.BytesType:
			if _, ok := d.parseKeyValue(f.b); !ok {
				return false
			}
		case f.num == 4 && f.typ == protowire.VarintType && seen.once(f.num):
		default:
			return false
		}
	}
	return true
}
