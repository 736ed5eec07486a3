package e2e

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-metrics/weir/internal/testutil"
)

// weirBinary is the weir executable under test, set by TestMain.
var weirBinary string

// TestMain builds weir once for all tests (or takes WEIR_BINARY) and checks that no goroutine of the
// test process outlives the tests.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		// Every test skips itself (requireBinary): they run processes for seconds.
		return m.Run()
	}
	if bin := os.Getenv("WEIR_BINARY"); bin != "" {
		abs, err := testutil.ResolvePath(bin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: WEIR_BINARY=%s: %v\n", bin, err)
			return 1
		}
		weirBinary = abs
	} else {
		dir, err := os.MkdirTemp("", "weir-e2e-bin-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		weirBinary = filepath.Join(dir, "weir")
		if err := buildWeir(weirBinary); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building weir: %v\n", err)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		// Tests that use http.DefaultClient leave keep-alive connections (and their goroutines) behind.
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: goroutines leaked by the tests: %v\n", err)
			return 1
		}
	}
	return code
}

// requireBinary skips the test in -short mode, where TestMain builds nothing.
func requireBinary(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the end-to-end tests run weir and Prometheus processes")
	}
}

func buildWeir(out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		if root := os.Getenv("GOROOT"); root != "" {
			gobin = filepath.Join(root, "bin", "go")
		} else {
			return fmt.Errorf("no go command in PATH (set WEIR_BINARY to a prebuilt weir): %w", err)
		}
	}
	args := []string{"build", "-o", out}
	if os.Getenv("WEIR_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "github.com/weir-metrics/weir/cmd/weir")
	start := time.Now()
	cmd := exec.Command(gobin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v: %w", args, err)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", out, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
