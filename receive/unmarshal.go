package receive

import (
	"io"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// This file is a hand-written protobuf decoder for the Remote Write 1.0 prometheus.WriteRequest
// (prompb/remote.proto and types.proto of the Prometheus module). It fills a prompb.WriteRequest as
// gogo's generated Unmarshal does, accepting and refusing exactly the same inputs (a differential
// fuzz test, FuzzUnmarshalMatchesPrompb, keeps it so), but without allocating per label or per series:
//
//   - label names and values (of series, exemplars and metadata) alias the decoded buffer instead of
//     being copied into fresh strings (see Request for how long they are valid);
//   - every Labels, Samples, Exemplars and Histograms slice of the result is a window of an arena of
//     that element type, and the arenas, like the Timeseries slice itself, are kept by the pooled
//     Request and reused: a request no bigger than one decoded before allocates nothing.
//
// Differences from gogo that no user can see: unknown fields are skipped, not kept in XXX_unrecognized
// (so a router does not forward them); an absent repeated field is nil in both. Histograms are rare and
// decoded by gogo's generated code into the arena.

// copyStrings makes the decoder copy label strings instead of aliasing the decoded buffer. Aliasing is
// safe only because the TSDB copies a series' labels when labels.ScratchBuilder builds them (what
// tenant.Manager.Write and exemplar storage use): true of the default stringlabels build. Builds with
// -tags slicelabels (whose ScratchBuilder keeps the caller's strings) or dedupelabels (whose symbol table
// keeps them) would make the head hold strings into a pooled buffer that the next request overwrites,
// so there the decoder falls back to copying, found by probing the build rather than trusting tags.
var copyStrings = !scratchBuilderCopies()

// scratchBuilderCopies reports whether labels built by a labels.ScratchBuilder from strings stay intact
// when the memory of those strings is overwritten.
func scratchBuilderCopies() bool {
	buf := []byte("probe_name" + "probe_value")
	b := labels.NewScratchBuilder(1)
	b.Add(unsafe.String(&buf[0], 10), unsafe.String(&buf[10], 11))
	ls := b.Labels()
	for i := range buf {
		buf[i] = 'x'
	}
	return ls.Get("probe_name") == "probe_value"
}

// decoder holds the arenas the decoded request's slices are windows of. It belongs to a Request and is
// reused with it.
type decoder struct {
	series     []prompb.TimeSeries
	frames     []span         // per series: its field in the decoded buffer, or empty when it must be re-encoded (frames.go)
	labels     []prompb.Label // of series, each series' labels contiguous
	exLabels   []prompb.Label // of exemplars: apart, as a series' exemplars and labels may interleave
	samples    []prompb.Sample
	exemplars  []prompb.Exemplar
	histograms []prompb.Histogram
	metadata   []prompb.MetricMetadata
	// grew is set when an arena was reallocated in the current request: older arrays may then be
	// referenced from stale entries beyond the used lengths, which reset clears so that they can be
	// collected.
	grew bool
	// v2 is what decoding a Remote Write 2.0 request reuses (unmarshalv2.go).
	v2 v2Scratch
	// skipped is set when the series being decoded held a field the decoder does not keep (an unknown
	// field, or a label not in the canonical form): its original bytes are then not forwarded as they
	// are, so that a router forwards exactly what it decoded.
	skipped bool
}

// maxRetainedArena bounds, in bytes, each arena a pooled Request keeps for the next request; a
// bigger one (left by an unusually large request) is dropped.
const maxRetainedArena = 16 << 20

// reset prepares the arenas for the next request: it sets their lengths to zero, keeping their
// capacity (up to maxRetainedArena). The stale entries beyond the lengths keep pointing into the
// Request's own decoded buffer and arenas, which it retains anyway, so they are not cleared — except
// histograms (gogo allocates their spans and buckets) and after an arena was reallocated.
func (d *decoder) reset() {
	clear(d.histograms)
	if d.grew {
		d.clearAll()
		d.grew = false
	}
	d.series = truncate(d.series)
	d.frames = truncate(d.frames)
	d.labels = truncate(d.labels)
	d.exLabels = truncate(d.exLabels)
	d.samples = truncate(d.samples)
	d.exemplars = truncate(d.exemplars)
	d.histograms = truncate(d.histograms)
	d.metadata = truncate(d.metadata)
	d.v2.reset()
}

// clearAll drops every reference the arenas hold, over their whole capacity: to the decoded buffer
// (label strings) and to older arena arrays. Call it when the decoded buffer is replaced.
func (d *decoder) clearAll() {
	clear(d.series[:cap(d.series)])
	clear(d.labels[:cap(d.labels)])
	clear(d.exLabels[:cap(d.exLabels)])
	clear(d.exemplars[:cap(d.exemplars)])
	clear(d.histograms[:cap(d.histograms)])
	clear(d.metadata[:cap(d.metadata)])
}

// clearUsed drops the references the used part of the arenas holds (to the decoded buffer, when it is
// not the Request's own).
func (d *decoder) clearUsed() {
	clear(d.series)
	clear(d.labels)
	clear(d.exLabels)
	clear(d.exemplars)
	clear(d.histograms)
	clear(d.metadata)
}

// truncate empties s, keeping its array unless it is over maxRetainedArena.
func truncate[T any](s []T) []T {
	var zero T
	if uintptr(cap(s))*unsafe.Sizeof(zero) > maxRetainedArena {
		return nil
	}
	return s[:0]
}

// grow appends a zero element to s and returns s; it notes in d when that reallocated s.
func grow[T any](d *decoder, s []T) []T {
	var zero T
	if len(s) == cap(s) {
		d.grew = true
	}
	return append(s, zero)
}

// window is s[start:] as gogo would have built it: nil when empty, and capped so that appending to it
// cannot overwrite what follows in the arena.
func window[T any](s []T, start int) []T {
	if len(s) == start {
		return nil
	}
	return s[start:len(s):len(s)]
}

// unmarshal decodes the protobuf WriteRequest b into wr, which must not be used for anything else.
// Label strings alias b (see Request). wr's slices are windows of d's arenas, valid until the next
// reset.
func (d *decoder) unmarshal(b []byte, wr *prompb.WriteRequest) error {
	*wr = prompb.WriteRequest{}
	i := 0
	for i < len(b) {
		field, wt, next, err := readTag(b, i, "WriteRequest")
		if err != nil {
			return err
		}
		switch field {
		case 1:
			if wt != wireBytes {
				return wrongWireType(wt, "Timeseries")
			}
			start, end, err := readLen(b, next)
			if err != nil {
				return err
			}
			d.series = grow(d, d.series)
			d.skipped = false
			if err := d.timeSeries(b[start:end], &d.series[len(d.series)-1]); err != nil {
				return err
			}
			fr := span{i, end}
			if d.skipped {
				fr = span{}
			}
			d.frames = append(d.frames, fr)
			i = end
		case 3:
			if wt != wireBytes {
				return wrongWireType(wt, "Metadata")
			}
			start, end, err := readLen(b, next)
			if err != nil {
				return err
			}
			d.metadata = grow(d, d.metadata)
			if err := metricMetadata(b[start:end], &d.metadata[len(d.metadata)-1]); err != nil {
				return err
			}
			i = end
		default:
			if i, err = skipField(b, i); err != nil {
				return err
			}
		}
	}
	wr.Timeseries = window(d.series, 0)
	wr.Metadata = window(d.metadata, 0)
	return nil
}

func (d *decoder) timeSeries(b []byte, ts *prompb.TimeSeries) error {
	l0, s0, e0, h0 := len(d.labels), len(d.samples), len(d.exemplars), len(d.histograms)
	i := 0
	for i < len(b) {
		// The keys and lengths of a series' fields are single bytes but for long labels: decode
		// those inline, the general way (readTag, readLen) the others.
		var field int32
		var wt, next int
		var err error
		if c := b[i]; c < 0x80 && c>>3 != 0 && c&7 != wireEndGroup {
			field, wt, next = int32(c>>3), int(c&7), i+1
		} else if field, wt, next, err = readTag(b, i, "TimeSeries"); err != nil {
			return err
		}
		if field < 1 || field > 4 {
			if i, err = skipField(b, i); err != nil {
				return err
			}
			d.skipped = true
			continue
		}
		if wt != wireBytes {
			return wrongWireType(wt, [...]string{"Labels", "Samples", "Exemplars", "Histograms"}[field-1])
		}
		var start, end int
		if next < len(b) && b[next] < 0x80 {
			start, end = next+1, next+1+int(b[next])
			if end > len(b) {
				return io.ErrUnexpectedEOF
			}
		} else if start, end, err = readLen(b, next); err != nil {
			return err
		}
		sub := b[start:end]
		switch field {
		case 1:
			var l prompb.Label
			var exact bool
			l.Name, l.Value, exact, err = label(sub)
			d.skipped = d.skipped || !exact
			if len(d.labels) == cap(d.labels) {
				d.grew = true
			}
			d.labels = append(d.labels, l)
		case 2:
			d.samples = grow(d, d.samples)
			var exact bool
			exact, err = sample(sub, &d.samples[len(d.samples)-1])
			d.skipped = d.skipped || !exact
		case 3:
			d.exemplars = grow(d, d.exemplars)
			err = d.exemplar(sub, &d.exemplars[len(d.exemplars)-1])
		case 4:
			d.histograms = grow(d, d.histograms)
			err = d.histograms[len(d.histograms)-1].Unmarshal(sub)
		}
		if err != nil {
			return err
		}
		i = end
	}
	*ts = prompb.TimeSeries{
		Labels:     window(d.labels, l0),
		Samples:    window(d.samples, s0),
		Exemplars:  window(d.exemplars, e0),
		Histograms: window(d.histograms, h0),
	}
	return nil
}

// label decodes a Label. exact reports the fast path: the label was in the canonical form, so its
// bytes hold nothing the decoder dropped.
func label(b []byte) (name, value string, exact bool, err error) {
	// Fast path, for how senders encode a label: the name, then the value, both shorter than 128
	// bytes, and nothing else. It decodes exactly what the general loop would.
	if len(b) >= 4 && b[0] == 1<<3|wireBytes && b[1] < 0x80 {
		if v := 2 + int(b[1]); v+2 <= len(b) && b[v] == 2<<3|wireBytes && b[v+1] < 0x80 && v+2+int(b[v+1]) == len(b) {
			return str(b, 2, v), str(b, v+2, len(b)), true, nil
		}
	}
	i := 0
	for i < len(b) {
		field, wt, next, err := readTag(b, i, "Label")
		if err != nil {
			return "", "", false, err
		}
		switch field {
		case 1, 2:
			if wt != wireBytes {
				return "", "", false, wrongWireType(wt, [...]string{"Name", "Value"}[field-1])
			}
			start, end, err := readLen(b, next)
			if err != nil {
				return "", "", false, err
			}
			if field == 1 {
				name = str(b, start, end)
			} else {
				value = str(b, start, end)
			}
			i = end
		default:
			if i, err = skipField(b, i); err != nil {
				return "", "", false, err
			}
		}
	}
	return name, value, false, nil
}

// sample decodes a Sample into *s, which must be zero. exact reports that no unknown field was
// skipped.
func sample(b []byte, s *prompb.Sample) (exact bool, err error) {
	exact = true
	i := 0
	for i < len(b) {
		field, wt, next, err := readTag(b, i, "Sample")
		if err != nil {
			return false, err
		}
		switch field {
		case 1:
			if wt != wireFixed64 {
				return false, wrongWireType(wt, "Value")
			}
			if s.Value, i, err = readDouble(b, next); err != nil {
				return false, err
			}
		case 2:
			if wt != wireVarint {
				return false, wrongWireType(wt, "Timestamp")
			}
			var v uint64
			if v, i, err = uvarint(b, next); err != nil {
				return false, err
			}
			s.Timestamp = int64(v)
		default:
			if i, err = skipField(b, i); err != nil {
				return false, err
			}
			exact = false
		}
	}
	return exact, nil
}

// exemplar decodes an Exemplar into *e, which must be zero; its labels go to d.exLabels.
func (d *decoder) exemplar(b []byte, e *prompb.Exemplar) error {
	l0 := len(d.exLabels)
	i := 0
	for i < len(b) {
		field, wt, next, err := readTag(b, i, "Exemplar")
		if err != nil {
			return err
		}
		switch field {
		case 1:
			if wt != wireBytes {
				return wrongWireType(wt, "Labels")
			}
			start, end, err := readLen(b, next)
			if err != nil {
				return err
			}
			var l prompb.Label
			var exact bool
			if l.Name, l.Value, exact, err = label(b[start:end]); err != nil {
				return err
			}
			d.skipped = d.skipped || !exact
			d.exLabels = grow(d, d.exLabels)
			d.exLabels[len(d.exLabels)-1] = l
			i = end
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
			var v uint64
			if v, i, err = uvarint(b, next); err != nil {
				return err
			}
			e.Timestamp = int64(v)
		default:
			if i, err = skipField(b, i); err != nil {
				return err
			}
			d.skipped = true
		}
	}
	e.Labels = window(d.exLabels, l0)
	return nil
}

// metricMetadata decodes a MetricMetadata into *m, which must be zero.
func metricMetadata(b []byte, m *prompb.MetricMetadata) error {
	i := 0
	for i < len(b) {
		field, wt, next, err := readTag(b, i, "MetricMetadata")
		if err != nil {
			return err
		}
		switch field {
		case 1:
			if wt != wireVarint {
				return wrongWireType(wt, "Type")
			}
			var v uint64
			if v, i, err = uvarint(b, next); err != nil {
				return err
			}
			m.Type = prompb.MetricMetadata_MetricType(int32(v)) // gogo keeps the low 32 bits
		case 2, 4, 5:
			if wt != wireBytes {
				return wrongWireType(wt, map[int32]string{2: "MetricFamilyName", 4: "Help", 5: "Unit"}[field])
			}
			start, end, err := readLen(b, next)
			if err != nil {
				return err
			}
			s := str(b, start, end)
			switch field {
			case 2:
				m.MetricFamilyName = s
			case 4:
				m.Help = s
			case 5:
				m.Unit = s
			}
			i = end
		default:
			if i, err = skipField(b, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// str returns b[start:end] as a string that aliases b (or a copy, see copyStrings).
func str(b []byte, start, end int) string {
	if start == end {
		return ""
	}
	if copyStrings {
		return string(b[start:end])
	}
	return unsafe.String(&b[start], end-start)
}
