package receive

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // the codec for every other message (registered by grpc itself too)
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weir-metrics/weir/receive/ingestpb"
	"github.com/weir-metrics/weir/write"
)

// The node-to-node write protocol, v2: one unary gRPC method, ingestWriteMethod, whose messages are
// described by receive/ingestpb/ingest.proto (WriteRequest and WriteResponse; read it first).
//
// A router already holds the payload encoded (the series' own bytes from the client's request, often
// the client's snappy body itself), so WriteRequest is written by hand (appendWriteRequest): its
// header fields, then the payload copied once from the router's buffer into the message buffer, as
// the v1 frame was. The ingester reads the tenant, compression and hashes and decodes the payload in
// place, as a view of the received message (parseWriteRequest). The WriteResponse is written and
// read by hand too, without the allocations of the generated code (appendWriteResponse). Tests and
// fuzz targets (codec_test.go) hold all of it to the generated code of the .proto.
//
// Errors travel as gRPC statuses: the code carries the error class (ingestClass in errors.go) and a
// google.rpc.ErrorInfo detail (domain ingestErrorDomain, reason the class's name) says that the
// ingest service answered, rather than the transport.
//
// # Rolling upgrades
//
// v1 (legacy.go: hand-encoded frames on weir.ingest.v1.Ingest/Write) is kept for one release, so that
// routers and ingesters one release apart work together in both upgrade orders:
//   - an ingester serves both methods, so routers of the previous release keep writing to it;
//   - a router writes with v2; an ingester of the previous release answers Unimplemented without the
//     service's ErrorInfo (gRPC's own "unknown service"), and the router sends the same write again
//     with v1 at once, and remembers that endpoint as v1 (PeerWriter.invoke). One write every
//     protocolReprobe, and the first after the endpoint was down (restarted, perhaps upgraded),
//     tries v2 again.
//
// So a ring can be upgraded in any order, one node at a time, without failed writes. The next
// release drops v1: before upgrading to it, every node must run this one.
const (
	ingestServiceName = "weir.ingest.v2.Ingest"
	ingestWriteMethod = "/" + ingestServiceName + "/Write"
	// maxErrorText bounds the error text of one rejection on the wire.
	maxErrorText = 512
	// codecName is the content-subtype of the ingest calls (application/grpc+weir).
	codecName = "weir"
)

// Field numbers of ingestpb.WriteRequest.
const (
	fieldTenant       protowire.Number = 1
	fieldCompression  protowire.Number = 2
	fieldSeriesHashes protowire.Number = 3
	fieldPayload      protowire.Number = 4
)

// forwardRequest is the request message on the router side.
type forwardRequest struct {
	tenant     string
	payload    []byte   // protobuf WriteRequest; copied by Marshal, so only needed during the call
	compressed bool     // payload is block-format snappy of it
	hashes     []uint64 // nil, or the SeriesHash of every series of payload
	extras     []byte   // nil, or the extras fields of every series of payload (extrascodec.go)
}

// ingestRequest is the request message on the ingester side: the received message, parsed by parse.
// Its buffers are held until release.
type ingestRequest struct {
	buf        mem.Buffer
	legacy     bool // buf is a v1 frame
	tenant     string
	payload    []byte // a view into buf
	compressed bool
	hashes     *[]uint64 // the series hashes (pooled); nil when there were none
	extras     [][]byte  // the series' SeriesExtra messages, views into buf; nil when there were none
}

// parse splits the received message into its parts; its error wraps errFrame.
func (r *ingestRequest) parse() error {
	if r.legacy {
		return r.parseLegacy()
	}
	return r.parseWriteRequest()
}

func (r *ingestRequest) release() {
	if r.buf != nil {
		r.buf.Free()
		r.buf = nil
	}
	r.payload, r.extras = nil, nil
	if r.hashes != nil {
		putHashes(r.hashes)
		r.hashes = nil
	}
}

// writeReply is the response message on both sides.
type writeReply struct {
	stats        write.Stats
	extrasStored bool // the ingester stored the series extras it was sent
}

// ingestCodec encodes the ingest messages as described above and hands every other message to the
// protobuf codec, so that it can be forced on a gRPC server that also serves protobuf services
// (grpc.ForceServerCodecV2 applies to the whole server) without a global registration.
type ingestCodec struct {
	proto encoding.CodecV2
	pool  mem.BufferPool
}

func newIngestCodec() ingestCodec {
	return ingestCodec{proto: encoding.GetCodecV2("proto"), pool: ingestBuffers}
}

func (ingestCodec) Name() string { return codecName }

func (c ingestCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *forwardRequest:
		// The message is written into a buffer that gRPC frees once it is on the wire: the caller's
		// payload may be reused as soon as the call returns, even if the transport still holds the
		// message (a call that ends early on a deadline).
		buf := c.pool.Get(writeRequestSize(m))
		*buf = appendWriteRequest((*buf)[:0], m)
		return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
	case *writeReply:
		return mem.BufferSlice{mem.SliceBuffer(appendExtrasStored(appendWriteResponse(make([]byte, 0, 32), &m.stats), m.extrasStored))}, nil
	case *legacyRequest:
		buf := c.pool.Get(legacyRequestSize(m))
		*buf = appendLegacyRequest((*buf)[:0], m)
		return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
	case *legacyReply:
		return mem.BufferSlice{mem.SliceBuffer(encodeStats(&m.stats))}, nil
	}
	return c.proto.Marshal(v)
}

func (c ingestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *ingestRequest:
		// Parsed by the service (ingestRequest.parse), not here: gRPC answers a codec error
		// Internal, and a malformed request is the sender's fault (InvalidArgument).
		m.buf = data.MaterializeToBuffer(c.pool)
		return nil
	case *writeReply:
		buf := data.MaterializeToBuffer(c.pool)
		defer buf.Free()
		if err := parseWriteResponse(buf.ReadOnlyData(), &m.stats); err != nil {
			return err
		}
		var err error
		m.extrasStored, err = parseExtrasStored(buf.ReadOnlyData())
		return err
	case *legacyReply:
		buf := data.MaterializeToBuffer(c.pool)
		defer buf.Free()
		return parseStats(buf.ReadOnlyData(), &m.stats)
	}
	return c.proto.Unmarshal(data, v)
}

var errFrame = errors.New("malformed ingest frame")

// errNewerRequest is a request this ingester does not understand because it comes from a router of a
// newer Weir (a v1 frame version, a compression it does not know), not a malformed one. It is
// answered Unimplemented, which the router counts as a failure of this replica (the client retries
// what misses its quorum), never as the client's fault (InvalidArgument would make the router answer
// 400, and the sender drop the batch).
var errNewerRequest = fmt.Errorf("%w: needs a newer ingester", errFrame)

// writeRequestSize is the length of the ingestpb.WriteRequest that appendWriteRequest writes for m.
func writeRequestSize(m *forwardRequest) int {
	n := 0
	if m.tenant != "" {
		n += protowire.SizeTag(fieldTenant) + protowire.SizeBytes(len(m.tenant))
	}
	if m.compressed {
		n += protowire.SizeTag(fieldCompression) + protowire.SizeVarint(uint64(ingestpb.Compression_COMPRESSION_SNAPPY))
	}
	if len(m.hashes) > 0 {
		n += protowire.SizeTag(fieldSeriesHashes) + protowire.SizeBytes(8*len(m.hashes))
	}
	if len(m.payload) > 0 {
		n += protowire.SizeTag(fieldPayload) + protowire.SizeBytes(len(m.payload))
	}
	return n + len(m.extras)
}

// appendWriteRequest appends m to b as an ingestpb.WriteRequest, byte for byte what proto.Marshal
// (deterministic) writes for the same message: fields in order, zero values left out, hashes packed.
func appendWriteRequest(b []byte, m *forwardRequest) []byte {
	if m.tenant != "" {
		b = protowire.AppendTag(b, fieldTenant, protowire.BytesType)
		b = protowire.AppendString(b, m.tenant)
	}
	if m.compressed {
		b = protowire.AppendTag(b, fieldCompression, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(ingestpb.Compression_COMPRESSION_SNAPPY))
	}
	if len(m.hashes) > 0 {
		b = protowire.AppendTag(b, fieldSeriesHashes, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(8*len(m.hashes)))
		for _, h := range m.hashes {
			b = protowire.AppendFixed64(b, h)
		}
	}
	if len(m.payload) > 0 {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, m.payload)
	}
	return append(b, m.extras...)
}

// parseWriteRequest fills r from its buffer, an ingestpb.WriteRequest, as proto.Unmarshal would:
// fields in any order, the last of a scalar winning, hashes packed or not, unknown fields and
// fields of an unexpected wire type skipped. The payload is a view into the buffer.
func (r *ingestRequest) parseWriteRequest() error {
	compression := uint64(ingestpb.Compression_COMPRESSION_NONE)
	err := walkFields(r.buf.ReadOnlyData(), func(num protowire.Number, typ protowire.Type, b []byte) (n int, err error) {
		switch {
		case num == fieldTenant && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			r.tenant = string(v)
		case num == fieldCompression && typ == protowire.VarintType:
			compression, n = protowire.ConsumeVarint(b)
		case num == fieldSeriesHashes && typ == protowire.BytesType:
			var v []byte
			if v, n = protowire.ConsumeBytes(b); n >= 0 && len(v)%8 != 0 {
				return 0, fmt.Errorf("%w: series hashes of %d bytes", errFrame, len(v))
			}
			for ; len(v) > 0; v = v[8:] {
				r.appendHash(protowire.ConsumeFixed64(v))
			}
		case num == fieldSeriesHashes && typ == protowire.Fixed64Type:
			var h uint64
			h, n = protowire.ConsumeFixed64(b)
			r.appendHash(h, n)
		case num == fieldPayload && typ == protowire.BytesType:
			r.payload, n = protowire.ConsumeBytes(b)
		case num == fieldExtras && typ == protowire.BytesType:
			var v []byte
			if v, n = protowire.ConsumeBytes(b); n >= 0 {
				r.extras = append(r.extras, v)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		return n, nil
	})
	if err != nil {
		return err
	}
	switch ingestpb.Compression(min(compression, math.MaxInt32)) {
	case ingestpb.Compression_COMPRESSION_NONE:
	case ingestpb.Compression_COMPRESSION_SNAPPY:
		r.compressed = true
	default:
		return fmt.Errorf("%w: compression %d", errNewerRequest, compression)
	}
	return nil
}

// appendHash adds a series hash that was read with n bytes (negative: a parse error, ignored here
// and reported by the caller).
func (r *ingestRequest) appendHash(h uint64, n int) {
	if n < 0 {
		return
	}
	if r.hashes == nil {
		r.hashes = getHashes()
	}
	*r.hashes = append(*r.hashes, h)
}

// hashPool holds the series hashes of received requests.
var hashPool = sync.Pool{New: func() any { return new([]uint64) }}

func getHashes() *[]uint64 { return hashPool.Get().(*[]uint64) }

func putHashes(h *[]uint64) {
	*h = (*h)[:0]
	hashPool.Put(h)
}

// wireText is s cut to at most maxErrorText bytes on a rune boundary and made valid UTF-8, which
// proto3 string fields must be (proto.Marshal refuses the whole message otherwise, and the reply would
// be lost for a byte of an error text).
func wireText(s string) string {
	if len(s) > maxErrorText {
		k := maxErrorText
		for k > 0 && !utf8.RuneStart(s[k]) {
			k--
		}
		s = s[:k]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// maxWireCount bounds the counts and indexes a router accepts in a WriteResponse: more than any
// request can hold, and small enough for an int on every platform Weir builds for.
const maxWireCount = 1 << 40

// Field numbers of ingestpb.WriteResponse and ingestpb.Rejection.
const (
	fieldSamples    protowire.Number = 1
	fieldHistograms protowire.Number = 2
	fieldExemplars  protowire.Number = 3
	fieldRejections protowire.Number = 4

	fieldRejectionSeries protowire.Number = 1
	fieldRejectionKind   protowire.Number = 2
	fieldRejectionReason protowire.Number = 3
	fieldRejectionCount  protowire.Number = 4
	fieldRejectionError  protowire.Number = 5
)

// appendWriteResponse appends s to b as an ingestpb.WriteResponse, byte for byte what proto.Marshal
// (deterministic) writes: by hand, because a reply is made for every write and the generated code's
// message, marshalling and parsing cost allocations that the v1 frame did not. Texts are cut to
// maxErrorText and made valid UTF-8 (wireText).
func appendWriteResponse(b []byte, s *write.Stats) []byte {
	for k, num := range [...]protowire.Number{fieldSamples, fieldHistograms, fieldExemplars} {
		if n := s.Appended[k]; n > 0 {
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(n))
		}
	}
	for i := range s.Rejected {
		rj := &s.Rejected[i]
		text := ""
		if rj.Err != nil {
			text = rj.Err.Error()
		}
		reason, text := wireText(rj.Reason), wireText(text)
		size := sizeVarintField(fieldRejectionSeries, rj.Series) + sizeVarintField(fieldRejectionKind, int(rj.Kind)) +
			sizeStringField(fieldRejectionReason, reason) + sizeVarintField(fieldRejectionCount, rj.Count) +
			sizeStringField(fieldRejectionError, text)
		b = protowire.AppendTag(b, fieldRejections, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = appendVarintField(b, fieldRejectionSeries, rj.Series)
		b = appendVarintField(b, fieldRejectionKind, int(rj.Kind))
		b = appendStringField(b, fieldRejectionReason, reason)
		b = appendVarintField(b, fieldRejectionCount, rj.Count)
		b = appendStringField(b, fieldRejectionError, text)
	}
	return b
}

// The helpers below leave out zero values, as proto3 does; negative numbers are written as zero.

func sizeVarintField(num protowire.Number, v int) int {
	if v <= 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(uint64(v))
}

func appendVarintField(b []byte, num protowire.Number, v int) []byte {
	if v <= 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func sizeStringField(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// parseWriteResponse decodes an ingestpb.WriteResponse into s, as proto.Unmarshal would (unknown
// fields skipped, the last of a repeated scalar wins), refusing counts over maxWireCount and kinds
// this build does not know.
func parseWriteResponse(b []byte, s *write.Stats) error {
	var appended [write.NumKinds]uint64
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
		switch {
		case num >= fieldSamples && num <= fieldExemplars && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			appended[num-fieldSamples] = v
			return n, nil
		case num == fieldRejections && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return n, nil
			}
			rj, err := parseRejection(v)
			if err != nil {
				return 0, err
			}
			s.Rejected = append(s.Rejected, rj)
			return n, nil
		}
		return protowire.ConsumeFieldValue(num, typ, b), nil
	})
	for k, v := range appended {
		if err == nil && v > maxWireCount {
			err = fmt.Errorf("%w: %d points appended", errFrame, v)
		}
		s.Appended[k] = int(min(v, maxWireCount))
	}
	return err
}

func parseRejection(b []byte) (write.Rejection, error) {
	var rj write.Rejection
	var series, kind, count uint64
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
		var n int
		switch {
		case typ == protowire.VarintType && (num == fieldRejectionSeries || num == fieldRejectionKind || num == fieldRejectionCount):
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			switch num {
			case fieldRejectionSeries:
				series = v
			case fieldRejectionKind:
				kind = v
			default:
				count = v
			}
			return n, nil
		case typ == protowire.BytesType && (num == fieldRejectionReason || num == fieldRejectionError):
			var text []byte
			text, n = protowire.ConsumeBytes(b)
			switch {
			case num == fieldRejectionReason:
				rj.Reason = string(text)
			case len(text) > 0:
				rj.Err = errors.New(string(text))
			default:
				rj.Err = nil
			}
			return n, nil
		}
		return protowire.ConsumeFieldValue(num, typ, b), nil
	})
	switch {
	case err != nil:
	case series > maxWireCount || count > maxWireCount:
		err = fmt.Errorf("%w: rejection of series %d, count %d", errFrame, series, count)
	case kind >= uint64(write.NumKinds):
		err = fmt.Errorf("%w: unknown kind %d", errFrame, kind)
	}
	rj.Series, rj.Count, rj.Kind = int(min(series, maxWireCount)), int(min(count, maxWireCount)), write.Kind(min(kind, uint64(write.NumKinds)))
	return rj, err
}

// walkFields calls field for every field of the protobuf message b, with the bytes after its key;
// field returns how many it consumed (negative: a protowire error).
func walkFields(b []byte, field func(num protowire.Number, typ protowire.Type, b []byte) (int, error)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %w", errFrame, protowire.ParseError(n))
		}
		if !num.IsValid() {
			return fmt.Errorf("%w: field number %d", errFrame, num)
		}
		b = b[n:]
		n, err := field(num, typ, b)
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %w", errFrame, num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
