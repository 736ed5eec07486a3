package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Unavailable ends a test that cannot run here because something outside the repository is missing
// (a tool, an image, a free default port). It skips loudly; under CI=true it fails, because there a
// missing tool is a broken setup, and a skipped test would pass unnoticed.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	banner := "\n\n" + strings.Repeat("*", 72) + "\n*  SKIPPED LOUDLY, THIS TEST DID NOT RUN: " + msg + "\n" + strings.Repeat("*", 72) + "\n"
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true and this test cannot run: " + msg)
	}
	t.Skip(banner)
}

// RequireTool returns the absolute path of a tool binary: $env when it is set, else def (a path
// relative to the repository root, such as bin/prometheus). When the file is missing the test ends
// through Unavailable; install tells how to get the tool.
func RequireTool(t testing.TB, env, def, install string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		path = def
	}
	abs, err := ResolvePath(path)
	if err != nil {
		Unavailable(t, "no %s binary (%v); install it with `%s`, or set %s", filepath.Base(def), err, install, env)
	}
	return abs
}

// RequireDocker ends the test through Unavailable unless the docker command works and has every one
// of images; build tells how to get them.
func RequireDocker(t testing.TB, build string, images ...string) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		Unavailable(t, "no docker command (%v)", err)
	}
	for _, image := range images {
		if out, err := exec.Command("docker", "image", "inspect", image).CombinedOutput(); err != nil {
			Unavailable(t, "docker image %s is missing (%v: %s); build it with `%s`", image, err, strings.TrimSpace(string(out)), build)
		}
	}
}

// ResolvePath makes p absolute: as given when it exists relative to the working directory (a test's
// package directory), else relative to the repository root, where Makefile targets and people
// usually stand. It must name a file.
func ResolvePath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		if _, err := os.Stat(p); err != nil {
			root, rerr := RepoRoot()
			if rerr != nil {
				return "", rerr
			}
			p = filepath.Join(root, p)
		}
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return "", fmt.Errorf("%s is a directory", abs)
	}
	return abs, nil
}

// RepoRoot is the directory of the go.mod above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
