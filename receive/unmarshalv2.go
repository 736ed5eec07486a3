package receive

import (
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/weir-metrics/weir/write"
)

// This file decodes a Remote Write 2.0 io.prometheus.write.v2.Request into the shape the rest of the
// write path takes: a prompb.WriteRequest (labels resolved from the symbols table, as views of the
// decoded buffer like the 1.0 decoder's, in the same arenas) plus one write.SeriesExtra per series for
// what 1.0 cannot hold (metadata, start timestamps). A differential fuzz test holds it to the
// generated writev2.Request unmarshal (FuzzUnmarshalV2MatchesWritev2).
//
// Refusals beyond the generated code's: a label or exemplar reference outside the symbols table, an
// odd number of label references, a metadata type the specification does not define, a reference
// cut by the end of its packed field (which gogo reads on past), and fields 1 to 3 (reserved: a 1.0
// body sent as 2.0). Unknown fields are skipped.

// v2Scratch is what decoding a 2.0 request reuses, kept in the decoder.
type v2Scratch struct {
	symbols []string
	series  []span // each TimeSeries message, found in the first pass
	extras  []write.SeriesExtra
	starts  []int64  // arena of the extras' Starts
	hstarts []int64  // a series' histogram starts, until its samples' are known
	refs    []uint32 // a series' label references
	hist    writev2.Histogram
	ascii   bool // every symbol is ASCII (so valid UTF-8)
}

func (s *v2Scratch) reset() {
	clear(s.symbols) // they alias the decoded buffer
	s.symbols = truncate(s.symbols)
	s.series = truncate(s.series)
	clear(s.extras)
	s.extras = truncate(s.extras)
	s.starts = truncate(s.starts)
}

// unmarshalV2 decodes the protobuf Request b into wr and returns the series' extras; both are windows
// of d's arenas, valid until the next reset, whose strings alias b.
func (d *decoder) unmarshalV2(b []byte, wr *prompb.WriteRequest) ([]write.SeriesExtra, error) {
	*wr = prompb.WriteRequest{}
	v := &d.v2
	// Symbols may follow the series that refer to them: find both first.
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i, "Request")
		if err != nil {
			return nil, err
		}
		if field >= 1 && field <= 3 {
			return nil, fmt.Errorf("field %d is reserved in 2.0 (it is Remote Write 1.0's timeseries or metadata: is the Content-Type right?)", field)
		}
		if field != 4 && field != 5 {
			if i, err = skipField(b, i); err != nil {
				return nil, err
			}
			continue
		}
		if wt != wireBytes {
			return nil, wrongWireType(wt, [...]string{"Symbols", "Timeseries"}[field-4])
		}
		start, end, err := readLen(b, next)
		if err != nil {
			return nil, err
		}
		if field == 4 {
			v.symbols = append(v.symbols, str(b, start, end))
		} else {
			v.series = append(v.series, span{start, end})
		}
		i = end
	}
	// Every label string is a symbol: one check of the table spares validation checking each series.
	var a asciiCheck
	for _, sym := range v.symbols {
		a.add(sym)
	}
	v.ascii = a.ascii()
	for _, sp := range v.series {
		d.series = grow(d, d.series)
		v.extras = append(v.extras, write.SeriesExtra{})
		if err := d.timeSeriesV2(b[sp.start:sp.end], &d.series[len(d.series)-1], &v.extras[len(v.extras)-1]); err != nil {
			return nil, err
		}
	}
	wr.Timeseries = window(d.series, 0)
	return window(v.extras, 0), nil
}

func (d *decoder) timeSeriesV2(b []byte, ts *prompb.TimeSeries, ex *write.SeriesExtra) error {
	v := &d.v2
	l0, s0, e0, h0, st0 := len(d.labels), len(d.samples), len(d.exemplars), len(d.histograms), len(v.starts)
	v.refs, v.hstarts = v.refs[:0], v.hstarts[:0]
	anyStart := false
	// The defaults the wire leaves out: type unspecified, help and unit reference 0 (which the
	// specification makes the empty string, but is whatever a sender put first).
	ex.Metadata.Type = model.MetricTypeUnknown
	if len(v.symbols) > 0 {
		ex.Metadata.Help, ex.Metadata.Unit = v.symbols[0], v.symbols[0]
	}
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i, "TimeSeries")
		if err != nil {
			return err
		}
		if field == 1 { // labels_refs, packed or not
			if v.refs, i, err = appendRefs(v.refs, b, i, next, wt, "LabelsRefs"); err != nil {
				return err
			}
			continue
		}
		if field < 2 || field > 5 {
			if i, err = skipField(b, i); err != nil {
				return err
			}
			continue
		}
		if wt != wireBytes {
			return wrongWireType(wt, [...]string{"Samples", "Histograms", "Exemplars", "Metadata"}[field-2])
		}
		start, end, err := readLen(b, next)
		if err != nil {
			return err
		}
		sub := b[start:end]
		switch field {
		case 2:
			d.samples = grow(d, d.samples)
			var st int64
			if st, err = sampleV2(sub, &d.samples[len(d.samples)-1]); err == nil {
				v.starts = append(v.starts, st)
				anyStart = anyStart || st != 0
			}
		case 3:
			v.hist = writev2.Histogram{}
			if err = v.hist.Unmarshal(sub); err == nil {
				d.histograms = grow(d, d.histograms)
				d.histograms[len(d.histograms)-1] = histogramFromV2(&v.hist)
				v.hstarts = append(v.hstarts, v.hist.StartTimestamp)
				anyStart = anyStart || v.hist.StartTimestamp != 0
			}
		case 4:
			d.exemplars = grow(d, d.exemplars)
			err = d.exemplarV2(sub, &d.exemplars[len(d.exemplars)-1])
		case 5:
			err = d.metadataV2(sub, &ex.Metadata)
		}
		if err != nil {
			return err
		}
		i = end
	}
	if len(v.refs)%2 != 0 {
		return fmt.Errorf("odd number of label references (%d): they come in name/value pairs", len(v.refs))
	}
	for j := 0; j < len(v.refs); j += 2 {
		name, err := d.symbol(v.refs[j])
		if err != nil {
			return err
		}
		value, err := d.symbol(v.refs[j+1])
		if err != nil {
			return err
		}
		if len(d.labels) == cap(d.labels) {
			d.grew = true
		}
		d.labels = append(d.labels, prompb.Label{Name: name, Value: value})
	}
	if anyStart {
		v.starts = append(v.starts, v.hstarts...)
		ex.Starts = v.starts[st0:len(v.starts):len(v.starts)]
	} else {
		v.starts = v.starts[:st0]
	}
	*ts = prompb.TimeSeries{
		Labels:     window(d.labels, l0),
		Samples:    window(d.samples, s0),
		Exemplars:  window(d.exemplars, e0),
		Histograms: window(d.histograms, h0),
	}
	return nil
}

// symbol resolves a reference into the symbols table.
func (d *decoder) symbol(ref uint32) (string, error) {
	if int(ref) >= len(d.v2.symbols) {
		return "", fmt.Errorf("symbol reference %d outside the symbols table of %d strings", ref, len(d.v2.symbols))
	}
	return d.v2.symbols[ref], nil
}

// appendRefs appends the uint32 references of a repeated field at b[i:] (its tag read up to next)
// to refs, packed or one at a time, as protobuf allows; it returns where the field ends.
func appendRefs(refs []uint32, b []byte, i, next, wt int, name string) ([]uint32, int, error) {
	switch wt {
	case wireVarint:
		x, end, err := uvarint(b, next)
		return append(refs, uint32(x)), end, err
	case wireBytes:
		start, end, err := readLen(b, next)
		if err != nil {
			return refs, i, err
		}
		for j := start; j < end; {
			var x uint64
			if x, j, err = uvarint(b[:end], j); err != nil {
				// gogo reads on past the field's end here; a reference cut by its end is refused.
				return refs, i, fmt.Errorf("packed %s: %w", name, err)
			}
			refs = append(refs, uint32(x)) // gogo keeps the low 32 bits
		}
		return refs, end, nil
	}
	return refs, i, wrongWireType(wt, name)
}

// sampleV2 decodes a Sample into *s, which must be zero, and returns its start timestamp.
func sampleV2(b []byte, s *prompb.Sample) (st int64, err error) {
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i, "Sample")
		if err != nil {
			return 0, err
		}
		switch field {
		case 1:
			if wt != wireFixed64 {
				return 0, wrongWireType(wt, "Value")
			}
			if s.Value, i, err = readDouble(b, next); err != nil {
				return 0, err
			}
		case 2, 3:
			if wt != wireVarint {
				return 0, wrongWireType(wt, [...]string{"Timestamp", "StartTimestamp"}[field-2])
			}
			var x uint64
			if x, i, err = uvarint(b, next); err != nil {
				return 0, err
			}
			if field == 2 {
				s.Timestamp = int64(x)
			} else {
				st = int64(x)
			}
		default:
			if i, err = skipField(b, i); err != nil {
				return 0, err
			}
		}
	}
	return st, nil
}

// exemplarV2 decodes an Exemplar into *e, which must be zero; its labels go to d.exLabels.
func (d *decoder) exemplarV2(b []byte, e *prompb.Exemplar) error {
	v := &d.v2
	refs := v.refs[len(v.refs):] // after the series' own, which are still being collected
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i, "Exemplar")
		if err != nil {
			return err
		}
		switch field {
		case 1:
			if refs, i, err = appendRefs(refs, b, i, next, wt, "LabelsRefs"); err != nil {
				return err
			}
		case 2:
			if wt != wireFixed64 {
				return wrongWireType(wt, "Value")
			}
			if e.Value, i, err = readDouble(b, next); err != nil {
				return err
			}
		case 3:
			if wt != wireVarint {
				return wrongWireType(wt, "Timestamp")
			}
			var x uint64
			if x, i, err = uvarint(b, next); err != nil {
				return err
			}
			e.Timestamp = int64(x)
		default:
			if i, err = skipField(b, i); err != nil {
				return err
			}
		}
	}
	if len(refs)%2 != 0 {
		return fmt.Errorf("exemplar: odd number of label references (%d)", len(refs))
	}
	l0 := len(d.exLabels)
	for j := 0; j < len(refs); j += 2 {
		name, err := d.symbol(refs[j])
		if err != nil {
			return err
		}
		value, err := d.symbol(refs[j+1])
		if err != nil {
			return err
		}
		d.exLabels = grow(d, d.exLabels)
		d.exLabels[len(d.exLabels)-1] = prompb.Label{Name: name, Value: value}
	}
	e.Labels = window(d.exLabels, l0)
	return nil
}

// metadataV2 decodes a Metadata into *m, resolving its help and unit.
func (d *decoder) metadataV2(b []byte, m *metadata.Metadata) error {
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i, "Metadata")
		if err != nil {
			return err
		}
		switch field {
		case 1, 3, 4:
			if wt != wireVarint {
				return wrongWireType(wt, map[int32]string{1: "Type", 3: "HelpRef", 4: "UnitRef"}[field])
			}
			var x uint64
			if x, i, err = uvarint(b, next); err != nil {
				return err
			}
			switch field {
			case 1:
				t, ok := metricTypes[writev2.Metadata_MetricType(int32(x))]
				if !ok {
					return fmt.Errorf("metadata: unknown metric type %d", int32(x))
				}
				m.Type = t
			case 3:
				m.Help, err = d.symbol(uint32(x))
			case 4:
				m.Unit, err = d.symbol(uint32(x))
			}
			if err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
		default:
			if i, err = skipField(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// metricTypes maps the specification's metric types to Prometheus'. UNSPECIFIED is "unknown", as in
// Prometheus' receiver.
var metricTypes = map[writev2.Metadata_MetricType]model.MetricType{
	writev2.Metadata_METRIC_TYPE_UNSPECIFIED:    model.MetricTypeUnknown,
	writev2.Metadata_METRIC_TYPE_COUNTER:        model.MetricTypeCounter,
	writev2.Metadata_METRIC_TYPE_GAUGE:          model.MetricTypeGauge,
	writev2.Metadata_METRIC_TYPE_HISTOGRAM:      model.MetricTypeHistogram,
	writev2.Metadata_METRIC_TYPE_GAUGEHISTOGRAM: model.MetricTypeGaugeHistogram,
	writev2.Metadata_METRIC_TYPE_SUMMARY:        model.MetricTypeSummary,
	writev2.Metadata_METRIC_TYPE_INFO:           model.MetricTypeInfo,
	writev2.Metadata_METRIC_TYPE_STATESET:       model.MetricTypeStateset,
}

// histogramFromV2 is h as a 1.0 histogram, custom bucket bounds included; its slices alias h's.
func histogramFromV2(h *writev2.Histogram) prompb.Histogram {
	out := prompb.Histogram{
		Sum:            h.Sum,
		Schema:         h.Schema,
		ZeroThreshold:  h.ZeroThreshold,
		NegativeSpans:  spansFromV2(h.NegativeSpans),
		NegativeDeltas: h.NegativeDeltas,
		NegativeCounts: h.NegativeCounts,
		PositiveSpans:  spansFromV2(h.PositiveSpans),
		PositiveDeltas: h.PositiveDeltas,
		PositiveCounts: h.PositiveCounts,
		ResetHint:      prompb.Histogram_ResetHint(h.ResetHint),
		Timestamp:      h.Timestamp,
		CustomValues:   h.CustomValues,
	}
	switch c := h.Count.(type) {
	case *writev2.Histogram_CountInt:
		out.Count = &prompb.Histogram_CountInt{CountInt: c.CountInt}
	case *writev2.Histogram_CountFloat:
		out.Count = &prompb.Histogram_CountFloat{CountFloat: c.CountFloat}
	}
	switch z := h.ZeroCount.(type) {
	case *writev2.Histogram_ZeroCountInt:
		out.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: z.ZeroCountInt}
	case *writev2.Histogram_ZeroCountFloat:
		out.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: z.ZeroCountFloat}
	}
	return out
}

func spansFromV2(s []writev2.BucketSpan) []prompb.BucketSpan {
	if s == nil {
		return nil
	}
	out := make([]prompb.BucketSpan, len(s))
	for i, sp := range s {
		out[i] = prompb.BucketSpan{Offset: sp.Offset, Length: sp.Length}
	}
	return out
}
