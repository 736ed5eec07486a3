package receive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

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
//	byte     version: 1 when the payload is snappy-compressed, 2 when it is not; 3 and 4 are 1 and 2
//	         with the series' hashes
//	uvarint  length of the tenant ID, then the tenant ID (validated again by the ingester)
//	         versions 3 and 4: uvarint number of hashes, then per series of the payload, in order,
//	         its hashring.SeriesHash (8 bytes, little-endian), which the ingester's series-reference
//	         cache uses instead of hashing the labels again; a count other than the payload's
//	         number of series is refused (InvalidArgument)
//	bytes    the rest: the protobuf prometheus.WriteRequest holding the series this ingester owns;
//	         with version 1 block-format snappy of it (a Remote Write 1.0 body), with version 2 as is
//
// Ingesters accept every version; a router sends versions 3 and 4 (the hashes cost it nothing: it
// computed them to place the series), and the one its compression setting
// (PeerConfig.Compression) asks for, so compression can be turned off after every ingester runs a
// version that reads version 2. A version an ingester does not know is answered Unimplemented (a
// failed replica, retried by the client), so routers must be upgraded after the ingesters when a
// version is added; routers do not fall back to an older version by themselves yet.
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
	ingestServiceName    = "weir.ingest.v1.Ingest"
	ingestWriteMethod    = "/" + ingestServiceName + "/Write"
	wireVersion          = 1 // of responses, and of requests with a snappy payload
	wireVersionRaw       = 2 // of requests with an uncompressed payload
	wireVersionHashed    = 3 // of requests with a snappy payload and the series' hashes
	wireVersionRawHashed = 4 // of requests with an uncompressed payload and the series' hashes
	// maxErrorText bounds the error text of one rejection on the wire.
	maxErrorText = 512
	// codecName is the content-subtype of the ingest calls (application/grpc+weir).
	codecName = "weir"
)

// forwardRequest is the request message on the router side.
type forwardRequest struct {
	tenant     string
	payload    []byte   // protobuf WriteRequest; copied by Marshal, so only needed during the call
	compressed bool     // payload is block-format snappy of it
	hashes     []uint64 // nil, or the SeriesHash of every series of payload (versions 3 and 4)
}

// ingestRequest is the request message on the ingester side: the received frame, parsed by parse.
// Its buffers are held until release.
type ingestRequest struct {
	buf        mem.Buffer
	tenant     string
	payload    []byte // a view into buf
	compressed bool
	hashes     *[]uint64 // the frame's series hashes (pooled); nil when it had none
}

// parse splits the received frame into its parts; its error wraps errFrame.
func (r *ingestRequest) parse() error {
	fr, err := parseRequestFrame(r.buf.ReadOnlyData())
	if err != nil {
		return err
	}
	r.tenant, r.payload, r.compressed = fr.tenant, fr.payload, fr.compressed
	if fr.hashed {
		r.hashes = getHashes()
		for h := fr.hashes; len(h) > 0; h = h[8:] {
			*r.hashes = append(*r.hashes, binary.LittleEndian.Uint64(h))
		}
	}
	return nil
}

func (r *ingestRequest) release() {
	if r.buf != nil {
		r.buf.Free()
		r.buf = nil
	}
	r.payload = nil
	if r.hashes != nil {
		putHashes(r.hashes)
		r.hashes = nil
	}
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
		if m.hashes != nil {
			n += uvarintLen(uint64(len(m.hashes))) + 8*len(m.hashes)
		}
		// The frame is copied into a buffer that gRPC frees once it is on the wire: the caller's
		// payload may be reused as soon as the call returns, even if the transport still holds the
		// frame (a call that ends early on a deadline).
		buf := c.pool.Get(n)
		b := (*buf)[:0]
		b = append(b, requestVersion(m.compressed, m.hashes != nil))
		b = binary.AppendUvarint(b, uint64(len(m.tenant)))
		b = append(b, m.tenant...)
		if m.hashes != nil {
			b = binary.AppendUvarint(b, uint64(len(m.hashes)))
			for _, h := range m.hashes {
				b = binary.LittleEndian.AppendUint64(b, h)
			}
		}
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
		// Parsed by the service (ingestRequest.parse), not here: gRPC answers a codec error
		// Internal, and a malformed frame is the sender's fault (InvalidArgument).
		m.buf = data.MaterializeToBuffer(c.pool)
		return nil
	case *writeReply:
		buf := data.MaterializeToBuffer(c.pool)
		defer buf.Free()
		return parseStats(buf.ReadOnlyData(), &m.stats)
	}
	return c.proto.Unmarshal(data, v)
}

var errFrame = errors.New("malformed ingest frame")

// errFrameVersion is a request frame of a version this ingester does not know: most likely a router
// of a newer Weir during a rolling upgrade, not a malformed request. It is answered Unimplemented,
// which the router counts as a failure of this replica (the client retries what misses its quorum),
// never as the client's fault (InvalidArgument would make the router answer 400, and the sender drop
// the batch).
var errFrameVersion = fmt.Errorf("%w: unknown version", errFrame)

// requestVersion is the version of a request frame with a compressed payload or not, with hashes
// or not.
func requestVersion(compressed, hashed bool) byte {
	switch {
	case compressed && hashed:
		return wireVersionHashed
	case hashed:
		return wireVersionRawHashed
	case compressed:
		return wireVersion
	}
	return wireVersionRaw
}

// requestFrame is a parsed request frame; payload and hashes are views into the frame.
type requestFrame struct {
	tenant     string // copied
	payload    []byte
	compressed bool
	hashed     bool   // the frame has hashes (versions 3 and 4), perhaps none
	hashes     []byte // 8 bytes per series, little-endian
}

// parseRequestFrame splits a request frame into its parts.
func parseRequestFrame(b []byte) (requestFrame, error) {
	var fr requestFrame
	if len(b) == 0 {
		return fr, fmt.Errorf("%w: empty", errFrame)
	}
	if b[0] < wireVersion || b[0] > wireVersionRawHashed {
		return fr, fmt.Errorf("%w %d", errFrameVersion, b[0])
	}
	fr.compressed = b[0] == wireVersion || b[0] == wireVersionHashed
	fr.hashed = b[0] >= wireVersionHashed
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return fr, fmt.Errorf("%w: bad tenant length", errFrame)
	}
	b = b[k:]
	fr.tenant, b = string(b[:n]), b[n:]
	if fr.hashed {
		n, k = binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k)/8 {
			return fr, fmt.Errorf("%w: bad number of hashes", errFrame)
		}
		b = b[k:]
		fr.hashes, b = b[:8*n], b[8*n:]
	}
	fr.payload = b
	return fr, nil
}

// hashPool holds the series hashes of received frames.
var hashPool = sync.Pool{New: func() any { return new([]uint64) }}

func getHashes() *[]uint64 { return hashPool.Get().(*[]uint64) }

func putHashes(h *[]uint64) {
	*h = (*h)[:0]
	hashPool.Put(h)
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
