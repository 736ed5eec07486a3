package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/weir-metrics/weir/internal/flags"
	"github.com/weir-metrics/weir/loadgen"
	"github.com/weir-metrics/weir/tenant"
)

const benchHelp = `Send Prometheus remote-write (1.0) load to any receiver — Weir, Thanos Receive, Prometheus'
--web.enable-remote-write-receiver, Mimir — and report samples/s, request latency and errors.

--series active series are spread evenly over --tenants tenants (tenant-0 … tenant-N-1, named in
--tenant-header); every request carries one sample for each of --samples-per-request series of one
tenant, stamped with the current time, tenants taking turns. Each series is always sent by the same
worker, so its samples arrive in order. Failed requests are not retried: they are counted by status code.
With --ack-log, every acknowledged request is recorded so that a verifier can later check that the
receiver kept all of it (see the loadgen package).

Exit code: 0 when every request was acknowledged, 1 when some failed (the report still shows), 2 on a
bad flag.`

// benchConfig is the command line of `weir bench`.
type benchConfig struct {
	loadgen.Config
	output string
}

func (c *benchConfig) registerFlags(r flags.Registry) {
	r.Flag("url", "Remote-write endpoint of the receiver, e.g. http://localhost:19291/api/v1/receive (required).").StringVar(&c.URL)
	r.Flag("tenants", "Number of tenants, named tenant-0 … tenant-<N-1>; requests go to them in turn.").Default("1").IntVar(&c.Tenants)
	r.Flag("tenant-header", "HTTP header naming the tenant of a request (X-Scope-OrgID for Mimir).").Default(tenant.DefaultHeader).StringVar(&c.TenantHeader)
	r.Flag("series", "Active series in total, over all tenants (split evenly between them).").Default("100000").IntVar(&c.Series)
	r.Flag("labels-per-series", "Labels per series, counting __name__ and series_id (which makes each series unique).").Default("10").IntVar(&c.LabelsPerSeries)
	r.Flag("label-value-cardinality", "Distinct values of each label other than __name__ and series_id.").Default("100").IntVar(&c.LabelValueCardinality)
	r.Flag("churn", "Series replaced by new ones per minute, over all tenants.").Default("0").IntVar(&c.ChurnPerMinute)
	r.Flag("samples-per-request", "Series per request, one sample each (Prometheus' max_samples_per_send).").Default("2000").IntVar(&c.SamplesPerRequest)
	r.Flag("concurrency", "Workers sending requests at the same time, each over its own keep-alive connection.").Default("8").IntVar(&c.Concurrency)
	r.Flag("rate", "Target samples per second over all workers; 0 sends as fast as the receiver answers.").Default("0").FloatVar(&c.Rate)
	c.Duration = time.Minute
	flags.Duration(r.Flag("duration", "How long to send; 0 runs until interrupted (Ctrl-C ends the run and prints the report)."), &c.Duration)
	r.Flag("requests", "Stop after this many requests (0: no limit).").Default("0").Int64Var(&c.MaxRequests)
	c.Timeout = 30 * time.Second
	flags.Duration(r.Flag("timeout", "Longest one request may take (Prometheus' remote_timeout)."), &c.Timeout)
	flags.Repeated(r.Flag("header", `Extra HTTP header for every request, as "Name: value" (repeatable), e.g. --header "Authorization: Bearer …".`), func(s string) error {
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
	r.Flag("protocol", "Protocol: remote write 1.0, 2.0 (io.prometheus.write.v2.Request, a symbols table per request and metadata per series, as Prometheus sends it), or otlp (OTLP/HTTP metrics, gzip protobuf, one gauge data point per series; --url is then the OTLP endpoint, e.g. http://localhost:19291/api/v1/otlp/v1/metrics).").Default("1.0").StringVar(&c.Protocol)
	r.Flag("ack-log", "File to record every acknowledged request in, for a later check that nothing acknowledged was lost.").StringVar(&c.AckLog)
	r.Flag("output", "Report format on stdout: text or json.").Default("text").EnumVar(&c.output, "text", "json")
}

func runBench(cfg benchConfig, stdout, stderr io.Writer) int {
	if err := cfg.Validate(); err != nil {
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
