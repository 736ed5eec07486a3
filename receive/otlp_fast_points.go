package receive

import (
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/protobuf/encoding/protowire"
)

// Data points of the fast path, appended as the translator appends them: same labels, same values
// (NoRecordedValue → StaleNaN), same timestamps (nanoseconds truncated to milliseconds), same order.

// otlpNoRecordedValue is the DataPointFlags bit FLAG_NO_RECORDED_VALUE.
const otlpNoRecordedValue = 1

// otlpFastPoint is what all data point types share.
type otlpFastPoint struct {
	start, t uint64
	flags    uint64
}

// millis converts as the translator does: int64(ns) / 1e6, truncating.
func millis(ns uint64) int64 { return int64(ns) / 1_000_000 }

// stale is v, or StaleNaN when the point has no recorded value.
func (p *otlpFastPoint) stale(v float64) float64 {
	if p.flags&otlpNoRecordedValue != 0 {
		return math.Float64frombits(value.StaleNaN)
	}
	return v
}

// common reads the fields every point type has: attributes (at attrNum), start time (2), time (3)
// and flags (at flagsNum). It reports handled false for other fields, ok false to decline.
func (d *otlpFastDecoder) common(p *otlpFastPoint, seen *fieldSet, f pbField, attrNum, flagsNum protowire.Number) (handled, ok bool) {
	switch {
	case f.num == attrNum && f.typ == protowire.BytesType:
		kv, ok := d.parseKeyValue(f.b)
		d.attrs = append(d.attrs, kv)
		return true, ok
	case (f.num == 2 || f.num == 3) && f.typ == protowire.Fixed64Type:
		if f.num == 2 {
			p.start = f.v
		} else {
			p.t = f.v
		}
		return true, seen.once(f.num)
	case f.num == flagsNum && f.typ == protowire.VarintType:
		p.flags = f.v
		return true, seen.once(f.num)
	}
	return false, true
}

// seenTime records the point's time for target_info; it declines times past int64, where the
// translator's conversions to milliseconds disagree.
func (d *otlpFastDecoder) seenTime(t uint64) bool {
	if t > math.MaxInt64 {
		return false
	}
	d.res.minT, d.res.maxT = min(d.res.minT, t), max(d.res.maxT, t)
	return true
}

// numberPoint appends a NumberDataPoint of a gauge or sum: attributes (7), as_double (4), as_int (6),
// exemplars (5) decline.
func (d *otlpFastDecoder) numberPoint(b []byte, opts *storage.AOptions) bool {
	d.attrs = d.attrs[:0]
	var p otlpFastPoint
	var seen fieldSet
	var v float64
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		if handled, ok := d.common(&p, &seen, f, 7, 8); !ok {
			return false
		} else if handled {
			continue
		}
		if f.typ != protowire.Fixed64Type || (f.num != 4 && f.num != 6) || !seen.once(4) {
			return false // a second value, or exemplars, or an unknown field
		}
		if f.num == 4 {
			v = math.Float64frombits(f.v)
		} else {
			v = float64(int64(f.v))
		}
	}
	if !d.seenTime(p.t) || !d.baseLabels() {
		return false
	}
	return d.append(d.labels(opts.MetricFamilyName, "", ""), &p, p.stale(v), opts)
}

// append appends one float point; the appender fails only for target_info past its bounds.
func (d *otlpFastDecoder) append(ls labels.Labels, p *otlpFastPoint, v float64, opts *storage.AOptions) bool {
	_, err := d.app.Append(0, ls, millis(p.start), millis(p.t), v, nil, nil, *opts)
	return err == nil
}

// histogramPoint appends a HistogramDataPoint as classic series: _sum (when it has one), _count,
// one _bucket per explicit bound and le="+Inf". An explicit +Inf bound (the translator warns) and
// exemplars decline.
func (d *otlpFastDecoder) histogramPoint(b []byte, opts *storage.AOptions) bool {
	d.attrs = d.attrs[:0]
	var p otlpFastPoint
	var seen fieldSet
	var count, sum uint64
	var hasSum bool
	var counts, bounds []byte
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		if handled, ok := d.common(&p, &seen, f, 9, 10); !ok {
			return false
		} else if handled {
			continue
		}
		switch {
		case !seen.once(f.num):
			return false
		case f.num == 4 && f.typ == protowire.Fixed64Type:
			count = f.v
		case f.num == 5 && f.typ == protowire.Fixed64Type:
			sum, hasSum = f.v, true
		case f.num == 6 && f.typ == protowire.BytesType:
			counts = f.b
		case f.num == 7 && f.typ == protowire.BytesType:
			bounds = f.b
		case (f.num == 11 || f.num == 12) && f.typ == protowire.Fixed64Type: // min, max
		default:
			return false
		}
	}
	nCounts, ok1 := packedFixed64(counts)
	nBounds, ok2 := packedFixed64(bounds)
	if !ok1 || !ok2 || !d.seenTime(p.t) || !d.baseLabels() {
		return false
	}
	name := opts.MetricFamilyName
	if hasSum && !d.append(d.labels(name+"_sum", "", ""), &p, p.stale(math.Float64frombits(sum)), opts) {
		return false
	}
	if !d.append(d.labels(name+"_count", "", ""), &p, p.stale(float64(count)), opts) {
		return false
	}
	var cumulative uint64
	for i := range min(nCounts, nBounds) {
		bound := math.Float64frombits(fixed64At(bounds, i))
		if math.IsInf(bound, 1) {
			return false
		}
		cumulative += fixed64At(counts, i)
		le := strconv.FormatFloat(bound, 'f', -1, 64)
		if !d.append(d.labels(name+"_bucket", "le", le), &p, p.stale(float64(cumulative)), opts) {
			return false
		}
	}
	return d.append(d.labels(name+"_bucket", "le", "+Inf"), &p, p.stale(float64(count)), opts)
}

// summaryPoint appends a SummaryDataPoint: _sum, _count and one series per quantile.
func (d *otlpFastDecoder) summaryPoint(b []byte, opts *storage.AOptions) bool {
	d.attrs = d.attrs[:0]
	var p otlpFastPoint
	var seen fieldSet
	var count, sum uint64
	var quantiles [][]byte
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		if handled, ok := d.common(&p, &seen, f, 7, 8); !ok {
			return false
		} else if handled {
			continue
		}
		switch {
		case f.num == 6 && f.typ == protowire.BytesType:
			quantiles = append(quantiles, f.b)
		case !seen.once(f.num):
			return false
		case f.num == 4 && f.typ == protowire.Fixed64Type:
			count = f.v
		case f.num == 5 && f.typ == protowire.Fixed64Type:
			sum = f.v
		default:
			return false
		}
	}
	if !d.seenTime(p.t) || !d.baseLabels() {
		return false
	}
	name := opts.MetricFamilyName
	if !d.append(d.labels(name+"_sum", "", ""), &p, p.stale(math.Float64frombits(sum)), opts) ||
		!d.append(d.labels(name+"_count", "", ""), &p, p.stale(float64(count)), opts) {
		return false
	}
	for _, qb := range quantiles {
		q, v, ok := parseQuantile(qb)
		if !ok {
			return false
		}
		if !d.append(d.labels(name, "quantile", strconv.FormatFloat(q, 'f', -1, 64)), &p, p.stale(v), opts) {
			return false
		}
	}
	return true
}

// parseQuantile reads a ValueAtQuantile: quantile (1), value (2).
func parseQuantile(b []byte) (q, v float64, ok bool) {
	var seen fieldSet
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.typ != protowire.Fixed64Type || (f.num != 1 && f.num != 2) || !seen.once(f.num) {
			return 0, 0, false
		}
		b = rest
		if f.num == 1 {
			q = math.Float64frombits(f.v)
		} else {
			v = math.Float64frombits(f.v)
		}
	}
	return q, v, true
}
