package main

import (
	"context"
	"crypto/tls"
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
	"google.golang.org/grpc"

	"github.com/weir-metrics/weir/auth"
	"github.com/weir-metrics/weir/internal/reload"
	"github.com/weir-metrics/weir/limits"
	"github.com/weir-metrics/weir/queryapi"
	"github.com/weir-metrics/weir/receive"
	"github.com/weir-metrics/weir/store"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/tlsreload"
	"github.com/weir-metrics/weir/tracing"
)

// serve runs a node until SIGTERM/SIGINT or a component fails.
//
// Order on start: bind every port (a taken port is a start-up error), answer 503 on remote write while
// the WALs of all tenants found on disk replay, then turn ready. Order on stop: with gossip, announce
// leaving and keep taking every write until the routers dropped this node from their ring (bounded
// by --memberlist.leave-timeout); then not ready, stop accepting remote write, then node-to-node
// writes, letting in-flight ones finish (bounded by --shutdown.timeout), leave the gossip cluster,
// wait for forwards to other nodes, cut every head into blocks and ship them (bounded by
// --shipper.shutdown-timeout), then close every tenant TSDB; the status and metrics endpoints answer
// until the writes have drained. Nothing acknowledged is lost at any point: a 2xx follows the WAL commit (of a write
// quorum, with a hashring).
func serve(cfg config, logOut io.Writer) error {
	logger := newLogger(cfg, logOut)
	cfg.thanos.warn(logger)
	cfg.memLimit.apply(logger)
	tp, err := startTracing(cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			logger.Warn("tracing: spans not exported at shutdown", "err", err)
		}
	}()
	cfg.tracing = tp != nil
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	n := &node{cfg: cfg, logger: logger, reg: reg}
	defer n.release()
	if err := n.build(); err != nil {
		return err
	}
	return n.run()
}

// startTracing starts the tracer provider of --tracing.config(-file), or none. A type Weir does not
// export is logged and leaves tracing off: traces are not worth refusing writes for.
func startTracing(cfg config, logger *slog.Logger) (*tracing.Provider, error) {
	data := []byte(cfg.tracingConfig)
	if cfg.tracingConfigFile != "" {
		var err error
		if data, err = os.ReadFile(cfg.tracingConfigFile); err != nil {
			return nil, fmt.Errorf("--tracing.config-file: %w", err)
		}
	}
	tp, err := tracing.New(context.Background(), data, "weir")
	switch {
	case errors.Is(err, tracing.ErrUnsupportedType):
		logger.Error("tracing stays off", "err", err)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("--tracing.config: %w", err)
	case tp != nil:
		logger.Info("tracing on: spans are exported over OTLP")
	}
	return tp, nil
}

// node is one weir process: its listeners and the components behind them. Which components exist
// depends on the role: without a hashrings file the node stores everything it gets; with one it routes,
// and stores its own share only when --receive.local-endpoint puts it in the ring.
type node struct {
	cfg    config
	logger *slog.Logger
	reg    *prometheus.Registry
	ready  atomic.Bool // remote write, StoreAPI and /-/ready: from the end of WAL replay to the stop
	// started gates node-to-node writes: from the end of WAL replay on. They are not cut off when the
	// stop begins: routers may send some until they dropped this node, and the gRPC server's
	// graceful stop lets those finish.
	started atomic.Bool

	opsLn, rwLn, grpcLn net.Listener
	rwTLS               *tls.Config // nil: plain HTTP on remote write
	bkt                 objstore.Bucket
	storage             *tenant.Manager      // nil on a router that stores nothing
	cluster             *cluster             // nil without a hashrings file
	handler             *receive.Handler     // remote write, in front of the cluster or the storage
	otlp                *receive.OTLPHandler // OTLP metrics, through handler
	grpcSrv             *grpc.Server         // node-to-node writes; nil on a router that stores nothing
	// limiter is the write slots shared by remote write and node-to-node writes, which compete for
	// the same cores (nil: no bound).
	limiter *receive.Limiter
	// limits are the per-tenant limits: the router's enforce the request and rate limits, the
	// storage's the series limits (limits.go).
	limits *nodeLimits
}

func (n *node) build() error {
	var err error
	if n.cfg.limiter.Slots >= 0 {
		// One set of CPU slots for both ways a write comes in: they compete for the same cores.
		if n.limiter, err = receive.NewLimiter(n.cfg.limiter, n.reg); err != nil {
			return fmt.Errorf("--receive.write-slots: %w", err)
		}
	}
	// A limits file that cannot be loaded is a start-up error: a node must not start unlimited by
	// mistake.
	if n.limits, err = newNodeLimits(n); err != nil {
		return err
	}
	cfg := n.cfg
	// Listeners first: a taken port is a start-up error that leaves nothing behind.
	if n.opsLn, err = net.Listen("tcp", cfg.httpAddress); err != nil {
		return fmt.Errorf("--http-address: %w", err)
	}
	if n.rwLn, err = net.Listen("tcp", cfg.remoteWriteAddress); err != nil {
		return fmt.Errorf("--remote-write.address: %w", err)
	}
	routerOnly := cfg.clustered() && cfg.router.LocalEndpoint == ""
	if !routerOnly {
		if n.grpcLn, err = net.Listen("tcp", cfg.grpcAddress); err != nil {
			return fmt.Errorf("--grpc-address: %w", err)
		}
		if err := n.buildStorage(); err != nil {
			return err
		}
	}

	var local receive.TenantStorage // a nil interface, not a nil *tenant.Manager, on a pure router
	if n.storage != nil {
		local = n.storage
	}
	var storage receive.Storage
	if cfg.clustered() {
		if n.cluster, err = newCluster(cfg, local, n.logger, n.reg); err != nil {
			return err
		}
		storage = n.cluster.router
	} else {
		storage = receive.Local(local)
	}
	opts, err := n.buildEdge()
	if err != nil {
		return err
	}
	opts = append(opts, receive.WithTenantLimits(n.limits.src.Current, n.limits.rate))
	if n.handler, err = receive.NewHandler(cfg.handler, storage, n.limiter, n.ready.Load, n.logger, n.reg, opts...); err != nil {
		return err
	}
	if n.otlp, err = receive.NewOTLPHandler(n.handler, cfg.otlp, n.reg); err != nil {
		return err
	}
	role := "ingester"
	switch {
	case routerOnly:
		role = "router"
	case n.cluster != nil:
		role = "router+ingester"
	}
	n.logger.Info("weir starting", "version", version(), "role", role, "remote_write", n.rwLn.Addr().String(),
		"http", n.opsLn.Addr().String(), "grpc", addrOf(n.grpcLn), "data", cfg.storage.Dir, "tenant_header", cfg.handler.TenantHeader,
		"remote_write_tls", n.rwTLS != nil, "tenant_from", tenantSource(cfg))
	return nil
}

// buildEdge reads what secures the edge (docs/security.md): the remote-write listener's TLS, the
// credentials that say who may write which tenant, the ops endpoints' web config. Each is reloaded
// when its files change; a missing or bad file now is a start-up error naming its flag.
func (n *node) buildEdge() ([]receive.HandlerOption, error) {
	var err error
	opts := func(name string) reload.Options {
		return reload.Options{Name: name, Logger: n.logger, Registerer: n.reg}
	}
	if n.rwTLS, err = tlsreload.NewServer(n.cfg.rwTLS, []string{"h2", "http/1.1"}, opts("remote-write-tls")); err != nil {
		return nil, err
	}
	if err := n.cfg.web.Check(); err != nil {
		return nil, err
	}
	a, err := auth.New(n.cfg.auth, opts("credentials"))
	if err != nil || a == nil { // a nil *Authenticator must not become a non-nil interface
		return nil, err
	}
	return []receive.HandlerOption{receive.WithAuthenticator(a)}, nil
}

// tenantSource says where the tenant of a remote-write request comes from, for the start-up line.
func tenantSource(cfg config) string {
	switch {
	case cfg.auth.CertificateField != "" && cfg.auth.CredentialsFile != "":
		return "certificate " + cfg.auth.CertificateField + " and credentials"
	case cfg.auth.CertificateField != "":
		return "certificate " + cfg.auth.CertificateField
	case cfg.auth.CredentialsFile != "":
		return "credentials"
	}
	return "header"
}

// buildStorage sets up the tenant TSDBs, their shipping and the node-to-node write service.
func (n *node) buildStorage() error {
	cfg := n.cfg
	bucketYAML, err := cfg.objstoreYAML()
	if err != nil {
		return err
	}
	if n.bkt, err = newBucket(bucketYAML, n.logger); err != nil {
		return err
	}
	if cfg.objstoreConfig == "" && cfg.objstoreConfigFile == "" {
		// The embedded default: its bucket lives in the data directory, under a name no tenant may take.
		cfg.storage.ReservedNames = []string{bucketDirName}
		n.logger.Info("shipping blocks to a local FILESYSTEM bucket; set --objstore.config-file for object storage",
			"directory", filepath.Join(cfg.storage.Dir, bucketDirName))
	}
	bkt := objstore.WrapWithMetrics(n.bkt, n.reg, n.bkt.Name())
	if n.storage, err = tenant.NewManager(cfg.storage, bkt, n.logger, n.reg, n.limits.seriesLimits()); err != nil {
		return err
	}
	icfg := cfg.ingestConfig()
	opts, err := icfg.ServerOptions(n.logger, n.reg)
	if err != nil {
		return err
	}
	ingest, err := receive.NewIngestServer(icfg, n.storage, n.limiter, n.started.Load, n.logger, n.reg)
	if err != nil {
		return err
	}
	n.grpcSrv = grpc.NewServer(opts...)
	ingest.Register(n.grpcSrv)
	// Thanos StoreAPI and Info on the same port: Thanos Query reads the tenants' fresh data from here.
	storeSrv, err := store.New(cfg.store, n.storage, n.ready.Load, n.reg)
	if err != nil {
		return err
	}
	storeSrv.Register(n.grpcSrv)
	return nil
}

// run serves until a signal or a failure. The actors are stopped one after the other in the order
// they are added (run.Group calls the interrupts in that order): that order is the stop sequence.
func (n *node) run() error {
	cfg, logger := n.cfg, n.logger
	var g run.Group
	// Signals: SIGTERM (Kubernetes) and SIGINT (a terminal) stop the node gracefully.
	g.Add(run.SignalHandler(context.Background(), os.Interrupt, syscall.SIGTERM))

	if n.cluster != nil {
		// Leaving the ring comes first, while this node still takes every write.
		leaveCtx, cancelLeave := context.WithCancel(context.Background())
		g.Add(func() error { <-leaveCtx.Done(); return nil }, func(error) {
			n.cluster.leave()
			cancelLeave()
		})
	}

	// Start-up: replay every tenant's WAL before the node says ready.
	startCtx, cancelStart := context.WithCancel(context.Background())
	g.Add(func() error {
		if n.storage != nil {
			if err := n.storage.OpenExisting(startCtx); err != nil {
				return fmt.Errorf("open tenant storage: %w", err)
			}
		}
		n.started.Store(true) // node-to-node writes need no ring
		if n.cluster != nil {
			n.cluster.waitFirstRing(startCtx, firstRingWait)
		}
		n.ready.Store(true)
		logger.Info("ready")
		<-startCtx.Done()
		return nil
	}, func(error) {
		n.ready.Store(false)
		cancelStart()
	})

	// Remote write: drained on stop, so every request that got in gets its answer.
	// The read timeout bounds a whole upload; idle keep-alive connections get their own, longer limit
	// so a sender that writes every few minutes keeps its connection.
	// The server's own errors (with TLS: failed handshakes — unknown CA, expired certificate, plain
	// HTTP) are logged as warnings, not written to stderr.
	rwSrv := &http.Server{Handler: remoteWriteMux(n.handler, n.otlp, n.reg), ReadHeaderTimeout: min(10*time.Second, cfg.rwReadTimeout),
		ReadTimeout: cfg.rwReadTimeout, IdleTimeout: 5 * time.Minute, TLSConfig: n.rwTLS,
		ErrorLog: slog.NewLogLogger(logger.With("component", "remote-write").Handler(), slog.LevelWarn)}
	g.Add(func() error { return serveHTTP(rwSrv, n.rwLn) }, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), orDefault(cfg.httpGracePeriod, cfg.shutdownTimeout))
		defer cancel()
		if err := rwSrv.Shutdown(ctx); err != nil {
			logger.Warn("in-flight remote-write requests did not finish in time; cutting them off", "err", err)
			_ = rwSrv.Close()
		}
	})

	if n.storage != nil {
		// Shipping: uploads completed blocks in the background; never on the ingest or readiness path.
		shipCtx, cancelShip := context.WithCancel(context.Background())
		g.Add(func() error { return n.storage.Run(shipCtx) }, func(error) { cancelShip() })

		// Node-to-node writes, drained on stop like remote write.
		g.Add(func() error { return n.grpcSrv.Serve(n.grpcLn) }, func(error) {
			stopped := make(chan struct{})
			go func() { n.grpcSrv.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(orDefault(cfg.grpcGracePeriod, cfg.shutdownTimeout)):
				n.grpcSrv.Stop()
			}
		})
	}
	if n.cluster != nil {
		// The ring source (hashrings file or gossip), followed for changes; gossip leaves the cluster
		// when it stops.
		ringCtx, cancelRing := context.WithCancel(context.Background())
		g.Add(func() error { return n.cluster.run(ringCtx) }, func(error) { cancelRing() })
	}

	// The limits file, followed for changes (nothing to follow with inline limits or none).
	limitsCtx, cancelLimits := context.WithCancel(context.Background())
	g.Add(func() error { return n.limits.src.Run(limitsCtx) }, func(error) { cancelLimits() })

	// Operations endpoints: metrics, health, readiness, profiles, ring status; closed last, so that
	// the leave and the drain can be watched.
	opsSrv := &http.Server{Handler: n.opsMux(), ReadHeaderTimeout: 10 * time.Second}
	g.Add(func() error { return cfg.web.Serve(opsSrv, n.opsLn, logger) }, func(error) { _ = opsSrv.Close() })

	runErr := g.Run()
	if errors.Is(runErr, run.ErrSignal) {
		logger.Info("shutting down", "reason", runErr.Error())
		runErr = nil
	}
	return errors.Join(runErr, n.shutdown())
}

// shutdown runs once every actor has returned, so no request is in flight: forwards still running in
// the background finish, heads are cut into blocks and shipped, storage closes. What does not ship in
// time stays on disk and ships at the next start.
func (n *node) shutdown() error {
	var errs []error
	if n.cluster != nil {
		if err := n.cluster.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.storage != nil {
		flushCtx, cancel := context.WithTimeout(context.Background(), n.cfg.shipTimeout)
		if err := n.storage.Flush(flushCtx); err != nil {
			n.logger.Error("flushing and shipping on shutdown", "err", err)
		}
		cancel()
		if err := n.storage.Close(); err != nil {
			n.logger.Error("closing storage", "err", err)
			errs = append(errs, err)
		}
	}
	n.logger.Info("stopped")
	return errors.Join(errs...)
}

// release closes what build opened, also when build failed half way.
func (n *node) release() {
	for _, ln := range []net.Listener{n.opsLn, n.rwLn, n.grpcLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if n.bkt != nil {
		_ = n.bkt.Close()
	}
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// serveHTTP serves srv on ln until it is closed, with TLS when srv.TLSConfig is set.
func serveHTTP(srv *http.Server, ln net.Listener) error {
	serve := srv.Serve
	if srv.TLSConfig != nil {
		serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
	}
	if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func remoteWriteMux(h, otlp http.Handler, reg prometheus.Registerer) http.Handler {
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
	routes := map[string]http.Handler{"/api/v1/receive": h, "/api/v1/write": h, receive.OTLPPath: otlp, receive.OTLPThanosPath: otlp}
	for path, handler := range routes {
		labels := prometheus.Labels{"handler": path}
		mux.Handle(path, promhttp.InstrumentHandlerDuration(duration.MustCurryWith(labels),
			promhttp.InstrumentHandlerCounter(requests.MustCurryWith(labels), handler)))
	}
	return mux
}

func (n *node) opsMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ready.Load() {
			http.Error(w, "not ready: replaying write-ahead logs", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "OK")
	})
	if n.cluster != nil {
		mux.HandleFunc("/api/v1/status/ring", n.cluster.statusHandler)
	}
	if n.storage != nil {
		// A debugging read of this node's local data, one tenant (the tenant header) at a time.
		api := queryapi.New(n.storage, queryapi.Options{
			TenantHeader:  n.cfg.handler.TenantHeader,
			DefaultTenant: n.cfg.handler.DefaultTenant,
			Logger:        n.logger,
			Reg:           n.reg,
		})
		for _, path := range queryapi.Paths {
			mux.Handle(path, api)
		}
	}
	mux.Handle(limits.StatusPath, n.limits.statusHandler(n.storage))
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

// orDefault is d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
