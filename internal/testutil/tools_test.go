package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnavailable(t *testing.T) {
	t.Setenv("CI", "")
	ft := &fakeT{TB: t}
	ft.run(func(t testing.TB) { Unavailable(t, "no %s", "helm") })
	require.Contains(t, ft.skip, "SKIPPED LOUDLY")
	require.Contains(t, ft.skip, "no helm")
	require.Empty(t, ft.fatal)

	t.Setenv("CI", "true")
	ft = &fakeT{TB: t}
	ft.run(func(t testing.TB) { Unavailable(t, "no %s", "helm") })
	require.Contains(t, ft.fatal, "no helm")
	require.Empty(t, ft.skip)
}

func TestRequireTool(t *testing.T) {
	t.Setenv("CI", "")
	tool := filepath.Join(t.TempDir(), "tool")
	require.NoError(t, os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755))
	t.Setenv("WEIR_TEST_TOOL", tool)
	require.Equal(t, tool, RequireTool(t, "WEIR_TEST_TOOL", "bin/none", "make tools"))

	t.Setenv("WEIR_TEST_TOOL", "")
	ft := &fakeT{TB: t}
	ft.run(func(t testing.TB) { RequireTool(t, "WEIR_TEST_TOOL", "bin/no-such-tool", "make tools") })
	require.Contains(t, ft.skip, "no no-such-tool binary")
	require.Contains(t, ft.skip, "make tools")
}

func TestResolvePath(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	p, err := ResolvePath("go.mod") // not in the package directory: found at the root
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "go.mod"), p)
	_, err = ResolvePath("internal") // a directory
	require.Error(t, err)
}
