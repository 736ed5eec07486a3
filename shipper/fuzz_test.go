package shipper

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The readers of the two JSON files a shipper trusts from disk or from the bucket: thanos.shipper.json
// (ReadState) and a block's meta.json (ParseMeta, readBlockMeta). Either can be torn or tampered with;
// readers must return an error, never panic, and what they accept must survive a write and a re-read
// unchanged. Seed corpora: testdata/fuzz/FuzzReadState and testdata/fuzz/FuzzParseMeta.

// FuzzReadState: any file content is read without panic; an accepted state is version 1, and writing
// it with WriteState and reading it back gives the same blocks in the same order.
func FuzzReadState(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFilename), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := ReadState(dir)
		if err != nil {
			return
		}
		if s.Version != stateVersion1 {
			t.Fatalf("accepted a state of version %d", s.Version)
		}
		out := t.TempDir()
		if err := WriteState(out, s); err != nil {
			t.Fatalf("WriteState of an accepted state: %v", err)
		}
		back, err := ReadState(out)
		if err != nil {
			t.Fatalf("re-reading a written state: %v", err)
		}
		if back.Version != s.Version || !slices.Equal(back.Uploaded, s.Uploaded) {
			t.Fatalf("round trip changed the state: %+v, then %+v", s, back)
		}
	})
}

// FuzzParseMeta: any meta.json is parsed without panic; an accepted one encodes to a form that parses
// again and encodes to the same bytes (nothing is lost or invented on a second pass), and the TSDB
// reader of a local block accepts it too, with the same TSDB fields.
func FuzzParseMeta(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMeta(data)
		if err != nil {
			return
		}
		if m.Thanos.Labels == nil {
			t.Fatal("accepted meta.json without a labels map")
		}
		first, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of an accepted meta.json: %v", err)
		}
		again, err := ParseMeta(first)
		if err != nil {
			t.Fatalf("re-parsing an encoded meta.json: %v\n%s", err, first)
		}
		second, err := again.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("encoding is not stable:\n%s\nthen\n%s", first, second)
		}

		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, MetaFilename), data, 0o644); err != nil {
			t.Fatal(err)
		}
		bm, err := readBlockMeta(dir)
		if err != nil {
			t.Fatalf("readBlockMeta refuses what ParseMeta accepts: %v", err)
		}
		if bm.ULID != m.ULID || bm.MinTime != m.MinTime || bm.MaxTime != m.MaxTime || bm.Version != m.Version {
			t.Fatalf("readBlockMeta and ParseMeta disagree: %+v vs %+v", bm, m.BlockMeta)
		}
	})
}
