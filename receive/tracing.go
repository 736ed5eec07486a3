package receive

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer traces remote-write requests and their routing through OpenTelemetry's global provider
// (package tracing). With tracing off a span costs a context value; attributes are set only on spans
// that record. Between nodes the trace context travels in gRPC metadata (otelgrpc), when
// PeerConfig.Tracing and IngestConfig.Tracing are set.
var tracer = otel.Tracer("github.com/weir-metrics/weir/receive")

// endSpan ends span, marking it failed with err unless err is nil.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
