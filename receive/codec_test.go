package receive

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weir-metrics/weir/receive/ingestpb"
	"github.com/weir-metrics/weir/write"
)

// TestStatsRoundTrip: both protocols' replies carry the stats, error texts cut to maxErrorText.
func TestStatsRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 2*maxErrorText)
	for _, st := range []write.Stats{
		{},
		{Appended: [write.NumKinds]int{1 << 33, 2, 3}},
		{Appended: [write.NumKinds]int{5, 0, 0}, Rejected: []write.Rejection{
			{Series: 0, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 2, Err: errors.New("out of order")},
			{Series: 1999, Kind: write.KindExemplar, Reason: write.ReasonExemplarsDisabled, Count: 1},
			{Series: 7, Kind: write.KindHistogram, Reason: write.ReasonInvalidHistogram, Count: 1, Err: errors.New(long)},
		}},
	} {
		c := newIngestCodec()
		out, err := c.Marshal(&writeReply{stats: st})
		require.NoError(t, err)
		var got writeReply
		require.NoError(t, c.Unmarshal(out, &got))
		out, err = c.Marshal(&legacyReply{stats: st})
		require.NoError(t, err)
		var gotLegacy legacyReply
		require.NoError(t, c.Unmarshal(out, &gotLegacy))
		for i := range st.Rejected {
			rj := &st.Rejected[i]
			if rj.Err != nil && len(rj.Err.Error()) > maxErrorText {
				rj.Err = errors.New(rj.Err.Error()[:maxErrorText])
			}
		}
		require.Equal(t, st, got.stats)
		require.Equal(t, st, gotLegacy.stats)
	}
}

// TestStatsInvalidUTF8: an error text that is not valid UTF-8, or is cut inside a rune, does not make
// the v2 reply (proto3 strings) fail to marshal.
func TestStatsInvalidUTF8(t *testing.T) {
	text := strings.Repeat("x", maxErrorText-1) + "é…"
	st := write.Stats{Appended: [write.NumKinds]int{1, 0, 0}, Rejected: []write.Rejection{
		{Series: 0, Kind: write.KindFloat, Reason: "bad\xff", Count: 1, Err: errors.New(text)},
	}}
	c := newIngestCodec()
	out, err := c.Marshal(&writeReply{stats: st})
	require.NoError(t, err)
	var got writeReply
	require.NoError(t, c.Unmarshal(out, &got))
	require.Equal(t, strings.Repeat("x", maxErrorText-1), got.stats.Rejected[0].Err.Error())
	require.Equal(t, "bad\uFFFD", got.stats.Rejected[0].Reason)
}

// TestWriteResponseRefuses: counts no request can hold and unknown kinds are malformed replies.
func TestWriteResponseRefuses(t *testing.T) {
	for _, resp := range []*ingestpb.WriteResponse{
		{Samples: 1 << 50},
		{Rejections: []*ingestpb.Rejection{{Series: 1 << 50}}},
		{Rejections: []*ingestpb.Rejection{{Kind: ingestpb.Kind(write.NumKinds)}}},
		{Rejections: []*ingestpb.Rejection{{Kind: -1}}},
	} {
		b, err := proto.Marshal(resp)
		require.NoError(t, err)
		require.ErrorIs(t, parseWriteResponse(b, &write.Stats{}), errFrame, "%v", resp)
	}
}

func TestStatsFrameMalformed(t *testing.T) {
	good := encodeStats(&write.Stats{Appended: [write.NumKinds]int{1, 2, 3}, Rejected: []write.Rejection{
		{Series: 3, Kind: write.KindFloat, Reason: "r", Count: 1, Err: errors.New("e")},
	}})
	var st write.Stats
	require.NoError(t, parseStats(good, &st))
	for i := range len(good) { // every truncation fails cleanly
		require.ErrorIs(t, parseStats(good[:i], &write.Stats{}), errFrame, "truncated at %d", i)
	}
	require.ErrorIs(t, parseStats(append(good, 0), &write.Stats{}), errFrame)
	bad := append([]byte{}, good...)
	bad[0] = 9
	require.ErrorIs(t, parseStats(bad, &write.Stats{}), errFrame)
	// A huge rejection count in a short frame does not allocate for it.
	require.ErrorIs(t, parseStats([]byte{wireVersion, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}, &write.Stats{}), errFrame)
	// Unknown kind.
	require.ErrorIs(t, parseStats([]byte{wireVersion, 0, 0, 0, 1, 0, 9, 0, 0, 0}, &write.Stats{}), errFrame)
}

// TestRequest: both protocols' requests carry tenant, payload, compression and hashes.
func TestRequest(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) { testRequest(t, legacy) })
	}
}

// marshalRequest marshals m with protocol v2, or v1 when legacy.
func marshalRequest(c ingestCodec, m *forwardRequest, legacy bool) (mem.BufferSlice, error) {
	if legacy {
		return c.Marshal((*legacyRequest)(m))
	}
	return c.Marshal(m)
}

func testRequest(t *testing.T, legacy bool) {
	c := newIngestCodec()
	payload := []byte(strings.Repeat("p", 5000)) // over gRPC's pooling threshold
	for _, compressed := range []bool{true, false} {
		out, err := marshalRequest(c, &forwardRequest{tenant: "team-a", payload: payload, compressed: compressed}, legacy)
		require.NoError(t, err)
		payload[0] = 'X' // the message is a copy: the caller may reuse its payload at once
		req := ingestRequest{legacy: legacy}
		require.NoError(t, c.Unmarshal(out, &req))
		out.Free()
		require.NoError(t, req.parse())
		require.Equal(t, "team-a", req.tenant)
		require.Equal(t, compressed, req.compressed)
		require.Equal(t, strings.Repeat("p", 5000), string(req.payload))
		req.release()
		req.release() // idempotent
		payload[0] = 'p'
	}

	// With hashes: they come back in order, the payload after them.
	out, err := marshalRequest(c, &forwardRequest{tenant: "t", payload: payload, hashes: []uint64{1, 1 << 63, 42}}, legacy)
	require.NoError(t, err)
	req := ingestRequest{legacy: legacy}
	require.NoError(t, c.Unmarshal(out, &req))
	out.Free()
	require.NoError(t, req.parse())
	require.Equal(t, []uint64{1, 1 << 63, 42}, *req.hashes)
	require.Equal(t, string(payload), string(req.payload))
	require.False(t, req.compressed)
	req.release()

	malformed := [][]byte{ // v2
		{0x0a, 5, 'a'},     // tenant longer than the message
		{0x1a, 3, 1, 2, 3}, // hashes not a multiple of 8 bytes
		{0x19, 1, 2},       // unpacked hash cut short
		{0x22, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, // varint too long
		{0x07},    // wire type 7
		{0x00},    // field 0
		{0x10, 9}, // a compression this build does not know (a newer router)
	}
	if legacy {
		malformed = [][]byte{{}, {5, 0}, {0, 0}, {wireVersion}, {wireVersionRaw, 5, 'a'},
			{wireVersionHashed, 0}, {wireVersionRawHashed, 0, 1, 0, 0, 0, 0, 0, 0, 0}, {wireVersionRawHashed, 0, 0x80, 0x80, 0x80, 0x80, 0x10}}
	}
	for _, frame := range malformed {
		req := ingestRequest{legacy: legacy}
		require.NoError(t, c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(frame)}, &req))
		require.ErrorIs(t, req.parse(), errFrame, "%q", frame)
		req.release()
	}
}

// TestWriteRequestMatchesProto: the hand-written v2 request is byte for byte what the generated code
// of ingest.proto marshals, and the generated code reads it back.
func TestWriteRequestMatchesProto(t *testing.T) {
	for _, m := range []forwardRequest{
		{},
		{tenant: "team-a"},
		{tenant: "team-a", compressed: true},
		{payload: []byte("payload")},
		{tenant: "t", hashes: []uint64{0, 1, 1 << 63, 42}},
		{tenant: strings.Repeat("t", 150), compressed: true, hashes: []uint64{7}, payload: []byte(strings.Repeat("p", 300))},
	} {
		got := appendWriteRequest(nil, &m)
		require.Len(t, got, writeRequestSize(&m))
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(protoRequest(&m))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), "%+v", m)

		var back ingestpb.WriteRequest
		require.NoError(t, proto.Unmarshal(got, &back))
		require.True(t, proto.Equal(protoRequest(&m), &back), "%+v", m)
	}
}

// protoRequest is m as the generated type.
func protoRequest(m *forwardRequest) *ingestpb.WriteRequest {
	pb := &ingestpb.WriteRequest{Tenant: m.tenant, SeriesHashes: m.hashes, Payload: m.payload}
	if m.compressed {
		pb.Compression = ingestpb.Compression_COMPRESSION_SNAPPY
	}
	return pb
}

// FuzzParseWriteRequest: the ingester reads whatever valid encoding of a WriteRequest it is sent as
// the generated code does (fields in any order, repeated, unpacked hashes, unknown fields), and
// refuses what it refuses. The seeds run as a test.
func FuzzParseWriteRequest(f *testing.F) {
	hashes := []uint64{3, 1 << 60}
	f.Add(appendWriteRequest(nil, &forwardRequest{tenant: "a", compressed: true, hashes: hashes, payload: []byte("xyz")}))
	var b []byte
	b = protowire.AppendTag(b, fieldPayload, protowire.BytesType) // payload first
	b = protowire.AppendBytes(b, []byte("first"))
	b = protowire.AppendTag(b, 99, protowire.BytesType) // an unknown field
	b = protowire.AppendString(b, "later versions")
	for _, h := range hashes { // unpacked
		b = protowire.AppendTag(b, fieldSeriesHashes, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, h)
	}
	b = protowire.AppendTag(b, fieldTenant, protowire.BytesType)
	b = protowire.AppendString(b, "old")
	b = protowire.AppendTag(b, fieldTenant, protowire.BytesType) // the last one wins
	b = protowire.AppendString(b, "new")
	b = protowire.AppendTag(b, fieldCompression, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, fieldPayload, protowire.BytesType) // the last one wins
	b = protowire.AppendBytes(b, []byte("second"))
	b = protowire.AppendTag(b, fieldTenant, protowire.VarintType) // a wrong wire type: unknown field
	b = protowire.AppendVarint(b, 5)
	f.Add(b)
	f.Add([]byte{0x1a, 3, 1, 2, 3})
	f.Add([]byte{0x10, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		var want ingestpb.WriteRequest
		werr := proto.Unmarshal(b, &want)
		req := ingestRequest{buf: mem.SliceBuffer(b)}
		err := req.parse()
		defer req.release()
		var extras []write.SeriesExtra
		if err == nil && req.extras != nil { // parsed after the payload, as the ingester does
			extras, err = parseExtras(req.extras)
			if werr == nil && err != nil {
				require.ErrorContains(t, err, "unknown metric type") // the generated code takes any int32
				return
			}
		}
		if werr != nil {
			// The generated code also checks that the tenant is UTF-8; the ingester validates it
			// more strictly after parsing.
			if err == nil {
				require.ErrorContains(t, werr, "UTF-8")
			}
			return
		}
		if c := want.GetCompression(); c != ingestpb.Compression_COMPRESSION_NONE && c != ingestpb.Compression_COMPRESSION_SNAPPY {
			require.ErrorIs(t, err, errNewerRequest)
			return
		}
		require.NoError(t, err)
		var got []uint64
		if req.hashes != nil {
			got = *req.hashes
		}
		// Field by field: proto.Equal would also compare the unknown fields the generated code keeps.
		require.Equal(t, want.GetTenant(), req.tenant)
		require.Equal(t, want.GetCompression() == ingestpb.Compression_COMPRESSION_SNAPPY, req.compressed)
		require.Equal(t, want.GetSeriesHashes(), got)
		require.Equal(t, string(want.GetPayload()), string(req.payload))
		require.Len(t, extras, len(want.GetExtras()))
		for i, e := range want.GetExtras() {
			require.Equal(t, e.GetHelp(), extras[i].Metadata.Help)
			require.Equal(t, e.GetUnit(), extras[i].Metadata.Unit)
			require.Equal(t, metricTypes[writev2.Metadata_MetricType(e.GetType())], extras[i].Metadata.Type)
			require.Equal(t, len(e.GetStarts()), len(extras[i].Starts))
			for j, st := range e.GetStarts() {
				require.Equal(t, st, extras[i].Starts[j])
			}
		}
	})
}

// TestCodecDelegatesToProto: other services may share the server that forces this codec.
func TestCodecDelegatesToProto(t *testing.T) {
	c := newIngestCodec()
	out, err := c.Marshal(wrapperspb.String("hello"))
	require.NoError(t, err)
	var got wrapperspb.StringValue
	require.NoError(t, c.Unmarshal(out, &got))
	require.Equal(t, "hello", got.GetValue())
	require.Equal(t, "weir", c.Name())
}

// The generated code as the oracle of the hand-written WriteResponse.

// statsToProto is the WriteResponse of s, made with the generated code.
func statsToProto(s *write.Stats) *ingestpb.WriteResponse {
	resp := &ingestpb.WriteResponse{
		Samples:    uint64(max(s.Appended[write.KindFloat], 0)),
		Histograms: uint64(max(s.Appended[write.KindHistogram], 0)),
		Exemplars:  uint64(max(s.Appended[write.KindExemplar], 0)),
	}
	if len(s.Rejected) > 0 {
		resp.Rejections = make([]*ingestpb.Rejection, len(s.Rejected))
	}
	for i := range s.Rejected {
		rj := &s.Rejected[i]
		text := ""
		if rj.Err != nil {
			text = rj.Err.Error()
		}
		resp.Rejections[i] = &ingestpb.Rejection{
			Series: uint64(max(rj.Series, 0)),
			Kind:   ingestpb.Kind(rj.Kind),
			Reason: wireText(rj.Reason),
			Count:  uint64(max(rj.Count, 0)),
			Error:  wireText(text),
		}
	}
	return resp
}

// statsFromProto fills s from a WriteResponse decoded by the generated code, with the checks of
// parseWriteResponse.
func statsFromProto(resp *ingestpb.WriteResponse, s *write.Stats) error {
	for k, n := range [...]uint64{resp.GetSamples(), resp.GetHistograms(), resp.GetExemplars()} {
		if n > maxWireCount {
			return fmt.Errorf("%w: %d points appended", errFrame, n)
		}
		s.Appended[k] = int(n)
	}
	if len(resp.GetRejections()) > 0 {
		s.Rejected = make([]write.Rejection, 0, len(resp.GetRejections()))
	}
	for _, r := range resp.GetRejections() {
		if r.GetSeries() > maxWireCount || r.GetCount() > maxWireCount {
			return fmt.Errorf("%w: rejection of series %d, count %d", errFrame, r.GetSeries(), r.GetCount())
		}
		if r.GetKind() < 0 || int(r.GetKind()) >= int(write.NumKinds) {
			return fmt.Errorf("%w: unknown kind %d", errFrame, r.GetKind())
		}
		rj := write.Rejection{Series: int(r.GetSeries()), Kind: write.Kind(r.GetKind()), Reason: r.GetReason(), Count: int(r.GetCount())}
		if r.GetError() != "" {
			rj.Err = errors.New(r.GetError())
		}
		s.Rejected = append(s.Rejected, rj)
	}
	return nil
}

// TestWriteResponseMatchesProto: the hand-written v2 reply is byte for byte what the generated code
// marshals, and reads back what the generated code marshals.
func TestWriteResponseMatchesProto(t *testing.T) {
	for _, st := range []write.Stats{
		{},
		{Appended: [write.NumKinds]int{2000, 0, 0}},
		{Appended: [write.NumKinds]int{1 << 33, 2, 3}},
		{Appended: [write.NumKinds]int{5, 0, 1}, Rejected: []write.Rejection{
			{Series: 0, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 2, Err: errors.New("out of order")},
			{Series: 1999, Kind: write.KindExemplar, Reason: write.ReasonExemplarsDisabled, Count: 1},
			{Series: 7, Kind: write.KindHistogram, Count: 1, Err: errors.New(strings.Repeat("é", maxErrorText))},
			{Series: 8, Kind: write.KindFloat, Reason: "bad\xff"},
		}},
	} {
		got := appendWriteResponse(nil, &st)
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(statsToProto(&st))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), "%+v", st)

		var viaProto, viaHand write.Stats
		require.NoError(t, statsFromProto(mustUnmarshalResponse(t, got), &viaProto))
		require.NoError(t, parseWriteResponse(want, &viaHand))
		require.Equal(t, viaProto, viaHand)
	}
}

func mustUnmarshalResponse(t testing.TB, b []byte) *ingestpb.WriteResponse {
	var resp ingestpb.WriteResponse
	require.NoError(t, proto.Unmarshal(b, &resp))
	return &resp
}

// FuzzParseWriteResponse: the router reads every WriteResponse as the generated code does. The seeds
// run as a test.
func FuzzParseWriteResponse(f *testing.F) {
	f.Add(appendWriteResponse(nil, &write.Stats{Appended: [write.NumKinds]int{3, 1, 0}, Rejected: []write.Rejection{
		{Series: 1, Kind: write.KindHistogram, Reason: "r", Count: 2, Err: errors.New("e")},
	}}))
	f.Add([]byte{0x22, 2, 0x10, 7})      // unknown kind
	f.Add([]byte{0x08, 1, 0x08, 2})      // the last one wins
	f.Add([]byte{0x2a, 1, 'x', 0x08, 1}) // an unknown field
	f.Fuzz(func(t *testing.T, b []byte) {
		var resp ingestpb.WriteResponse
		werr := proto.Unmarshal(b, &resp)
		var got write.Stats
		err := parseWriteResponse(b, &got)
		if werr != nil {
			// The generated code also checks that strings are UTF-8; a router takes any text.
			if err == nil {
				require.ErrorContains(t, werr, "UTF-8")
			}
			return
		}
		var want write.Stats
		if wantErr := statsFromProto(&resp, &want); wantErr != nil {
			require.ErrorIs(t, err, errFrame)
			return
		}
		require.NoError(t, err)
		require.Equal(t, want, got)
	})
}

// TestProtocolAllocations: v2 costs no more allocations than the v1 frames it replaces, on either side
// of a write (the hot path of every replica).
func TestProtocolAllocations(t *testing.T) {
	c := newIngestCodec()
	req := forwardRequest{tenant: "team-a", payload: make([]byte, 64<<10), compressed: true, hashes: make([]uint64, 2000)}
	stats := write.Stats{Appended: [write.NumKinds]int{2000, 0, 0}}
	roundTrip := func(legacy bool) func() {
		return func() {
			out, err := marshalRequest(c, &req, legacy)
			require.NoError(t, err)
			in := ingestRequest{legacy: legacy}
			require.NoError(t, c.Unmarshal(out, &in))
			require.NoError(t, in.parse())
			in.release()
			var reply any = &writeReply{stats: stats}
			var back any = &writeReply{}
			if legacy {
				reply, back = &legacyReply{stats: stats}, &legacyReply{}
			}
			out, err = c.Marshal(reply)
			require.NoError(t, err)
			require.NoError(t, c.Unmarshal(out, back))
			out.Free()
		}
	}
	v1 := testing.AllocsPerRun(100, roundTrip(true))
	v2 := testing.AllocsPerRun(100, roundTrip(false))
	t.Logf("allocations per write: v1 %v, v2 %v", v1, v2)
	require.LessOrEqual(t, v2, v1)
}
