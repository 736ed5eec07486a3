package receive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// Protobuf building blocks for hand-made inputs.

func pbTag(field uint64, wt int) []byte { return binary.AppendUvarint(nil, field<<3|uint64(wt)) }

func pbBytes(field uint64, parts ...[]byte) []byte {
	payload := bytes.Join(parts, nil)
	b := append(pbTag(field, wireBytes), binary.AppendUvarint(nil, uint64(len(payload)))...)
	return append(b, payload...)
}

func pbVarint(field, v uint64) []byte { return binary.AppendUvarint(pbTag(field, wireVarint), v) }

func pbFixed64(field uint64, v float64) []byte {
	return binary.LittleEndian.AppendUint64(pbTag(field, wireFixed64), math.Float64bits(v))
}

func pbFixed32(field uint64, v uint32) []byte {
	return binary.LittleEndian.AppendUint32(pbTag(field, wireFixed32), v)
}

func pbGroup(field uint64, inner ...[]byte) []byte {
	b := pbTag(field, wireStartGroup)
	b = append(b, bytes.Join(inner, nil)...)
	return append(b, pbTag(field, wireEndGroup)...)
}

func pbLabel(name, value string) []byte {
	return pbBytes(1, pbBytes(1, []byte(name)), pbBytes(2, []byte(value)))
}

func pbCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// unmarshalSeeds are the seed inputs of FuzzUnmarshalMatchesPrompb: uncompressed protobuf. Like those
// of FuzzDecodeValidate, they are also checked in under testdata/fuzz/FuzzUnmarshalMatchesPrompb
// (TestUnmarshalSeedCorpus keeps the two in step).
func unmarshalSeeds(tb testing.TB) []fuzzSeed {
	var seeds []fuzzSeed
	// Real requests: those of FuzzDecodeValidate (histograms, exemplars, metadata, invalid labels), a
	// bigger one with histograms, exemplars and metadata, and the benchmark's shape.
	for _, s := range fuzzSeeds(tb) {
		if !strings.HasPrefix(s.name, "seed-") {
			continue
		}
		raw, err := snappy.Decode(nil, s.body)
		require.NoError(tb, err)
		seeds = append(seeds, fuzzSeed{"request-" + strings.TrimPrefix(s.name, "seed-"), raw})
	}
	seeds = append(seeds,
		fuzzSeed{"request-sample", marshalWR(tb, sampleWriteRequest())},
		fuzzSeed{"request-bench-5", marshalWR(tb, benchWriteRequest(5))},
	)

	// Unknown fields of every wire type at every level, and a group.
	unknown := pbCat(pbVarint(9, 300), pbFixed32(10, 7), pbFixed64(11, 1.5), pbBytes(12, []byte("x")), pbGroup(13, pbVarint(1, 1), pbGroup(2)))
	seeds = append(seeds, fuzzSeed{"unknown-fields", pbCat(
		unknown,
		pbBytes(1,
			unknown,
			pbBytes(1, pbBytes(1, []byte("__name__")), unknown, pbBytes(2, []byte("up"))),
			pbBytes(2, pbFixed64(1, 1), unknown, pbVarint(2, 1000)),
			pbBytes(3, pbBytes(1, pbBytes(1, []byte("trace_id")), pbBytes(2, []byte("abc")), unknown), unknown, pbFixed64(2, 0.5), pbVarint(3, 999)),
			unknown,
		),
		pbBytes(2, []byte("reserved field 2")),
		pbBytes(3, pbVarint(1, 2), pbBytes(2, []byte("up")), unknown, pbBytes(3, []byte("field 3 is unknown")), pbBytes(4, []byte("Help.")), pbBytes(5, []byte("seconds"))),
		pbVarint(4, 1),
	)})

	// Repeated fields interleaved; scalars given twice (the last wins); empty messages.
	seeds = append(seeds, fuzzSeed{"interleaved-and-repeated", pbCat(
		pbBytes(1,
			pbLabel("b", "2"),
			pbBytes(3, pbLabel("trace_id", "x"), pbFixed64(2, 1), pbFixed64(2, 2), pbVarint(3, 5)),
			pbBytes(2, pbFixed64(1, 1), pbVarint(2, 1), pbVarint(2, 2)),
			pbLabel("a", "1"),
			pbBytes(4, pbVarint(1, 3), pbVarint(15, 10)), // a histogram: count_int 3, timestamp 10
			pbBytes(1, pbBytes(1, []byte("x")), pbBytes(1, []byte("y")), pbBytes(2, []byte("v"))),
			pbBytes(2),
			pbBytes(3),
		),
		pbBytes(1),
		pbBytes(3),
		pbBytes(1, pbBytes(1)),
	)})

	// Varint edge cases: 10-byte varints (bits beyond 64 dropped), a negative timestamp, a field
	// number beyond 32 bits (gogo truncates it), a huge metadata type (the low 32 bits are kept).
	tenBytes := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	seeds = append(seeds, fuzzSeed{"varint-edges", pbCat(
		pbBytes(1,
			pbLabel("__name__", "edge"),
			pbBytes(2, pbTag(2, wireVarint), tenBytes),
			pbBytes(2, pbVarint(2, uint64(1<<63))),
		),
		pbBytes(1<<32+1, pbLabel("truncated", "field number")),
		pbBytes(3, pbVarint(1, 1<<40|3)),
	)})

	// Malformed: truncations, overflowing varints, lengths past the end or negative, wrong wire
	// types, end groups and field 0.
	good := marshalWR(tb, sampleWriteRequest())
	eleven := append(bytes.Repeat([]byte{0xff}, 10), 0x01)
	negLen := append(pbTag(1, wireBytes), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)
	seeds = append(seeds,
		fuzzSeed{"bad-truncated", good[:len(good)-3]},
		fuzzSeed{"bad-varint-overflow", pbBytes(1, pbBytes(2, pbTag(2, wireVarint), eleven))},
		fuzzSeed{"bad-tag-overflow", eleven},
		fuzzSeed{"bad-negative-length", negLen},
		fuzzSeed{"bad-length-past-end", append(pbTag(1, wireBytes), 0x7f, 0x00)},
		fuzzSeed{"bad-truncated-double", pbBytes(1, pbBytes(2, pbTag(1, wireFixed64), []byte{1, 2, 3}))},
		fuzzSeed{"bad-wire-type", pbBytes(1, pbVarint(1, 1))},
		fuzzSeed{"bad-label-wire-type", pbBytes(1, pbBytes(1, pbVarint(2, 1)))},
		fuzzSeed{"bad-end-group", pbBytes(1, pbTag(5, wireEndGroup))},
		fuzzSeed{"bad-field-zero", pbBytes(1, pbLabel("a", "b"), pbVarint(0, 1))},
		fuzzSeed{"bad-unclosed-group", pbBytes(1, pbTag(7, wireStartGroup), pbVarint(1, 1))},
		fuzzSeed{"bad-skipped-length-past-end", pbCat(pbTag(20, wireBytes), []byte{0x10})},
		fuzzSeed{"bad-skipped-fixed64-past-end", pbCat(pbTag(20, wireFixed64), []byte{1, 2})},
		fuzzSeed{"bad-histogram", pbBytes(1, pbBytes(4, pbTag(1, wireFixed64)))},
		fuzzSeed{"bad-illegal-wire-type", pbBytes(1, pbTag(9, 7))},
	)
	return seeds
}

// FuzzUnmarshalMatchesPrompb checks the hand-written decoder against gogo's generated Unmarshal of
// prompb.WriteRequest, its oracle: on any input both accept or both refuse, and what both accept
// decodes to the same request. It decodes through DecodeBytes, so pooled Requests with arenas and
// buffers left over from earlier inputs are exercised too.
func FuzzUnmarshalMatchesPrompb(f *testing.F) {
	for _, s := range unmarshalSeeds(f) {
		f.Add(s.body)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var want prompb.WriteRequest
		wantErr := want.Unmarshal(raw)
		req, err := DecodeBytes(snappy.Encode(nil, raw), math.MaxInt64)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("gogo: %v, decoder: %v", wantErr, err)
		}
		if err != nil {
			require.Equal(t, ClassInvalid, ClassOf(err))
			return
		}
		defer req.Release()
		if diff := diffDecoded(reflect.ValueOf(want), reflect.ValueOf(req.Write), "WriteRequest"); diff != "" {
			t.Fatalf("decoded differently from gogo: %s", diff)
		}
		checkWindows(t, &req.Write)
	})
}

// diffDecoded compares what gogo and the decoder decoded, field by field, and describes the first
// difference. It is reflect.DeepEqual but for what no user can tell apart: a nil and an empty slice
// are equal, XXX_ fields (unknown fields gogo keeps, size caches) are ignored, and floats are compared
// bit for bit (so that NaNs compare too).
func diffDecoded(a, b reflect.Value, path string) string {
	if a.Type() != b.Type() {
		return fmt.Sprintf("%s: type %s vs %s", path, a.Type(), b.Type())
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			name := a.Type().Field(i).Name
			if strings.HasPrefix(name, "XXX_") {
				continue
			}
			if d := diffDecoded(a.Field(i), b.Field(i), path+"."+name); d != "" {
				return d
			}
		}
	case reflect.Slice:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: length %d vs %d", path, a.Len(), b.Len())
		}
		for i := range a.Len() {
			if d := diffDecoded(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: nil %t vs %t", path, a.IsNil(), b.IsNil())
			}
			return ""
		}
		return diffDecoded(a.Elem(), b.Elem(), path)
	case reflect.Float32, reflect.Float64:
		if math.Float64bits(a.Float()) != math.Float64bits(b.Float()) {
			return fmt.Sprintf("%s: %v vs %v", path, a.Float(), b.Float())
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if a.Int() != b.Int() {
			return fmt.Sprintf("%s: %d vs %d", path, a.Int(), b.Int())
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if a.Uint() != b.Uint() {
			return fmt.Sprintf("%s: %d vs %d", path, a.Uint(), b.Uint())
		}
	case reflect.String:
		if a.String() != b.String() {
			return fmt.Sprintf("%s: %q vs %q", path, a.String(), b.String())
		}
	case reflect.Bool:
		if a.Bool() != b.Bool() {
			return fmt.Sprintf("%s: %t vs %t", path, a.Bool(), b.Bool())
		}
	default:
		return fmt.Sprintf("%s: cannot compare kind %s", path, a.Kind())
	}
	return ""
}

// checkWindows checks that no decoded slice lets an append reach into what follows it in its arena.
func checkWindows(t *testing.T, wr *prompb.WriteRequest) {
	t.Helper()
	require.Equal(t, len(wr.Timeseries), cap(wr.Timeseries))
	require.Equal(t, len(wr.Metadata), cap(wr.Metadata))
	for i, ts := range wr.Timeseries {
		require.Equal(t, len(ts.Labels), cap(ts.Labels), "series %d", i)
		require.Equal(t, len(ts.Samples), cap(ts.Samples), "series %d", i)
		require.Equal(t, len(ts.Exemplars), cap(ts.Exemplars), "series %d", i)
		require.Equal(t, len(ts.Histograms), cap(ts.Histograms), "series %d", i)
		for _, e := range ts.Exemplars {
			require.Equal(t, len(e.Labels), cap(e.Labels), "series %d", i)
		}
	}
}

// TestUnmarshalSeedCorpus keeps testdata/fuzz/FuzzUnmarshalMatchesPrompb in step with unmarshalSeeds;
// WEIR_UPDATE_FUZZ_CORPUS=1 rewrites it.
func TestUnmarshalSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzUnmarshalMatchesPrompb")
	for _, s := range unmarshalSeeds(t) {
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", s.body)
		path := filepath.Join(dir, s.name)
		if os.Getenv("WEIR_UPDATE_FUZZ_CORPUS") != "" {
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(path, want, 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "run with WEIR_UPDATE_FUZZ_CORPUS=1 to write the seed corpus")
		require.Equal(t, string(want), string(got), "seed %s is stale: run with WEIR_UPDATE_FUZZ_CORPUS=1", s.name)
	}
}

// TestUnmarshalRefusesMalformed: every malformed seed is refused, as gogo refuses it, without a panic.
func TestUnmarshalRefusesMalformed(t *testing.T) {
	for _, s := range unmarshalSeeds(t) {
		if !strings.HasPrefix(s.name, "bad-") {
			continue
		}
		var wr prompb.WriteRequest
		require.Error(t, wr.Unmarshal(s.body), "gogo accepts %s", s.name)
		var d decoder
		require.Error(t, d.unmarshal(s.body, &wr), "%s", s.name)
		req, err := DecodeBytes(snappy.Encode(nil, s.body), 1<<20)
		require.Nil(t, req)
		require.Equal(t, ClassInvalid, ClassOf(err), "%s: %v", s.name, err)
	}
}

// decodeInto decodes wr into r (not from the pool, so that the test controls its reuse).
func decodeInto(t *testing.T, r *Request, wr *prompb.WriteRequest) {
	t.Helper()
	require.NoError(t, r.unmarshal(encodeWR(t, wr), MessageV1, 1<<30))
}

// TestUnmarshalReuse decodes a big request A, resets the Request as Release does, and decodes a smaller
// B into it: B comes out exactly (nil where B has nothing, no window reaching into A's leftovers), its
// strings alias the decoded buffer, and A's arenas were reused rather than reallocated.
func TestUnmarshalReuse(t *testing.T) {
	h := &histogram.Histogram{
		Schema: 1, Count: 3, Sum: 2, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 0},
	}
	a := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "a", Help: "A."}}}
	for i := range 100 {
		a.Timeseries = append(a.Timeseries, prompb.TimeSeries{
			Labels:     lbls("__name__", "a_total", "instance", strings.Repeat("x", i+1), "job", "a", "zone", "eu-1"),
			Samples:    samples(int64(i), int64(i)+1, int64(i)+2),
			Exemplars:  []prompb.Exemplar{{Labels: lbls("trace_id", "abc", "span_id", "def"), Value: 1, Timestamp: 1}},
			Histograms: []prompb.Histogram{prompb.FromIntHistogram(int64(i), h)},
		})
	}
	b := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "b"), Samples: samples(7)},
		{Labels: lbls("__name__", "c", "x", "y")},
		{Samples: samples(8), Exemplars: []prompb.Exemplar{{Value: 2}}},
	}}

	var r Request
	for round := range 3 {
		decodeInto(t, &r, a)
		require.Len(t, r.Write.Timeseries, 100)
		if round == 1 { // validation compacts and shortens in place
			_, _, err := Limits{MaxLabelsPerSeries: 2}.validate(&r.Write, benchNow)
			require.NoError(t, err)
		}
		arenas := [...]uintptr{
			uintptr(unsafe.Pointer(unsafe.SliceData(r.dec.series))),
			uintptr(unsafe.Pointer(unsafe.SliceData(r.dec.labels))),
			uintptr(unsafe.Pointer(unsafe.SliceData(r.dec.samples))),
		}
		r.reset()
		require.Empty(t, r.Write.Timeseries)
		require.Zero(t, r.Write.Metadata)

		decodeInto(t, &r, b)
		require.Equal(t, *b, r.Write, "round %d", round) // nil vs empty matters here
		checkWindows(t, &r.Write)
		require.Equal(t, arenas, [...]uintptr{
			uintptr(unsafe.Pointer(unsafe.SliceData(r.dec.series))),
			uintptr(unsafe.Pointer(unsafe.SliceData(r.dec.labels))),
			uintptr(unsafe.Pointer(unsafe.SliceData(r.dec.samples))),
		}, "arenas reallocated")
		if !copyStrings {
			for _, ts := range r.Write.Timeseries {
				for _, l := range ts.Labels {
					requireAliases(t, r.decoded, l.Name)
					requireAliases(t, r.decoded, l.Value)
				}
			}
		}
		r.reset()
	}
}

func requireAliases(t *testing.T, buf []byte, s string) {
	t.Helper()
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	require.True(t, p >= start && p+uintptr(len(s)) <= start+uintptr(len(buf)), "%q does not alias the decoded buffer", s)
}

// TestUnmarshalNoAllocations: in steady state, decoding a request allocates nothing at all.
func TestUnmarshalNoAllocations(t *testing.T) {
	body := encodeWR(t, benchWriteRequest(benchSeries))
	var r Request
	require.NoError(t, r.unmarshal(body, MessageV1, 64<<20))
	allocs := testing.AllocsPerRun(20, func() {
		r.reset()
		if err := r.unmarshal(body, MessageV1, 64<<20); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
	require.Len(t, r.Write.Timeseries, benchSeries)
}

// TestUnmarshalLabelsOutliveRequest is the TSDB's side of the aliasing invariant: labels built as
// tenant.Manager.Write builds them (labels.ScratchBuilder) stay intact after the request was released
// and its buffer reused by another one.
func TestUnmarshalLabelsOutliveRequest(t *testing.T) {
	var r Request
	decodeInto(t, &r, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: lbls("__name__", "first", "job", "a"), Samples: samples(1)}}})
	sb := labels.NewScratchBuilder(2)
	for _, l := range r.Write.Timeseries[0].Labels {
		sb.Add(l.Name, l.Value)
	}
	ls := sb.Labels()
	r.reset()
	decodeInto(t, &r, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: lbls("__name__", "XXXXX", "job", "b"), Samples: samples(1)}}})
	require.Equal(t, `{__name__="first", job="a"}`, ls.String())
	t.Logf("label strings copied by the decoder: %t", copyStrings)
}

// TestUnmarshalRetention: what a pooled Request keeps after a very large request is bounded.
func TestUnmarshalRetention(t *testing.T) {
	require.Nil(t, truncate(make([]prompb.Label, 10, maxRetainedArena/int(unsafe.Sizeof(prompb.Label{}))+1)))
	require.Equal(t, 100, cap(truncate(make([]prompb.Label, 10, 100))))

	var r Request
	decodeInto(t, &r, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: lbls("big", strings.Repeat("x", maxRetainedDecoded)), Samples: samples(1)}}})
	r.reset()
	require.Nil(t, r.decoded)
	for _, l := range r.dec.labels[:cap(r.dec.labels)] {
		require.Zero(t, l, "a label still points into the dropped buffer")
	}
}
