package receive

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// OTLP/HTTP bodies: an ExportMetricsServiceRequest as binary protobuf or as protobuf JSON, gzip or
// not compressed (the OTLP/HTTP specification; the OpenTelemetry SDKs and Collector send these).
const (
	otlpProtobuf = "application/x-protobuf"
	otlpJSON     = "application/json"
)

// otlpFormat is the encoding of an OTLP request, and so of its answer.
type otlpFormat uint8

const (
	otlpFormatProtobuf otlpFormat = iota
	otlpFormatJSON
)

func (f otlpFormat) contentType() string {
	if f == otlpFormatJSON {
		return otlpJSON
	}
	return otlpProtobuf
}

// otlpContentType is the format of a request's body by its Content-Type. A request without one is
// taken as protobuf, the specification's default binary encoding. An unknown type is refused (415),
// and so answered in protobuf.
func otlpContentType(h http.Header) (otlpFormat, error) {
	ct := h.Get("Content-Type")
	if ct == "" {
		return otlpFormatProtobuf, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return otlpFormatProtobuf, errorf(ClassUnsupported, "unparsable Content-Type %q: %v", ct, err)
	}
	switch mt {
	case otlpProtobuf:
		return otlpFormatProtobuf, nil
	case otlpJSON:
		return otlpFormatJSON, nil
	}
	return otlpFormatProtobuf, errorf(ClassUnsupported, "unsupported Content-Type %q: OTLP/HTTP needs %s or %s", mt, otlpProtobuf, otlpJSON)
}

// otlpGzip reports whether the body is gzip-compressed (Content-Encoding: gzip); anything but gzip
// and identity is refused (415).
func otlpGzip(h http.Header) (bool, error) {
	switch enc := strings.TrimSpace(h.Get("Content-Encoding")); {
	case enc == "", strings.EqualFold(enc, "identity"):
		return false, nil
	case strings.EqualFold(enc, "gzip"):
		return true, nil
	default:
		return false, errorf(ClassUnsupported, "unsupported Content-Encoding %q: OTLP/HTTP bodies are gzip or not compressed", enc)
	}
}

var gzipPool sync.Pool // *gzip.Reader

// gunzip decompresses src into buf (reusing its capacity), failing once more than limit bytes came
// out: a few kilobytes of gzip can expand to gigabytes, so the limit is enforced while inflating.
func gunzip(src, buf []byte, limit int64) ([]byte, error) {
	zr, _ := gzipPool.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(src))
	} else {
		err = zr.Reset(bytes.NewReader(src))
	}
	if err != nil {
		return buf[:0], errorf(ClassInvalid, "body is not gzip: %v", err)
	}
	defer gzipPool.Put(zr)
	out, err := readBody(zr, buf, limit)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Class == ClassTooLarge {
			return out, errorf(ClassTooLarge, "body decompresses to more than the limit of %d bytes", limit)
		}
		return out, errorf(ClassInvalid, "body is not valid gzip: %v", errors.Unwrap(err))
	}
	return out, nil
}

// otlpUnmarshal decodes an ExportMetricsServiceRequest. The pdata decoders refuse malformed input
// with an error; they are fuzzed here (FuzzOTLP) for panics on hostile bodies.
func otlpUnmarshal(body []byte, f otlpFormat) (pmetric.Metrics, error) {
	req := pmetricotlp.NewExportRequest()
	var err error
	if f == otlpFormatJSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		return pmetric.Metrics{}, errorf(ClassInvalid, "body is not an OTLP ExportMetricsServiceRequest in %s%s: %v", f.contentType(), sniff(body), err)
	}
	return req.Metrics(), nil
}

// otlpBody is a request's body as read, and decompressed when it was compressed; Release hands its
// buffers back.
type otlpBody struct {
	raw, plain *[]byte
	data       []byte
}

func (b *otlpBody) Release() {
	for _, p := range []*[]byte{b.raw, b.plain} {
		if p != nil {
			bodyPool.Put(p)
		}
	}
	*b = otlpBody{}
}

// readOTLPBody reads the body of r within limits (413 over MaxBodyBytes as sent or MaxDecodedBytes
// decompressed) into pooled buffers.
func readOTLPBody(r *http.Request, limits DecodeLimits) (otlpBody, error) {
	zipped, err := otlpGzip(r.Header)
	if err != nil {
		return otlpBody{}, err
	}
	if r.ContentLength > limits.MaxBodyBytes {
		return otlpBody{}, &Error{Class: ClassTooLarge, Err: bodySizeError{fmt.Errorf("body of %d bytes is over the limit of %d bytes", r.ContentLength, limits.MaxBodyBytes)}}
	}
	b := otlpBody{raw: bodyPool.Get().(*[]byte)}
	limit := limits.MaxBodyBytes
	if !zipped && limits.MaxDecodedBytes < limit {
		limit = limits.MaxDecodedBytes
	}
	data, err := readBody(r.Body, *b.raw, limit)
	*b.raw = data
	if err != nil {
		b.Release()
		return otlpBody{}, err
	}
	if !zipped {
		b.data = data
		return b, nil
	}
	b.plain = bodyPool.Get().(*[]byte)
	plain, err := gunzip(data, *b.plain, limits.MaxDecodedBytes)
	*b.plain = plain
	if err != nil {
		b.Release()
		return otlpBody{}, err
	}
	b.data = plain
	return b, nil
}
