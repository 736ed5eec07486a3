package tenant

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer traces appends and commits through OpenTelemetry's global provider (package tracing).
var tracer = otel.Tracer("github.com/weir-metrics/weir/tenant")

// endSpan ends span, marking it failed with err unless err is nil.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
