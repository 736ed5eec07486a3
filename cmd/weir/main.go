// Command weir receives Prometheus remote-write traffic and keeps it in one Prometheus TSDB per tenant.
//
// Run without a subcommand it starts the embedded default: one node that receives and stores, with data
// under ./data. See `weir --help` and `weir receive --help`.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/alecthomas/kingpin/v2"

	"github.com/weir-metrics/weir/internal/flags"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// command is a subcommand: its flags are registered on its clause, and run starts it once they are
// parsed, returning the process exit code.
type command struct {
	clause *kingpin.CmdClause
	run    func() int
}

// dispatch parses the command line the way Thanos does (kingpin: --flag=value, --flag value,
// --[no-]bool, repeatable flags) and runs the subcommand. It returns the process exit code: 0 on
// success or clean shutdown, 1 on a runtime failure, 2 on a usage error.
func dispatch(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("weir", "Prometheus remote-write receiver, a drop-in for Thanos Receive.")
	app.Version("weir " + version()).VersionFlag.Short('V')
	app.HelpFlag.Short('h')
	app.UsageWriter(stderr).ErrorWriter(stderr)
	// kingpin ends the process itself after --help and --version; here that is an exit code.
	exited := -1
	app.Terminate(func(code int) {
		if exited < 0 {
			exited = code
		}
	})

	var (
		rcfg config
		bcfg benchConfig
	)
	cmds := map[string]command{}
	rc := app.Command("receive", "Receive remote write and store it, one TSDB per tenant (the default command).").Default()
	rcfg.registerFlags(rc)
	cmds[rc.FullCommand()] = command{rc, func() int { return runReceive(rcfg, stderr) }}
	bc := app.Command("bench", benchHelp)
	bcfg.registerFlags(bc)
	cmds[bc.FullCommand()] = command{bc, func() int { return runBench(bcfg, stdout, stderr) }}
	app.Command("version", "Print the version.")

	selected, err := flags.Parse(app, args)
	if exited >= 0 {
		return exited
	}
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\nRun \"weir --help\" or \"weir <command> --help\" for the flags.\n", err)
		return 2
	}
	if selected == "version" {
		fmt.Fprintln(stdout, "weir", version())
		return 0
	}
	return cmds[selected].run()
}

func runReceive(cfg config, stderr io.Writer) int {
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
