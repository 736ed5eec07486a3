package receive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Protobuf wire-format primitives for the hand-written WriteRequest decoder (unmarshal.go): reading
// varints, tags, lengths and doubles, and skipping fields, with gogo's exact bounds checks and errors,
// so that the decoder accepts and refuses what gogo's generated code does.

// Wire types.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

var (
	errVarintOverflow  = errors.New("proto: integer overflow")
	errInvalidLength   = errors.New("proto: negative length found during unmarshaling")
	errUnexpectedGroup = errors.New("proto: unexpected end of group")
)

// uvarint reads the varint at b[i:] and returns it with the index after it. As gogo's code, it reads
// at most 10 bytes and drops the bits beyond 64.
func uvarint(b []byte, i int) (uint64, int, error) {
	if uint(i) < uint(len(b)) && b[i] < 0x80 {
		return uint64(b[i]), i + 1, nil
	}
	return uvarintSlow(b, i)
}

//go:noinline (so that uvarint's fast path inlines)
func uvarintSlow(b []byte, i int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, 0, errVarintOverflow
		}
		if i >= len(b) {
			return 0, 0, io.ErrUnexpectedEOF
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i, nil
		}
	}
}

// readTag reads the field key at b[i:]: field number (truncated to 32 bits, as gogo does), wire type
// and the index after the key. It refuses an end-group key and field numbers below 1.
func readTag(b []byte, i int, msg string) (field int32, wt int, next int, err error) {
	v, next, err := uvarint(b, i)
	if err != nil {
		return 0, 0, 0, err
	}
	field, wt = int32(v>>3), int(v&7)
	if wt == wireEndGroup || field <= 0 {
		return 0, 0, 0, badTag(msg, field, wt)
	}
	return field, wt, next, nil
}

//go:noinline
func badTag(msg string, field int32, wt int) error {
	if wt == wireEndGroup {
		return fmt.Errorf("proto: %s: wiretype end group for non-group", msg)
	}
	return fmt.Errorf("proto: %s: illegal tag %d (wire type %d)", msg, field, wt)
}

// readLen reads the length prefix at b[i:] and returns the bounds of the bytes it announces.
func readLen(b []byte, i int) (start, end int, err error) {
	v, i, err := uvarint(b, i)
	if err != nil {
		return 0, 0, err
	}
	n := int(v)
	if n < 0 {
		return 0, 0, errInvalidLength
	}
	end = i + n
	if end < 0 {
		return 0, 0, errInvalidLength
	}
	if end > len(b) {
		return 0, 0, io.ErrUnexpectedEOF
	}
	return i, end, nil
}

// readDouble reads the little-endian float64 at b[i:].
func readDouble(b []byte, i int) (float64, int, error) {
	if len(b)-i < 8 {
		return 0, 0, io.ErrUnexpectedEOF
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b[i:])), i + 8, nil
}

func wrongWireType(wt int, field string) error {
	return fmt.Errorf("proto: wrong wireType = %d for field %s", wt, field)
}

// skipField skips the unknown field whose key starts at b[i:] and returns the index after it.
func skipField(b []byte, i int) (int, error) {
	n, err := skipProto(b[i:])
	if err != nil {
		return 0, err
	}
	if n < 0 || i+n < 0 {
		return 0, errInvalidLength
	}
	if i+n > len(b) {
		return 0, io.ErrUnexpectedEOF
	}
	return i + n, nil
}

// skipProto returns the length of the field (key included) at the start of b. It is gogo's skipTypes:
// groups are skipped whole, and fixed-size values are not bounds-checked here but by the caller.
func skipProto(b []byte) (int, error) {
	l := len(b)
	i := 0
	depth := 0
	for i < l {
		key, next, err := uvarint(b, i)
		if err != nil {
			return 0, err
		}
		i = next
		switch wt := int(key & 7); wt {
		case wireVarint:
			for shift := uint(0); ; shift += 7 {
				if shift >= 64 {
					return 0, errVarintOverflow
				}
				if i >= l {
					return 0, io.ErrUnexpectedEOF
				}
				i++
				if b[i-1] < 0x80 {
					break
				}
			}
		case wireFixed64:
			i += 8
		case wireBytes:
			v, next, err := uvarint(b, i)
			if err != nil {
				return 0, err
			}
			n := int(v)
			if n < 0 {
				return 0, errInvalidLength
			}
			i = next + n
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return 0, errUnexpectedGroup
			}
			depth--
		case wireFixed32:
			i += 4
		default:
			return 0, fmt.Errorf("proto: illegal wireType %d", wt)
		}
		if i < 0 {
			return 0, errInvalidLength
		}
		if depth == 0 {
			return i, nil
		}
	}
	return 0, io.ErrUnexpectedEOF
}
