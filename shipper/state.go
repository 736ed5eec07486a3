package shipper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/oklog/ulid/v2"
)

// StateFilename is the shipper's state file in the TSDB directory; same name and format as Thanos'.
const StateFilename = "thanos.shipper.json"

// stateVersion1 is the only version of the state file.
const stateVersion1 = 1

// State is the content of thanos.shipper.json: the blocks known to be in the bucket.
type State struct {
	Version  int         `json:"version"`
	Uploaded []ulid.ULID `json:"uploaded"`
}

// errStateVersion marks a state file of a version this package does not know.
var errStateVersion = errors.New("unknown shipper state file version")

// ReadState reads dir/thanos.shipper.json. A missing file gives an error satisfying
// errors.Is(err, fs.ErrNotExist); garbage or an unknown version gives another error. Callers treat any
// error as "state unknown" and rebuild it, never as fatal.
func ReadState(dir string) (State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFilename))
	if err != nil {
		return State{}, err
	}
	var s State
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&s); err != nil {
		return State{}, fmt.Errorf("parse %s: %w", StateFilename, err)
	}
	if dec.More() {
		return State{}, fmt.Errorf("parse %s: trailing data", StateFilename)
	}
	if s.Version != stateVersion1 {
		return State{}, fmt.Errorf("%s: %w %d", StateFilename, errStateVersion, s.Version)
	}
	return s, nil
}

// WriteState replaces dir/thanos.shipper.json atomically and durably: the content goes to a temporary
// file that is fsynced, renamed over the old file, and the directory is fsynced so the rename survives a
// crash. A crash at any point leaves either the old or the new file, never a torn one.
func WriteState(dir string, s State) (err error) {
	if s.Version == 0 {
		s.Version = stateVersion1
	}
	if s.Uploaded == nil {
		s.Uploaded = []ulid.ULID{} // "uploaded": [] rather than null
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(s); err != nil {
		return err
	}

	final := filepath.Join(dir, StateFilename)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(buf.Bytes()); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory so that entries created, renamed or removed in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
