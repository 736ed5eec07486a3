package loadgen

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadAckLog: the ack log is what the container tests' verifier trusts to know what was
// acknowledged, so its reader must refuse a damaged file with an error, never panic and never invent
// records. Any file is read without panic; from an accepted header, the records that parse are written
// again with the writer of `weir bench` and read back identical; and their samples can be enumerated
// (for small specs and counts, to keep each input fast). Seed corpus: testdata/fuzz/FuzzReadAckLog.
func FuzzReadAckLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "ack.log")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		spec, records, err := ReadAckLog(path)
		if err != nil {
			return
		}
		if err := spec.Validate(); err != nil {
			t.Fatalf("accepted a header with an invalid spec: %v", err)
		}
		var got []AckRecord
		for rec, err := range records {
			if err != nil {
				break // a malformed line ends the log; what came before stands
			}
			got = append(got, rec)
			if spec.LabelValueCardinality <= 100 && spec.LabelsPerSeries <= 16 && rec.Count >= 0 && rec.Count <= 4 {
				for range rec.Samples(spec) {
				}
			}
		}

		again := filepath.Join(dir, "again.log")
		w, err := createAckLog(again, spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			w.record(r.Tenant, batch{first: r.FirstSlot, count: r.Count}, r.Churn, r.Timestamp)
		}
		if err := w.close(); err != nil {
			t.Fatal(err)
		}
		spec2, records2, err := ReadAckLog(again)
		if err != nil {
			t.Fatalf("re-reading a written ack log: %v", err)
		}
		if spec2 != spec {
			t.Fatalf("spec changed on a round trip: %+v, then %+v", spec, spec2)
		}
		i := 0
		for rec, err := range records2 {
			if err != nil {
				t.Fatalf("re-reading record %d: %v", i, err)
			}
			if i >= len(got) || rec != got[i] {
				t.Fatalf("record %d changed on a round trip: %+v", i, rec)
			}
			i++
		}
		if i != len(got) {
			t.Fatalf("%d records written, %d read back", len(got), i)
		}
	})
}
