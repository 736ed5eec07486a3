package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// MountTmpfs mounts a tmpfs of size bytes on a fresh directory for a test that needs a volume it can
// fill (full-disk tests), and unmounts it when the test ends. It needs root, as CI has; elsewhere the
// test ends through Unavailable.
func MountTmpfs(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		Unavailable(t, "mounting a %d-byte tmpfs volume needs root: %v", size, err)
	}
	// Registered after TempDir's cleanup, so it runs first: the files go with the mount.
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// ResizeTmpfs grows (or shrinks) a tmpfs that MountTmpfs mounted, keeping its files.
func ResizeTmpfs(t testing.TB, dir string, size int) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("resize tmpfs %s: %v", dir, err)
	}
}

// FillVolume writes a file at path until its volume has at most leave bytes free. With leave 0,
// running out of space first (another writer took some meanwhile) is what was asked for.
func FillVolume(t testing.TB, path string, leave uint64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatalf("statfs: %v", err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free <= leave {
		t.Fatalf("%s has %d bytes free, not more than %d", filepath.Dir(path), free, leave)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Write(make([]byte, free-leave)); err != nil && (leave > 0 || !errors.Is(err, unix.ENOSPC)) {
		t.Fatalf("fill volume: %v", err)
	}
}
