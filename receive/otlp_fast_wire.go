package receive

import (
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Wire-level reading for the OTLP fast path (otlp_fast.go). The fast path reads only what it fully
// understands: a field it does not know, a wire type other than the one its field has, a group, a
// singular field given twice or a malformed varint or length makes it decline the request, and pdata
// then decodes the body (and refuses it, if it is malformed). So every body the fast path accepts is
// one pdata decodes without error, to the same values.

// pbField is one field of a protobuf message: its number and type, and its value (v for varint and
// fixed64 fields, b for length-delimited ones).
type pbField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// nextField reads the field at the start of b and returns it with the rest of b; ok is false for
// anything but a well-formed varint, fixed64 or length-delimited field.
func nextField(b []byte) (f pbField, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return f, nil, false
	}
	b = b[n:]
	f.num, f.typ = num, typ
	switch typ {
	case protowire.VarintType:
		f.v, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		f.v, n = protowire.ConsumeFixed64(b)
	case protowire.BytesType:
		f.b, n = protowire.ConsumeBytes(b)
	default:
		return f, nil, false
	}
	if n < 0 {
		return f, nil, false
	}
	return f, b[n:], true
}

// fieldSet tracks the singular fields (numbers below 64) seen in one message, so that a repeated
// singular field, which pdata would merge or overwrite, declines instead.
type fieldSet uint64

// once records f and reports whether it was the first time.
func (s *fieldSet) once(num protowire.Number) bool {
	bit := fieldSet(1) << (uint(num) & 63)
	if *s&bit != 0 {
		return false
	}
	*s |= bit
	return true
}

// otlpKV is an attribute: key and value as the translator reads it (pcommon.Value.AsString).
type otlpKV struct {
	key, value string
}

// parseKeyValue reads a KeyValue whose value is a string, a bool or an int; other values (doubles,
// bytes, arrays, maps, none) decline: their text form is pcommon's to define.
func (d *otlpFastDecoder) parseKeyValue(b []byte) (otlpKV, bool) {
	var kv otlpKV
	var seen fieldSet
	var hasValue bool
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.typ != protowire.BytesType || !seen.once(f.num) {
			return kv, false
		}
		b = rest
		switch f.num {
		case 1:
			kv.key = str(f.b, 0, len(f.b))
		case 2:
			if kv.value, ok = d.parseAnyValue(f.b); !ok {
				return kv, false
			}
			hasValue = true
		default:
			return kv, false
		}
	}
	return kv, hasValue
}

// parseAnyValue is the text of an AnyValue holding exactly one string, bool or int.
func (d *otlpFastDecoder) parseAnyValue(b []byte) (string, bool) {
	f, rest, ok := nextField(b)
	if !ok || len(rest) > 0 {
		return "", false
	}
	switch {
	case f.num == 1 && f.typ == protowire.BytesType:
		return str(f.b, 0, len(f.b)), true
	case f.num == 2 && f.typ == protowire.VarintType:
		return strconv.FormatBool(f.v != 0), true
	case f.num == 3 && f.typ == protowire.VarintType:
		return strconv.FormatInt(int64(f.v), 10), true
	}
	return "", false
}

// packedFixed64 is the number of values of a packed repeated fixed64/double field, ok false when its
// length is not a multiple of 8.
func packedFixed64(b []byte) (int, bool) {
	return len(b) / 8, len(b)%8 == 0
}

// fixed64At is the i-th value of a packed fixed64 field.
func fixed64At(b []byte, i int) uint64 {
	v, _ := protowire.ConsumeFixed64(b[8*i:])
	return v
}
