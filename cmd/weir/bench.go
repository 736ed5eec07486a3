package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/model"

	"github.com/weir-metrics/weir/loadgen"
	"github.com/weir-metrics/weir/tenant"
)

const benchUsage = `Usage: weir bench --url=<remote-write URL> [flags]

Sends Prometheus remote-write (1.0) load to any receiver — Weir, Thanos Receive, Prometheus'
--web.enable-remote-write-receiver, Mimir — and reports samples/s, request latency and errors.

--series active series are spread evenly over --tenants tenants (tenant-0 … tenant-N-1, named in
--tenant-header); every request carries one sample for each of --samples-per-request series of one
tenant, stamped with the current time, tenants taking turns. Each series is always sent by the same
worker, so its samples arrive in order. Failed requests are not retried: they are counted by status code.
With --ack-log, every acknowledged request is recorded so that a verifier can later check that the
receiver kept all of it (see the loadgen package).

Exit code: 0 when every request was acknowledged, 1 when some failed (the report still shows), 2 on a
bad flag.

Flags:
`

// benchConfig is the command line of `weir bench`.
type benchConfig struct {
	loadgen.Config
	output string
}

func (c *benchConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "url", "", "Remote-write endpoint of the receiver, e.g. http://localhost:19291/api/v1/receive (required).")
	fs.IntVar(&c.Tenants, "tenants", 1, "Number of tenants, named tenant-0 … tenant-<N-1>; requests go to them in turn.")
	fs.StringVar(&c.TenantHeader, "tenant-header", tenant.DefaultHeader, "HTTP header naming the tenant of a request (X-Scope-OrgID for Mimir).")
	fs.IntVar(&c.Series, "series", 100_000, "Active series in total, over all tenants (split evenly between them).")
	fs.IntVar(&c.LabelsPerSeries, "labels-per-series", 10, "Labels per series, counting __name__ and series_id (which makes each series unique).")
	fs.IntVar(&c.LabelValueCardinality, "label-value-cardinality", 100, "Distinct values of each label other than __name__ and series_id.")
	fs.IntVar(&c.ChurnPerMinute, "churn", 0, "Series replaced by new ones per minute, over all tenants.")
	fs.IntVar(&c.SamplesPerRequest, "samples-per-request", 2000, "Series per request, one sample each (Prometheus' max_samples_per_send).")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "Workers sending requests at the same time, each over its own keep-alive connection.")
	fs.Float64Var(&c.Rate, "rate", 0, "Target samples per second over all workers; 0 sends as fast as the receiver answers.")
	c.Duration = time.Minute
	fs.Func("duration", "How long to send; 0 runs until interrupted (Ctrl-C ends the run and prints the report). (default 1m)", func(s string) error {
		d, err := model.ParseDuration(s)
		if err != nil {
			return err
		}
		c.Duration = time.Duration(d)
		return nil
	})
	fs.Int64Var(&c.MaxRequests, "requests", 0, "Stop after this many requests (0: no limit).")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "Longest one request may take (Prometheus' remote_timeout).")
	fs.Func("header", `Extra HTTP header for every request, as "Name: value" (repeatable), e.g. --header "Authorization: Bearer …".`, func(s string) error {
		name, value, ok := strings.Cut(s, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return fmt.Errorf("%q is not \"Name: value\"", s)
		}
		if c.Headers == nil {
			c.Headers = http.Header{}
		}
		c.Headers.Add(name, value)
		return nil
	})
	fs.StringVar(&c.Protocol, "protocol", "1.0", "Remote-write protocol version; only 1.0 for now.")
	fs.StringVar(&c.AckLog, "ack-log", "", "File to record every acknowledged request in, for a later check that nothing acknowledged was lost.")
	fs.StringVar(&c.output, "output", "text", "Report format on stdout: text or json.")
}

func (c *benchConfig) validate() error {
	if c.output != "text" && c.output != "json" {
		return fmt.Errorf("--output: %q is neither text nor json", c.output)
	}
	return c.Validate()
}

func benchCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("weir bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg benchConfig
	cfg.registerFlags(fs)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, benchUsage)
			printFlags(stderr, fs)
			return 0
		}
		fmt.Fprintln(stderr, `Run "weir bench --help" for the flags.`)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "weir bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "weir bench: %v\n", err)
		return 2
	}
	cfg.UserAgent = "weir-bench/" + version()
	cfg.Progress = stderr
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			cfg.Interactive = true
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, the next one kills the process as usual.
		<-ctx.Done()
		stop()
	}()
	rep, err := loadgen.Run(ctx, cfg.Config)
	if rep != nil {
		var werr error
		if cfg.output == "json" {
			werr = rep.WriteJSON(stdout)
		} else {
			werr = rep.WriteText(stdout)
		}
		if werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "weir bench: %v\n", err)
		return 1
	}
	if rep.RequestsFailed > 0 {
		fmt.Fprintf(stderr, "weir bench: %d of %d requests failed\n", rep.RequestsFailed, rep.RequestsSent)
		return 1
	}
	return 0
}
