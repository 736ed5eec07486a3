package receive

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // the codec for every other message (registered by grpc itself too)
	"google.golang.org/grpc/mem"

	"github.com/weir-metrics/weir/tenant"
)

// The node-to-node write protocol: one unary gRPC method, ingestWriteMethod, whose messages are not
// protobuf but the small hand-written frames below, so that a router sends the bytes it already
// encoded without a second marshal and no .proto file or generated code is needed.
//
// Request (router → ingester):
//
//	byte     version: 1 when the payload is snappy-compressed, 2 when it is not
//	uvarint  length of the tenant ID, then the tenant ID (validated again by the ingester)
//	bytes    the rest: the protobuf prometheus.WriteRequest holding the series this ingester owns;
//	         with version 1 block-format snappy of it (a Remote Write 1.0 body), with version 2 as is
//
// Ingesters accept both versions; a router sends the one its compression setting
// (PeerConfig.Compression) asks for, so compression can be turned off after every ingester runs a
// version that reads version 2.
//
// Response (ingester → router), the tenant.WriteStats of the write:
//
//	byte     version (1)
//	uvarint  ×3 points appended: samples, histograms, exemplars
//	uvarint  number of rejections, then per rejection:
//	         uvarint series (index in the request's series), byte kind (tenant.Kind), uvarint length
//	         and reason, uvarint count, uvarint length and error text (at most maxErrorText bytes)
//
// A success costs a handful of bytes; rejections are rare. Errors travel as gRPC status codes (see
// ingest.go for the mapping and peer.go for the way back to error classes).
const (
	ingestServiceName = "weir.ingest.v1.Ingest"
	ingestWriteMethod = "/" + ingestServiceName + "/Write"
	wireVersion       = 1 // of responses, and of requests with a snappy payload
	wireVersionRaw    = 2 // of requests with an uncompressed payload
	// maxErrorText bounds the error text of one rejection on the wire.
	maxErrorText = 512
	// codecName is the content-subtype of the ingest calls (application/grpc+weir).
	codecName = "weir"
)

// forwardRequest is the request message on the router side.
type forwardRequest struct {
	tenant     string
	payload    []byte // protobuf WriteRequest; copied by Marshal, so only needed during the call
	compressed bool   // payload is block-format snappy of it
}

// ingestRequest is the request message on the ingester side. Its buffer is held until release.
type ingestRequest struct {
	buf        mem.Buffer
	tenant     string
	payload    []byte // a view into buf
	compressed bool
}

func (r *ingestRequest) release() {
	if r.buf != nil {
		r.buf.Free()
		r.buf = nil
	}
	r.payload = nil
}

// writeReply is the response message on both sides.
type writeReply struct {
	stats tenant.WriteStats
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
		n := 1 + uvarintLen(uint64(len(m.tenant))) + len(m.tenant) + len(m.payload)
		// The frame is copied into a buffer that gRPC frees once it is on the wire: the caller's
		// payload may be reused as soon as the call returns, even if the transport still holds the
		// frame (a call that ends early on a deadline).
		buf := c.pool.Get(n)
		b := (*buf)[:0]
		if m.compressed {
			b = append(b, wireVersion)
		} else {
			b = append(b, wireVersionRaw)
		}
		b = binary.AppendUvarint(b, uint64(len(m.tenant)))
		b = append(b, m.tenant...)
		b = append(b, m.payload...)
		*buf = b
		return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
	case *writeReply:
		return mem.BufferSlice{mem.SliceBuffer(encodeStats(&m.stats))}, nil
	}
	return c.proto.Marshal(v)
}

func (c ingestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *ingestRequest:
		buf := data.MaterializeToBuffer(c.pool)
		tenantID, payload, compressed, err := parseRequestFrame(buf.ReadOnlyData())
		if err != nil {
			buf.Free()
			return err
		}
		m.buf, m.tenant, m.payload, m.compressed = buf, tenantID, payload, compressed
		return nil
	case *writeReply:
		buf := data.MaterializeToBuffer(c.pool)
		defer buf.Free()
		return parseStats(buf.ReadOnlyData(), &m.stats)
	}
	return c.proto.Unmarshal(data, v)
}

var errFrame = errors.New("malformed ingest frame")

// parseRequestFrame splits a request frame into its tenant (copied) and payload (a view into b),
// and says whether the payload is compressed.
func parseRequestFrame(b []byte) (tenantID string, payload []byte, compressed bool, err error) {
	if len(b) == 0 || (b[0] != wireVersion && b[0] != wireVersionRaw) {
		return "", nil, false, fmt.Errorf("%w: unknown version", errFrame)
	}
	compressed = b[0] == wireVersion
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, false, fmt.Errorf("%w: bad tenant length", errFrame)
	}
	b = b[k:]
	return string(b[:n]), b[n:], compressed, nil
}

// encodeStats returns the response frame of s.
func encodeStats(s *tenant.WriteStats) []byte {
	b := make([]byte, 0, 8)
	b = append(b, wireVersion)
	for _, n := range s.Appended {
		b = binary.AppendUvarint(b, uint64(max(n, 0)))
	}
	b = binary.AppendUvarint(b, uint64(len(s.Rejected)))
	for i := range s.Rejected {
		rj := &s.Rejected[i]
		b = binary.AppendUvarint(b, uint64(max(rj.Series, 0)))
		b = append(b, byte(rj.Kind))
		b = appendString(b, rj.Reason)
		b = binary.AppendUvarint(b, uint64(max(rj.Count, 0)))
		text := ""
		if rj.Err != nil {
			text = rj.Err.Error()
		}
		if len(text) > maxErrorText {
			text = text[:maxErrorText]
		}
		b = appendString(b, text)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// parseStats decodes a response frame into s.
func parseStats(b []byte, s *tenant.WriteStats) error {
	d := frameDecoder{b: b}
	if v := d.byte(); v != wireVersion {
		return fmt.Errorf("%w: unknown version %d", errFrame, v)
	}
	for k := range s.Appended {
		s.Appended[k] = d.int()
	}
	n := d.int()
	if n > len(d.b) { // every rejection takes at least one byte
		return fmt.Errorf("%w: %d rejections in %d bytes", errFrame, n, len(d.b))
	}
	if n > 0 {
		s.Rejected = make([]tenant.Rejection, 0, n)
	}
	for range n {
		rj := tenant.Rejection{Series: d.int()}
		rj.Kind = tenant.Kind(d.byte())
		rj.Reason = d.string()
		rj.Count = d.int()
		if text := d.string(); text != "" {
			rj.Err = errors.New(text)
		}
		if d.err != nil {
			break
		}
		if rj.Kind >= tenant.NumKinds {
			return fmt.Errorf("%w: unknown kind %d", errFrame, rj.Kind)
		}
		s.Rejected = append(s.Rejected, rj)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errFrame, len(d.b))
	}
	return d.err
}

// frameDecoder reads a response frame; the first error sticks and later reads return zero values.
type frameDecoder struct {
	b   []byte
	err error
}

func (d *frameDecoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *frameDecoder) int() int {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 || v > 1<<40 {
		d.fail()
		return 0
	}
	d.b = d.b[k:]
	return int(v)
}

func (d *frameDecoder) string() string {
	n := d.int()
	if d.err != nil || n > len(d.b) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *frameDecoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated", errFrame)
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
