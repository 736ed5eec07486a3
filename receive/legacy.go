package receive

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/weir-metrics/weir/write"
)

// COMPATIBILITY PATH — delete in the release after the one that introduced ingest protocol v2
// (issue 13), together with the v1 service in ingest.go (legacyServiceDesc), the fallback in peer.go
// (PeerWriter.invoke, peer.legacyUntil), ProtocolV1 and --debug.ingest-protocol, the message prefix
// check in errors.go (answeredByIngester), and the v1 cases of the tests (legacy: true,
// protocolPairs, e2e TestRingTwoProtocolBuilds, which then needs a v2 successor to test).
//
// Protocol v1: the hand-encoded frames of weir.ingest.v1.Ingest/Write, which Weir spoke before v2.
// Ingesters still serve it, for routers of the previous release during a rolling upgrade; routers
// send it to ingesters that answer the v2 method Unimplemented (ingesters of the previous release).
//
// Request (router → ingester):
//
//	byte     version: 1 when the payload is snappy-compressed, 2 when it is not; 3 and 4 are 1 and 2
//	         with the series' hashes
//	uvarint  length of the tenant ID, then the tenant ID
//	         versions 3 and 4: uvarint number of hashes, then per series of the payload, in order,
//	         its hashring.SeriesHash (8 bytes, little-endian)
//	bytes    the rest: the payload, as the v2 WriteRequest's
//
// A version an ingester does not know is answered Unimplemented (with the service's ErrorInfo, so a
// router does not take it for a missing method).
//
// Response (ingester → router), the write.Stats of the write:
//
//	byte     version (1)
//	uvarint  ×3 points appended: samples, histograms, exemplars
//	uvarint  number of rejections, then per rejection:
//	         uvarint series (index in the request's series), byte kind (write.Kind), uvarint length
//	         and reason, uvarint count, uvarint length and error text (at most maxErrorText bytes)
const (
	legacyServiceName    = "weir.ingest.v1.Ingest"
	legacyWriteMethod    = "/" + legacyServiceName + "/Write"
	wireVersion          = 1 // of responses, and of requests with a snappy payload
	wireVersionRaw       = 2 // of requests with an uncompressed payload
	wireVersionHashed    = 3 // of requests with a snappy payload and the series' hashes
	wireVersionRawHashed = 4 // of requests with an uncompressed payload and the series' hashes
)

// legacyRequest is a forwardRequest sent as a v1 frame.
type legacyRequest forwardRequest

// legacyReply is a writeReply received or sent as a v1 frame.
type legacyReply writeReply

// appendLegacyRequest appends the v1 frame of m to b.
func appendLegacyRequest(b []byte, m *legacyRequest) []byte {
	b = append(b, requestVersion(m.compressed, m.hashes != nil))
	b = binary.AppendUvarint(b, uint64(len(m.tenant)))
	b = append(b, m.tenant...)
	if m.hashes != nil {
		b = binary.AppendUvarint(b, uint64(len(m.hashes)))
		for _, h := range m.hashes {
			b = binary.LittleEndian.AppendUint64(b, h)
		}
	}
	return append(b, m.payload...)
}

// legacyRequestSize is the length of the v1 frame of m.
func legacyRequestSize(m *legacyRequest) int {
	n := 1 + uvarintLen(uint64(len(m.tenant))) + len(m.tenant) + len(m.payload)
	if m.hashes != nil {
		n += uvarintLen(uint64(len(m.hashes))) + 8*len(m.hashes)
	}
	return n
}

// parseLegacy fills r from its buffer, a v1 frame.
func (r *ingestRequest) parseLegacy() error {
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

// errFrameVersion is a v1 frame of a version this ingester does not know.
var errFrameVersion = fmt.Errorf("%w: unknown version", errNewerRequest)

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

// encodeStats returns the response frame of s.
func encodeStats(s *write.Stats) []byte {
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
func parseStats(b []byte, s *write.Stats) error {
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
		s.Rejected = make([]write.Rejection, 0, n)
	}
	for range n {
		rj := write.Rejection{Series: d.int()}
		rj.Kind = write.Kind(d.byte())
		rj.Reason = d.string()
		rj.Count = d.int()
		if text := d.string(); text != "" {
			rj.Err = errors.New(text)
		}
		if d.err != nil {
			break
		}
		if rj.Kind >= write.NumKinds {
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
