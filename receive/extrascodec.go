package receive

import (
	"fmt"

	"github.com/prometheus/common/model"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weir-metrics/weir/write"
)

// Series extras between nodes (ingestpb.WriteRequest.extras, WriteResponse.extras_stored): what a
// Remote Write 2.0 or OTLP series carries beyond the 1.0 payload travels beside it, one SeriesExtra
// message per series of the payload, so that the payload stays a 1.0 WriteRequest that every
// ingester decodes the same way.
//
// An ingester that stored the extras says so (extras_stored). One that does not know the field (an
// earlier release) would store the samples and drop the extras without a word, so a router that sent
// extras and gets no extras_stored counts that replica as failed (errExtrasNotStored, retryable):
// the sender retries until enough upgraded replicas hold everything, and nothing is dropped silently.

// Field numbers of the extras in ingestpb.WriteRequest, WriteResponse and SeriesExtra.
const (
	fieldExtras       protowire.Number = 5
	fieldExtrasStored protowire.Number = 5

	fieldExtraType   protowire.Number = 1
	fieldExtraHelp   protowire.Number = 2
	fieldExtraUnit   protowire.Number = 3
	fieldExtraStarts protowire.Number = 4
)

// errExtrasNotStored is the failure of a replica that did not store the extras it was sent.
var errExtrasNotStored = errorf(ClassUnavailable, "the ingester did not store the metadata and start timestamps of the write (it runs a release without Remote Write 2.0 support): upgrade it; the write is retried")

// appendExtras appends, for each series index in idx, extras[index] as a WriteRequest.extras field.
func appendExtras(b []byte, extras []write.SeriesExtra, idx []int32) []byte {
	for _, i := range idx {
		e := &extras[i]
		t := int(writev2.FromMetadataType(e.Metadata.Type))
		startsLen := 0
		for _, s := range e.Starts {
			startsLen += protowire.SizeVarint(uint64(s))
		}
		size := sizeVarintField(fieldExtraType, t) + sizeStringField(fieldExtraHelp, e.Metadata.Help) + sizeStringField(fieldExtraUnit, e.Metadata.Unit)
		if startsLen > 0 {
			size += protowire.SizeTag(fieldExtraStarts) + protowire.SizeBytes(startsLen)
		}
		b = protowire.AppendTag(b, fieldExtras, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = appendVarintField(b, fieldExtraType, t)
		b = appendStringField(b, fieldExtraHelp, e.Metadata.Help)
		b = appendStringField(b, fieldExtraUnit, e.Metadata.Unit)
		if startsLen > 0 {
			b = protowire.AppendTag(b, fieldExtraStarts, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(startsLen))
			for _, s := range e.Starts {
				b = protowire.AppendVarint(b, uint64(s))
			}
		}
	}
	return b
}

// parseExtras decodes the SeriesExtra messages fields (views of a received request); help and unit
// alias the messages.
func parseExtras(fields [][]byte) ([]write.SeriesExtra, error) {
	out := make([]write.SeriesExtra, 0, len(fields))
	var starts []int64
	for _, f := range fields {
		var e write.SeriesExtra
		e.Metadata.Type = model.MetricTypeUnknown
		s0 := len(starts)
		err := walkFields(f, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
			switch {
			case num == fieldExtraType && typ == protowire.VarintType:
				v, n := protowire.ConsumeVarint(b)
				t, ok := metricTypes[writev2.Metadata_MetricType(int32(v))]
				if n >= 0 && !ok {
					return 0, fmt.Errorf("%w: unknown metric type %d", errFrame, int32(v))
				}
				e.Metadata.Type = t
				return n, nil
			case (num == fieldExtraHelp || num == fieldExtraUnit) && typ == protowire.BytesType:
				v, n := protowire.ConsumeBytes(b)
				if num == fieldExtraHelp {
					e.Metadata.Help = str(v, 0, len(v))
				} else {
					e.Metadata.Unit = str(v, 0, len(v))
				}
				return n, nil
			case num == fieldExtraStarts && typ == protowire.BytesType:
				v, n := protowire.ConsumeBytes(b)
				for len(v) > 0 {
					s, k := protowire.ConsumeVarint(v)
					if k < 0 {
						return k, nil
					}
					starts = append(starts, int64(s))
					v = v[k:]
				}
				return n, nil
			case num == fieldExtraStarts && typ == protowire.VarintType:
				s, n := protowire.ConsumeVarint(b)
				starts = append(starts, int64(s))
				return n, nil
			}
			return protowire.ConsumeFieldValue(num, typ, b), nil
		})
		if err != nil {
			return nil, err
		}
		if len(starts) > s0 {
			e.Starts = starts[s0:] // re-sliced below: a later append may move starts
		}
		out = append(out, e)
	}
	// Point every entry's Starts into the final array.
	at := 0
	for i := range out {
		if n := len(out[i].Starts); n > 0 {
			out[i].Starts = starts[at : at+n : at+n]
			at += n
		}
	}
	return out, nil
}

// appendExtrasStored appends WriteResponse.extras_stored.
func appendExtrasStored(b []byte, stored bool) []byte {
	if !stored {
		return b
	}
	return appendVarintField(b, fieldExtrasStored, 1)
}

// parseExtrasStored reads WriteResponse.extras_stored (the last one wins, as in proto3).
func parseExtrasStored(b []byte) (stored bool, err error) {
	err = walkFields(b, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
		if num == fieldExtrasStored && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			stored = v != 0
			return n, nil
		}
		return protowire.ConsumeFieldValue(num, typ, b), nil
	})
	return stored, err
}
