// Command weir receives Prometheus remote-write traffic and keeps it in one Prometheus TSDB per tenant.
//
// Run without a subcommand it starts the embedded default: one node that receives and stores, with data
// under ./data. See `weir help` and `weir receive --help`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

const usage = `weir: Prometheus remote-write receiver, a drop-in for Thanos Receive.

Usage:
  weir [flags]            start the embedded default (same as "weir receive")
  weir receive [flags]    receive remote write and store it, one TSDB per tenant
  weir bench [flags]      send remote-write load to a receiver and report samples/s and latency
  weir version            print the version
  weir help               print this help

Run "weir receive --help" for the flags.
`

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs a subcommand and returns the process exit code: 0 on success or clean shutdown, 1 on
// a runtime failure, 2 on a usage error.
func dispatch(args []string, stdout, stderr io.Writer) int {
	cmd := "receive"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "receive":
		return receiveCommand(args, stderr)
	case "bench":
		return benchCommand(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "weir", version())
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "weir: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func receiveCommand(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("weir receive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.registerFlags(fs)
	// The flag package reports parse errors itself; the full flag list only on --help.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, "Usage: weir receive [flags]\n\nReceives Prometheus remote write (1.0) and stores it, one TSDB per tenant.\n\nFlags:\n")
			printFlags(stderr, fs)
			return 0
		}
		fmt.Fprintln(stderr, `Run "weir receive --help" for the flags.`)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "weir receive: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "weir receive: invalid configuration: %v\n", err)
		return 2
	}
	if err := serve(cfg, stderr); err != nil {
		fmt.Fprintf(stderr, "weir receive: %v\n", err)
		return 1
	}
	return 0
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// printFlags prints flags the way operators of Thanos and Prometheus read them: --name=value.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if hiddenFlag(f.Name) {
			return
		}
		kind, usage := flag.UnquoteUsage(f)
		if kind != "" {
			kind = "=<" + kind + ">"
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && !strings.Contains(usage, "(default ") {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s%s\n      %s%s\n", f.Name, kind, usage, def)
	})
}
