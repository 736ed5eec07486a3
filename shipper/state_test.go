package shipper

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a, b := ulid.MustParse("01HKR2S8G00000000000000000"), ulid.MustParse("01HKR9M0G00000000000000000")

	require.NoError(t, WriteState(dir, State{}))
	raw, err := os.ReadFile(filepath.Join(dir, StateFilename))
	require.NoError(t, err)
	require.Equal(t, "{\n\t\"version\": 1,\n\t\"uploaded\": []\n}\n", string(raw))

	require.NoError(t, WriteState(dir, State{Version: 1, Uploaded: []ulid.ULID{a, b}}))
	raw, err = os.ReadFile(filepath.Join(dir, StateFilename))
	require.NoError(t, err)
	require.Equal(t, "{\n\t\"version\": 1,\n\t\"uploaded\": [\n\t\t\"01HKR2S8G00000000000000000\",\n\t\t\"01HKR9M0G00000000000000000\"\n\t]\n}\n", string(raw))
	st, err := ReadState(dir)
	require.NoError(t, err)
	require.Equal(t, State{Version: 1, Uploaded: []ulid.ULID{a, b}}, st)

	// No temporary file is left behind.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
}

func TestReadStateErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadState(dir)
	require.ErrorIs(t, err, os.ErrNotExist)

	for name, content := range map[string]string{
		"garbage":         "\x00\xffnot json",
		"truncated":       `{"version": 1, "uploaded": ["01HKR2S8G0`,
		"bad ulid":        `{"version": 1, "uploaded": ["not-a-ulid"]}`,
		"trailing data":   `{"version": 1, "uploaded": []} {}`,
		"version 0":       `{"uploaded": []}`,
		"unknown version": `{"version": 2, "uploaded": []}`,
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, StateFilename), []byte(content), 0o644))
			_, err := ReadState(dir)
			require.Error(t, err)
		})
	}

	// Thanos writes "uploaded": null for a directory without blocks; that is a valid file.
	require.NoError(t, os.WriteFile(filepath.Join(dir, StateFilename), []byte(`{"version": 1, "uploaded": null}`), 0o644))
	st, err := ReadState(dir)
	require.NoError(t, err)
	require.Empty(t, st.Uploaded)
}
