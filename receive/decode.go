package receive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/weir-metrics/weir/write"
)

// DecodeLimits bound what one request may cost before it is validated.
type DecodeLimits struct {
	// MaxBodyBytes bounds the compressed body; larger bodies get 413 without being read whole.
	MaxBodyBytes int64
	// MaxDecodedBytes bounds the decompressed body, checked against snappy's declared length before
	// anything is allocated for it (a few bytes can claim gigabytes).
	MaxDecodedBytes int64
	// Messages are the protobuf messages accepted (MessageV1, MessageV2); empty: both. A request for
	// another gets 415, which tells a Remote Write 2.0 sender to fall back to 1.0.
	Messages []string
}

// The protobuf messages of Remote Write 1.0 and 2.0, as Content-Type's proto parameter names them.
const (
	MessageV1 = "prometheus.WriteRequest"
	MessageV2 = "io.prometheus.write.v2.Request"
)

func (l DecodeLimits) accepts(msg string) bool {
	return len(l.Messages) == 0 || slices.Contains(l.Messages, msg)
}

// Request is a decoded remote-write request. Its memory is pooled: call Release when done with it,
// after which nothing from it may be used.
//
// Aliasing invariant: Write is not a deep copy of anything. Its label names and values (of series,
// exemplars and metadata) point into the request's decoded buffer, and its Timeseries, Labels, Samples,
// Exemplars, Histograms and Metadata slices are windows of arenas the Request keeps (unmarshal.go).
// Release hands all of that to the next request, which overwrites it. So whatever must outlive Release
// has to be copied first; reading, reordering and shortening in place before Release is fine. Who
// relies on this, and why it holds:
//   - validation (validate.go) drops, sorts and compacts in place; its error messages are formatted
//     (copied) when they are made;
//   - the handler answers and logs before its deferred Release; the ingest server likewise;
//   - the TSDB (tenant.Manager.Write) builds each series' labels with labels.ScratchBuilder, whose
//     Labels copies the strings in the default stringlabels build; copyStrings (unmarshal.go) makes
//     the decoder copy in builds where it would not;
//   - the router encodes every remote share (copying frames, see frames.go) before Router.Write returns and writes the local share
//     synchronously; background forwards only read their own copy.
//
// A new consumer that keeps label strings (a series cache keyed by them, say) must copy them.
type Request struct {
	Write prompb.WriteRequest
	// Message is the protobuf message the request came as: MessageV1 or MessageV2.
	Message string
	// Extras is nil (Remote Write 1.0), or for every series of Write.Timeseries what Remote Write 2.0
	// carries beyond 1.0 (metadata, start timestamps), in their order. It aliases as Write does.
	Extras []write.SeriesExtra

	body    *[]byte
	decoded []byte // the decompressed protobuf, which Write's strings alias; kept for reuse
	src     []byte // what was decoded: decoded, or the caller's buffer (DecodeRaw)
	// compressed is the snappy that decoded came from (the body, or DecodeBytes' argument); nil
	// after DecodeRaw.
	compressed []byte
	foreign    bool // src is the caller's (DecodeRaw)
	dec        decoder
}

var (
	bodyPool    = sync.Pool{New: func() any { return new([]byte) }}
	requestPool = sync.Pool{New: func() any { return new(Request) }}
)

// maxRetainedDecoded bounds the decoded buffer a pooled Request keeps for the next request.
const maxRetainedDecoded = 16 << 20

// Release returns the request and its buffers to their pools. The decoded buffer and the arenas stay
// with the Request, their lengths reset, to be reused by the next request decoded into it.
func (r *Request) Release() {
	r.reset()
	requestPool.Put(r)
}

// reset empties r for its next use, keeping what Release says it keeps.
func (r *Request) reset() {
	if r.body != nil {
		bodyPool.Put(r.body)
		r.body = nil
	}
	r.Write = prompb.WriteRequest{}
	r.Message, r.Extras = "", nil
	// After DecodeRaw, stale entries of the arenas point into the caller's buffer, which then stays
	// reachable from the pool until the entries are overwritten: a buffer of at most the size of
	// the decoded one every pooled Request keeps anyway, so they are only cleared when it is larger
	// than that bound (clearing them every time cost ~5% of an ingester's CPU).
	if r.foreign && len(r.src) > maxRetainedDecoded {
		r.dec.clearUsed()
	}
	r.foreign = false
	r.src, r.compressed = nil, nil
	if cap(r.decoded) > maxRetainedDecoded {
		r.decoded = nil
		r.dec.clearAll() // the arenas' strings would keep the big buffer alive
	}
	r.dec.reset()
}

// contentTypeProtobuf is the media type of both Remote Write versions.
const contentTypeProtobuf = "application/x-protobuf"

// checkHeaders returns the message a request's headers announce, Remote Write 1.0 or 2.0, both
// block-snappy protobuf. A missing Content-Encoding or Content-Type (or proto parameter) is taken as
// the 1.0 default, as Prometheus' own receiver does, so old senders keep working; anything else named
// explicitly, or a message not accepted, is refused with 415.
func checkHeaders(h http.Header, l DecodeLimits) (string, error) {
	if enc := h.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return "", errorf(ClassUnsupported, "unsupported Content-Encoding %q: remote write needs block-format snappy (Content-Encoding: snappy)", enc)
	}
	msg := MessageV1
	if ct := h.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return "", errorf(ClassUnsupported, "unparsable Content-Type %q: %v", ct, err)
		}
		if mt != contentTypeProtobuf {
			return "", errorf(ClassUnsupported, "unsupported Content-Type %q: remote write needs %s", mt, contentTypeProtobuf)
		}
		if p, ok := params["proto"]; ok {
			msg = p
		}
	}
	if (msg != MessageV1 && msg != MessageV2) || !l.accepts(msg) {
		return "", errorf(ClassUnsupported, "unsupported protobuf message %q in Content-Type: this receiver accepts %s", msg, strings.Join(l.accepted(), ", "))
	}
	return msg, nil
}

// accepted lists the messages l accepts.
func (l DecodeLimits) accepted() []string {
	if len(l.Messages) == 0 {
		return []string{MessageV1, MessageV2}
	}
	return l.Messages
}

// Decode reads, decompresses and unmarshals the body of a Remote Write 1.0 request within limits.
func Decode(r *http.Request, limits DecodeLimits) (*Request, error) {
	return decode(r, limits, nil)
}

// decode is Decode; when before is not nil it is called once the body is read, before it is
// decoded, and its error ends the decoding (the handler waits for a write slot there).
func decode(r *http.Request, limits DecodeLimits, before func() error) (*Request, error) {
	msg, err := checkHeaders(r.Header, limits)
	if err != nil {
		return nil, err
	}
	if r.ContentLength > limits.MaxBodyBytes {
		return nil, &Error{Class: ClassTooLarge, Err: bodySizeError{fmt.Errorf("body of %d bytes is over the limit of %d bytes", r.ContentLength, limits.MaxBodyBytes)}}
	}
	req := requestPool.Get().(*Request)
	req.body = bodyPool.Get().(*[]byte)

	body, err := readBody(r.Body, *req.body, limits.MaxBodyBytes)
	*req.body = body
	if err == nil && before != nil {
		err = before()
	}
	if err == nil {
		err = req.unmarshal(body, msg, limits.MaxDecodedBytes)
	}
	if err != nil {
		req.Release()
		return nil, err
	}
	return req, nil
}

// DecodeBytes decodes a snappy-compressed WriteRequest that is already in memory; fuzzing and
// benchmarks use it to exercise exactly what Decode does after reading. The request's Frames refer
// to compressed, which must stay unchanged while they are used.
func DecodeBytes(compressed []byte, maxDecoded int64) (*Request, error) {
	return decodeBytes(compressed, MessageV1, maxDecoded)
}

// decodeBytes is DecodeBytes for message msg (MessageV1 or MessageV2).
func decodeBytes(compressed []byte, msg string, maxDecoded int64) (*Request, error) {
	req := requestPool.Get().(*Request)
	if err := req.unmarshal(compressed, msg, maxDecoded); err != nil {
		req.Release()
		return nil, err
	}
	return req, nil
}

// DecodeRaw decodes an uncompressed protobuf WriteRequest without copying it: the request's strings
// and frames alias b, which must stay unchanged until Release. The ingest service uses it for the
// uncompressed payloads routers send (codec.go).
func DecodeRaw(b []byte, maxDecoded int64) (*Request, error) {
	if int64(len(b)) > maxDecoded {
		return nil, errorf(ClassTooLarge, "payload of %d bytes is over the limit of %d bytes", len(b), maxDecoded)
	}
	req := requestPool.Get().(*Request)
	req.src, req.foreign, req.Message = b, true, MessageV1
	if err := req.dec.unmarshal(b, &req.Write); err != nil {
		req.Release()
		return nil, errorf(ClassInvalid, "payload is not a protobuf prometheus.WriteRequest: %v", err)
	}
	return req, nil
}

func (r *Request) unmarshal(compressed []byte, msg string, maxDecoded int64) error {
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return errorf(ClassInvalid, "body is not block-format snappy%s: %v", sniff(compressed), err)
	}
	if int64(n) > maxDecoded {
		return errorf(ClassTooLarge, "body decompresses to %d bytes, over the limit of %d bytes", n, maxDecoded)
	}
	buf := r.decoded
	if cap(buf) < n {
		r.dec.clearAll() // stale strings in the arenas must not keep the old buffer alive
		buf = make([]byte, n)
	}
	buf = buf[:n]
	r.decoded, r.src, r.compressed = buf, buf, compressed
	if _, err := snappy.Decode(buf, compressed); err != nil {
		return errorf(ClassInvalid, "body is not block-format snappy%s: %v", sniff(compressed), err)
	}
	r.Message = msg
	if msg == MessageV2 {
		var err error
		if r.Extras, err = r.dec.unmarshalV2(buf, &r.Write); err != nil {
			return errorf(ClassInvalid, "body is not a valid protobuf %s: %v", MessageV2, err)
		}
		return nil
	}
	if err := r.dec.unmarshal(buf, &r.Write); err != nil {
		return errorf(ClassInvalid, "body is not a protobuf prometheus.WriteRequest: %v", err)
	}
	return nil
}

// errBodySize is what a 413 for the size of the body as sent (not as decompressed) is (errors.Is).
var errBodySize = errors.New("body over its size limit")

// bodySizeError marks a 413 for the size of the body as sent; its message is the wrapped one's.
type bodySizeError struct{ error }

func (e bodySizeError) Is(target error) bool { return target == errBodySize }
func (e bodySizeError) Unwrap() error        { return e.error }

// readBody reads all of body into buf (reusing its capacity), failing once more than limit bytes came.
func readBody(body io.Reader, buf []byte, limit int64) ([]byte, error) {
	b := bytes.NewBuffer(buf[:0])
	n, err := b.ReadFrom(io.LimitReader(body, limit+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The server's read timeout cut a slow upload: a stalled link is worth a retry.
		return b.Bytes(), errorf(ClassUnavailable, "reading body: not complete within the server's read timeout")
	}
	if err != nil {
		return b.Bytes(), errorf(ClassInvalid, "reading body: %v", err)
	}
	if n > limit {
		return b.Bytes(), &Error{Class: ClassTooLarge, Err: bodySizeError{fmt.Errorf("body is over the limit of %d bytes", limit)}}
	}
	return b.Bytes(), nil
}

// sniff names common wrong encodings so the error tells the sender what it did.
func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return " (it looks gzip-compressed)"
	case bytes.HasPrefix(b, []byte("\xff\x06\x00\x00sNaPpY")):
		return " (it is framed snappy; remote write uses the block format)"
	}
	return ""
}
