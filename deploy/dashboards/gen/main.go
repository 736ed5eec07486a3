// Command gen writes the Weir dashboard's JSON files (dashboards.Files, relative to the repository
// root given as its argument) from the Go code in deploy/dashboards: `go generate ./deploy/dashboards`
// or `make dashboards`.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/weir-metrics/weir/deploy/dashboards"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return fmt.Errorf("usage: %s REPOSITORY_ROOT", os.Args[0])
	}
	root := os.Args[1]
	b, err := dashboards.JSON()
	if err != nil {
		return err
	}
	for _, f := range dashboards.Files {
		path := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", f, err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", f, err)
		}
	}
	return nil
}
