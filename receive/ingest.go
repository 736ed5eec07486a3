package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/weir-metrics/weir/internal/reload"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/tlsreload"
	"github.com/weir-metrics/weir/write"
)

// DefaultMaxDecodedBytes is the default of IngestConfig.MaxDecodedBytes.
const DefaultMaxDecodedBytes = 64 << 20

// IngestConfig configures the ingest service and its gRPC server.
type IngestConfig struct {
	// MaxDecodedBytes bounds a decompressed or uncompressed payload (zero: DefaultMaxDecodedBytes). Routers send
	// shares of requests that passed their own limit, so this should be at least that limit.
	MaxDecodedBytes int64
	// MaxMessageBytes bounds a received message (zero: DefaultMaxMessageBytes).
	MaxMessageBytes int
	// TLS is the server side of the connection (--grpc-server-tls-*): certificate and client CA
	// reloaded when their files change.
	TLS tlsreload.ServerConfig
	// MaxConnectionAge closes a router's connection after this long (gracefully: its writes in flight
	// finish, and the router reconnects), so that connections spread again over ingesters behind a
	// load balancer and TLS handshakes are redone (0: never).
	MaxConnectionAge time.Duration
	// Tracing continues the trace of every write a router sends and records a server span for it
	// (otelgrpc), with the tracer provider of package tracing.
	Tracing bool
	// Protocol is the newest node-to-node protocol served: ProtocolV2 (the default when empty) serves
	// v2 and v1; ProtocolV1 serves v1 only, as the previous release did — for rollout tests, not
	// for production (see codec.go).
	Protocol string
}

// Node-to-node protocols (IngestConfig.Protocol, PeerConfig.Protocol; see codec.go).
const (
	ProtocolV1 = "v1"
	ProtocolV2 = "v2"
)

func validProtocol(p string) error {
	switch p {
	case "", ProtocolV1, ProtocolV2:
		return nil
	}
	return fmt.Errorf("ingest protocol %q: must be %s or %s", p, ProtocolV1, ProtocolV2)
}

func (c IngestConfig) withDefaults() IngestConfig {
	if c.MaxDecodedBytes == 0 {
		c.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return c
}

// Validate reports the first configuration error.
func (c IngestConfig) Validate() error {
	if c.MaxDecodedBytes < 0 || c.MaxMessageBytes < 0 {
		return errors.New("ingest limits must not be negative")
	}
	if c.MaxConnectionAge < 0 {
		return fmt.Errorf("--grpc-server-max-connection-age: %s is negative (0: never)", c.MaxConnectionAge)
	}
	if err := validProtocol(c.Protocol); err != nil {
		return err
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("--grpc-server-tls-*: %w", err)
	}
	return nil
}

// ServerOptions are the options the gRPC server of the ingest service needs: the ingest codec (which
// hands every other message to protobuf, so other services can share the server), the message size
// bound and the transport credentials, whose certificates reload when their files change (logged to
// logger, counted in reg; either may be nil for none).
func (c IngestConfig) ServerOptions(logger *slog.Logger, reg prometheus.Registerer) ([]grpc.ServerOption, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(newIngestCodec()),
		grpc.MaxRecvMsgSize(c.MaxMessageBytes),
		// Let routers ping (see keepaliveTime) without being told they ping too often.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 2, PermitWithoutStream: true}),
	}
	if c.Tracing {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler()))
	}
	if c.MaxConnectionAge > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: c.MaxConnectionAge}))
	}
	tlsCfg, err := tlsreload.NewServer(c.TLS, []string{"h2"}, reload.Options{Name: "grpc-server-tls", Logger: logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	return opts, nil
}

// IngestServer is the ingester side of forwarding: it writes the series a router sends to the local
// Storage and answers with the write's stats. It trusts the router's placement and never forwards
// again. The tenant ID is validated again: the gRPC port is an entry point like the HTTP one.
//
// Errors, as gRPC status codes (ingestStatus in errors.go, which also marks them as the service's):
//
//	Unimplemented     a request of a newer router (see errNewerRequest); gRPC itself answers a method
//	                  this build does not serve Unimplemented too, without the ErrorInfo detail
//	InvalidArgument   a malformed request, an invalid tenant ID, or a payload that is not (snappy) protobuf
//	                  or is over the limit
//	Unavailable       not ready, no write slot in time (Limiter), or the tenant's storage is opening,
//	                  failed to open or is closing
//	DeadlineExceeded  the router's deadline passed;  Canceled: the router gave up
//	Internal          any other storage failure
type IngestServer struct {
	cfg      IngestConfig
	storage  TenantStorage
	limiter  *Limiter // bounds the writes decoded and applied at once (nil: no bound)
	ready    func() bool
	logger   *slog.Logger
	requests *prometheus.CounterVec
}

// NewIngestServer returns the ingest service; Register it on a gRPC server built with
// cfg.ServerOptions(). lim bounds the writes decoded and applied at once (nil: no bound), the node's
// remote-write handler's limiter: a write that gets no slot in time is answered Unavailable, which the
// router retries. ready gates writes (Unavailable until it returns true).
func NewIngestServer(cfg IngestConfig, storage TenantStorage, lim *Limiter, ready func() bool, logger *slog.Logger, reg prometheus.Registerer) (*IngestServer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if storage == nil || ready == nil || logger == nil || reg == nil {
		return nil, errors.New("ingest server needs storage, a readiness check, a logger and a registerer")
	}
	return &IngestServer{
		cfg:     cfg.withDefaults(),
		storage: storage,
		limiter: lim,
		ready:   ready,
		logger:  logger,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "weir_ingest_requests_total",
			Help: "Writes received from routers over gRPC, by node-to-node protocol (v1: a router of the previous release) and status code.",
		}, []string{"protocol", "code"}),
	}, nil
}

// Register registers the ingest service on r: protocol v2 and, for routers of the previous release,
// v1 (see codec.go).
func (s *IngestServer) Register(r grpc.ServiceRegistrar) {
	if s.cfg.Protocol != ProtocolV1 {
		r.RegisterService(&ingestServiceDesc, s)
	}
	r.RegisterService(&legacyServiceDesc, s)
}

// ingestService is the handler type of the service description.
type ingestService interface {
	write(ctx context.Context, req *ingestRequest) (*writeReply, error)
}

var ingestServiceDesc = grpc.ServiceDesc{
	ServiceName: ingestServiceName,
	HandlerType: (*ingestService)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Write", Handler: ingestWriteHandler}},
	Metadata:    "receive/ingestpb/ingest.proto",
}

// legacyServiceDesc is protocol v1 (legacy.go): the compatibility path, to delete with it.
var legacyServiceDesc = grpc.ServiceDesc{
	ServiceName: legacyServiceName,
	HandlerType: (*ingestService)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Write", Handler: legacyWriteHandler}},
	Metadata:    "receive/legacy.go",
}

func ingestWriteHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	return handleWrite(srv, ctx, dec, interceptor, false)
}

func legacyWriteHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	return handleWrite(srv, ctx, dec, interceptor, true)
}

func handleWrite(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor, legacy bool) (any, error) {
	req := &ingestRequest{legacy: legacy}
	if err := dec(req); err != nil {
		return nil, err
	}
	s := srv.(ingestService)
	write := func(ctx context.Context, r any) (any, error) {
		reply, err := s.write(ctx, r.(*ingestRequest))
		switch {
		case err != nil:
			return nil, err
		case legacy:
			return (*legacyReply)(reply), nil
		}
		return reply, nil
	}
	if interceptor == nil {
		return write(ctx, req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: ingestWriteMethod}
	if legacy {
		info.FullMethod = legacyWriteMethod
	}
	return interceptor(ctx, req, info, write)
}

func (s *IngestServer) write(ctx context.Context, req *ingestRequest) (*writeReply, error) {
	defer req.release()
	reply, err := s.writeRequest(ctx, req)
	protocol := ProtocolV2
	if req.legacy {
		protocol = ProtocolV1
	}
	s.requests.WithLabelValues(protocol, status.Code(err).String()).Inc()
	return reply, err
}

func (s *IngestServer) writeRequest(ctx context.Context, req *ingestRequest) (*writeReply, error) {
	if !s.ready() {
		return nil, ingestStatus(errorf(ClassUnavailable, "not ready"))
	}
	if err := req.parse(); err != nil {
		return nil, ingestStatus(err)
	}
	if err := tenant.ValidateID(req.tenant); err != nil {
		return nil, ingestStatus(err)
	}
	slot, err := s.limiter.Acquire(ctx)
	if err != nil {
		return nil, ingestStatus(err)
	}
	defer slot.Release()
	var wr *Request
	if req.compressed {
		wr, err = DecodeBytes(req.payload, s.cfg.MaxDecodedBytes)
	} else {
		wr, err = DecodeRaw(req.payload, s.cfg.MaxDecodedBytes) // aliases req.buf, released after wr
	}
	if err != nil {
		return nil, ingestStatus(err)
	}
	defer wr.Release()
	series := wr.Write.Timeseries
	if req.hashes != nil && len(*req.hashes) != len(series) {
		return nil, ingestStatus(fmt.Errorf("%w: %d series hashes for %d series", errFrame, len(*req.hashes), len(series)))
	}
	reply := &writeReply{}
	if len(series) == 0 {
		return reply, nil
	}
	var extras []write.SeriesExtra
	if req.extras != nil {
		if extras, err = parseExtras(req.extras); err != nil {
			return nil, ingestStatus(err)
		}
		if len(extras) != len(series) {
			return nil, ingestStatus(fmt.Errorf("%w: %d series extras for %d series", errFrame, len(extras), len(series)))
		}
		reply.extrasStored = true
	}
	reply.stats, err = s.writeSeries(ctx, req, series, extras)
	if err != nil {
		s.logger.Debug("ingest write failed", "tenant", req.tenant, "series", len(series), "err", err)
		return nil, ingestStatus(err)
	}
	return reply, nil
}

// writeSeries writes the series of req, with the request's hashes when it has them.
func (s *IngestServer) writeSeries(ctx context.Context, req *ingestRequest, series []prompb.TimeSeries, extras []write.SeriesExtra) (write.Stats, error) {
	var hashes []uint64
	if req.hashes != nil {
		hashes = *req.hashes
	}
	return s.storage.Write(ctx, req.tenant, series, extras, hashes)
}
