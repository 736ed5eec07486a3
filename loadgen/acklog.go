package loadgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
)

// The ack log is a text file. Its first line is the header, AckLogHeader followed by the generator's
// Spec as JSON:
//
//	# weir-bench-acklog v1 {"tenants":1,"series":100000,"labels_per_series":10,…}
//
// Then one line per acknowledged (2xx) request, in the order the acknowledgements arrived:
//
//	<tenant> <first slot> <slot count> <churn> <timestamp ms>
//	tenant-0 0 2000 0 1767225600123
//
// The request held one sample per slot in [first slot, first slot + slot count), all stamped with the
// timestamp; the series in each slot follows from the churn count (SeriesID), its labels from its ID
// (SeriesLabels), and the sample's value from the ID and timestamp (Value). AckRecord.Samples does all
// of it. Requests that failed are not in the log. The log is flushed once a second and at the end of
// the run, so a run that is killed may miss its last second of acknowledgements (never the converse).

// AckLogHeader starts the first line of an ack log, before the Spec as JSON.
const AckLogHeader = "# weir-bench-acklog v1 "

// AckRecord is one acknowledged request.
type AckRecord struct {
	Tenant    string
	FirstSlot int
	Count     int
	Churn     uint64
	Timestamp int64 // milliseconds since the epoch
}

// Sample is one acknowledged sample.
type Sample struct {
	Tenant    string
	SeriesID  uint64
	Labels    labels.Labels
	Timestamp int64
	Value     float64
}

// Samples are the samples of the request, in the order they were sent.
func (r AckRecord) Samples(spec Spec) iter.Seq[Sample] {
	return func(yield func(Sample) bool) {
		sc := newSchema(spec)
		for slot := r.FirstSlot; slot < r.FirstSlot+r.Count; slot++ {
			id := SeriesID(spec, slot, r.Churn)
			if !yield(Sample{Tenant: r.Tenant, SeriesID: id, Labels: sc.labels(id), Timestamp: r.Timestamp, Value: Value(id, r.Timestamp)}) {
				return
			}
		}
	}
}

// ReadAckLog reads the header of the ack log at path and returns the Spec of the run that wrote it,
// and an iterator over its records (which opens the file again each time it is ranged over). A
// malformed line ends the iteration with an error naming the line.
func ReadAckLog(path string) (Spec, iter.Seq2[AckRecord, error], error) {
	f, err := os.Open(path)
	if err != nil {
		return Spec{}, nil, err
	}
	sc := bufio.NewScanner(f)
	spec, err := readHeader(sc)
	_ = f.Close()
	if err != nil {
		return Spec{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return spec, func(yield func(AckRecord, error) bool) {
		f, err := os.Open(path)
		if err != nil {
			yield(AckRecord{}, err)
			return
		}
		defer func() { _ = f.Close() }()
		sc := bufio.NewScanner(f)
		sc.Scan() // the header, read above
		for line := 2; sc.Scan(); line++ {
			rec, err := parseRecord(sc.Text())
			if err != nil {
				yield(AckRecord{}, fmt.Errorf("%s:%d: %w", path, line, err))
				return
			}
			if !yield(rec, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(AckRecord{}, fmt.Errorf("%s: %w", path, err))
		}
	}, nil
}

func readHeader(sc *bufio.Scanner) (Spec, error) {
	if !sc.Scan() {
		if sc.Err() != nil {
			return Spec{}, sc.Err()
		}
		return Spec{}, errors.New("empty file, not a weir bench ack log")
	}
	rest, ok := strings.CutPrefix(sc.Text(), AckLogHeader)
	if !ok {
		return Spec{}, errors.New("not a weir bench ack log (no header)")
	}
	var spec Spec
	if err := json.Unmarshal([]byte(rest), &spec); err != nil {
		return Spec{}, fmt.Errorf("header: %w", err)
	}
	if err := spec.Validate(); err != nil {
		return Spec{}, fmt.Errorf("header: %w", err)
	}
	return spec, nil
}

func parseRecord(s string) (AckRecord, error) {
	f := strings.Fields(s)
	if len(f) != 5 {
		return AckRecord{}, fmt.Errorf("%q: want 5 fields: tenant first-slot count churn timestamp", s)
	}
	var r AckRecord
	var err error
	r.Tenant = f[0]
	if r.FirstSlot, err = strconv.Atoi(f[1]); err != nil {
		return r, err
	}
	if r.Count, err = strconv.Atoi(f[2]); err != nil {
		return r, err
	}
	if r.Churn, err = strconv.ParseUint(f[3], 10, 64); err != nil {
		return r, err
	}
	if r.Timestamp, err = strconv.ParseInt(f[4], 10, 64); err != nil {
		return r, err
	}
	return r, nil
}

// ackWriter appends records to the ack log; safe for concurrent use.
type ackWriter struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	line []byte
	err  error
}

func createAckLog(path string, spec Spec) (*ackWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	hdr, _ := json.Marshal(spec)
	a := &ackWriter{f: f, w: bufio.NewWriterSize(f, 64<<10)}
	// Write errors surface at the first Flush.
	_, _ = a.w.WriteString(AckLogHeader)
	_, _ = a.w.Write(hdr)
	_ = a.w.WriteByte('\n')
	return a, nil
}

func (a *ackWriter) record(tenant string, b batch, churn uint64, ts int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.line[:0]
	l = append(l, tenant...)
	l = append(l, ' ')
	l = strconv.AppendInt(l, int64(b.first), 10)
	l = append(l, ' ')
	l = strconv.AppendInt(l, int64(b.count), 10)
	l = append(l, ' ')
	l = strconv.AppendUint(l, churn, 10)
	l = append(l, ' ')
	l = strconv.AppendInt(l, ts, 10)
	l = append(l, '\n')
	a.line = l
	if _, err := a.w.Write(l); err != nil && a.err == nil {
		a.err = err
	}
}

func (a *ackWriter) flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.w.Flush(); err != nil && a.err == nil {
		a.err = err
	}
	return a.err
}

func (a *ackWriter) close() error {
	err := a.flush()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	return err
}
