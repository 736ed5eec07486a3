package receive

// The router's fast path: a series that validation left as the sender encoded it is forwarded to its
// owners as the bytes it had in the request, instead of being marshalled again. A Remote Write 1.0
// WriteRequest is a sequence of fields; its series are field 1, length-delimited, so the body of
// a share is the concatenation of its series' fields, copied from the decoded request.
//
// Who decides that a series may be copied:
//   - the decoder (unmarshal.go) records each series' field, unless it skipped something in it (an
//     unknown field, a label not in canonical form): what is forwarded is then exactly what was
//     decoded, nothing the decoder dropped;
//   - validation (validate.go) forgets the field of a series it changed (labels dropped or sorted,
//     points removed), which is then marshalled from its decoded form as before.
//
// An ingester decodes a copied field with the same decoder, so it sees exactly the series the router
// validated (TestFastPathMatchesSlowPath checks this for random requests).

// span is a range of bytes [start, end); the zero span is empty.
type span struct{ start, end int }

func (s span) empty() bool { return s.start == s.end }

// SeriesFrames holds the original encoding of the series of a validated request, in the same order:
// for each series the bytes of its WriteRequest field (key, length and TimeSeries message), or nothing
// when it must be marshalled again. The zero value has no frames. It aliases the Request it comes from
// and is valid until that is released.
type SeriesFrames struct {
	buf   []byte
	spans []span
	body  []byte // the block-format snappy that buf was decoded from, when there is one
}

// Len is the number of series the frames describe (zero when there are none).
func (f SeriesFrames) Len() int { return len(f.spans) }

// frame returns the field of series i, or nil when it must be marshalled again.
func (f SeriesFrames) frame(i int) []byte {
	if i >= len(f.spans) || f.spans[i].empty() {
		return nil
	}
	sp := f.spans[i]
	return f.buf[sp.start:sp.end]
}

// wholeBody returns the client's compressed body when the frames are the whole decoded request:
// every series forwarded as it came, in order, with nothing before, between or after them. A share
// holding every series is then exactly that body once decompressed, so a router may send the
// body itself instead of copying the frames and compressing them again for each replica (which
// is every endpoint of a ring whose replication factor is its size). Else nil.
func (f SeriesFrames) wholeBody() []byte {
	if f.body == nil || len(f.spans) == 0 {
		return nil
	}
	at := 0
	for _, sp := range f.spans {
		if sp.empty() || sp.start != at {
			return nil
		}
		at = sp.end
	}
	if at != len(f.buf) {
		return nil
	}
	return f.body
}

// Frames returns the original encoding of r's series (r.Write.Timeseries, after validation).
func (r *Request) Frames() SeriesFrames {
	return SeriesFrames{buf: r.src, spans: r.dec.frames, body: r.compressed}
}
