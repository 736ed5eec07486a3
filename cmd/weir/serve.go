package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/thanos-io/objstore"

	"github.com/weir-metrics/weir/receive"
	"github.com/weir-metrics/weir/tenant"
)

// serve runs a receiving node until SIGTERM/SIGINT or a component fails.
//
// Order on start: bind both ports (a taken port is a start-up error), answer 503 on remote write while
// the WALs of all tenants found on disk replay, then turn ready. Order on stop: not ready, stop
// accepting remote write and let in-flight requests finish (bounded by --shutdown.timeout), cut every
// head into blocks and ship them (bounded by --shipper.shutdown-timeout), then close every tenant TSDB.
// Nothing acknowledged is lost at any point: a 2xx follows the WAL commit.
func serve(cfg config, logOut io.Writer) error {
	logger := newLogger(cfg, logOut)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Listeners first: a taken port is a start-up error that leaves nothing behind.
	opsLn, err := net.Listen("tcp", cfg.httpAddress)
	if err != nil {
		return fmt.Errorf("--http-address: %w", err)
	}
	defer func() { _ = opsLn.Close() }()
	rwLn, err := net.Listen("tcp", cfg.remoteWriteAddress)
	if err != nil {
		return fmt.Errorf("--remote-write.address: %w", err)
	}
	defer func() { _ = rwLn.Close() }()

	bucketYAML, err := cfg.objstoreYAML()
	if err != nil {
		return err
	}
	bkt, err := newBucket(bucketYAML, logger)
	if err != nil {
		return err
	}
	defer func() { _ = bkt.Close() }()
	if cfg.objstoreConfig == "" && cfg.objstoreConfigFile == "" {
		// The embedded default: its bucket lives in the data directory, under a name no tenant may take.
		cfg.storage.ReservedNames = []string{bucketDirName}
		logger.Info("shipping blocks to a local FILESYSTEM bucket; set --objstore.config-file for object storage",
			"directory", filepath.Join(cfg.storage.Dir, bucketDirName))
	}
	cfg.storage.Bucket = objstore.WrapWithMetrics(bkt, reg, bkt.Name())

	storage, err := tenant.NewManager(cfg.storage, logger, reg)
	if err != nil {
		return err
	}
	var ready atomic.Bool
	handler, err := receive.NewHandler(cfg.handler, storage, ready.Load, logger, reg)
	if err != nil {
		return err
	}
	logger.Info("weir starting", "version", version(), "remote_write", rwLn.Addr().String(), "http", opsLn.Addr().String(),
		"data", cfg.storage.Dir, "tenant_header", cfg.handler.TenantHeader, "bucket", bkt.Name())

	var g run.Group
	// Signals: SIGTERM (Kubernetes) and SIGINT (a terminal) stop the node gracefully.
	g.Add(run.SignalHandler(context.Background(), os.Interrupt, syscall.SIGTERM))

	// Operations endpoints: metrics, health, readiness, profiles.
	opsSrv := &http.Server{Handler: opsMux(reg, ready.Load), ReadHeaderTimeout: 10 * time.Second}
	g.Add(func() error { return serveHTTP(opsSrv, opsLn) }, func(error) { _ = opsSrv.Close() })

	// Start-up: replay every tenant's WAL before the node says ready.
	startCtx, cancelStart := context.WithCancel(context.Background())
	g.Add(func() error {
		if err := storage.OpenExisting(startCtx); err != nil {
			return fmt.Errorf("open tenant storage: %w", err)
		}
		ready.Store(true)
		logger.Info("ready")
		<-startCtx.Done()
		return nil
	}, func(error) {
		ready.Store(false)
		cancelStart()
	})

	// Shipping: uploads completed blocks in the background; never on the ingest or readiness path.
	shipCtx, cancelShip := context.WithCancel(context.Background())
	g.Add(func() error { return storage.Run(shipCtx) }, func(error) { cancelShip() })

	// Remote write: drained on stop, so every request that got in gets its answer.
	rwSrv := &http.Server{Handler: remoteWriteMux(handler, reg), ReadHeaderTimeout: 10 * time.Second}
	g.Add(func() error { return serveHTTP(rwSrv, rwLn) }, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		if err := rwSrv.Shutdown(ctx); err != nil {
			logger.Warn("in-flight remote-write requests did not finish in time; cutting them off", "err", err)
			_ = rwSrv.Close()
		}
	})

	runErr := g.Run()
	if errors.Is(runErr, run.ErrSignal) {
		logger.Info("shutting down", "reason", runErr.Error())
		runErr = nil
	}
	// Every actor has returned: no request is in flight. Cut the heads into blocks and ship them, then
	// close storage. What does not ship in time stays on disk and ships at the next start.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), cfg.shipTimeout)
	if err := storage.Flush(flushCtx); err != nil {
		logger.Error("flushing and shipping on shutdown", "err", err)
	}
	cancelFlush()
	if err := storage.Close(); err != nil {
		logger.Error("closing storage", "err", err)
		return errors.Join(runErr, err)
	}
	logger.Info("stopped")
	return runErr
}

func serveHTTP(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func remoteWriteMux(h http.Handler, reg prometheus.Registerer) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_http_requests_total",
		Help: "HTTP requests on the remote-write port, by handler, method and status code.",
	}, []string{"handler", "code", "method"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                        "weir_http_request_duration_seconds",
		Help:                        "Time to answer HTTP requests on the remote-write port, by handler.",
		Buckets:                     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		NativeHistogramBucketFactor: 1.1,
	}, []string{"handler", "code", "method"})
	reg.MustRegister(requests, duration)

	mux := http.NewServeMux()
	for _, path := range []string{"/api/v1/receive", "/api/v1/write"} {
		labels := prometheus.Labels{"handler": path}
		mux.Handle(path, promhttp.InstrumentHandlerDuration(duration.MustCurryWith(labels),
			promhttp.InstrumentHandlerCounter(requests.MustCurryWith(labels), h)))
	}
	return mux
}

func opsMux(reg *prometheus.Registry, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: replaying write-ahead logs", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func newLogger(cfg config, out io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.logLevel) // validated before
	opts := &slog.HandlerOptions{Level: level}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}
