package receive

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-metrics/weir/auth"
	"github.com/weir-metrics/weir/tenant"
)

// This file is the only one that classifies errors. It owns one vocabulary and every mapping of it:
//
//   - Class, and ClassOf for errors that carry none;
//   - StatusCode: class → HTTP status (the table in doc.go);
//   - ingestStatus: class → gRPC status, on the ingester; classOfStatus and healthOf: gRPC status →
//     class and endpoint health, on the router, and retryable;
//   - outcomeOf: class → replica outcome (quorum.go);
//   - the names the metrics count errors by (classNames, forwardResult, the quorum-failure and
//     refusal reasons).
//
// Errors are given a class where they arise (errorf, &Error{}) or by their sentinel here; other files
// ask these functions and never compare messages or metric labels.

// Class says whose fault an error is and so what a sender must do about it. StatusCode is the only
// place that turns a class into an HTTP status.
type Class uint8

// Error classes, in the order of the status table in doc.go.
const (
	ClassInternal        Class = iota // a bug or a local failure: 500, retried
	ClassInvalid                      // the request is wrong and will stay wrong: 400, never retried
	ClassConflict                     // some points clash with stored data; the rest was written: 400
	ClassTooLarge                     // over a size limit: 413, never retried
	ClassUnsupported                  // encoding or content type we do not speak: 415
	ClassUnavailable                  // try again later (not ready, storage opening, shutting down): 503
	ClassUnauthenticated              // no identity, or a wrong one (credentials, client certificate): 401
	ClassForbidden                    // an identity writing a tenant it may not: 403
	ClassLimited                      // the tenant is over its ingestion rate: 429, retried after Error.RetryAfter
)

// Error is an error with a class.
type Error struct {
	Class Class
	Err   error
	// RetryAfter is when a sender may try again (ClassLimited; zero: defaultRetryAfter).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(c Class, format string, args ...any) *Error {
	return &Error{Class: c, Err: fmt.Errorf(format, args...)}
}

// ClassOf classifies err. Errors that carry no class are classified by cause: storage that is opening
// or closing and cancelled or timed-out work are transient; anything else is internal.
func ClassOf(err error) Class {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Class
	case errors.Is(err, tenant.ErrInvalidID):
		return ClassInvalid
	case errors.Is(err, auth.ErrUnauthenticated):
		return ClassUnauthenticated
	case errors.Is(err, auth.ErrForbidden), errors.Is(err, tenant.ErrOtherTenant):
		return ClassForbidden
	case errors.Is(err, tenant.ErrUnavailable), errors.Is(err, tenant.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ClassUnavailable
	}
	return ClassInternal
}

// StatusCode is the HTTP status for err (nil: 204, as Prometheus' own receiver answers).
func StatusCode(err error) int {
	if err == nil {
		return http.StatusNoContent
	}
	switch ClassOf(err) {
	case ClassInvalid, ClassConflict:
		return http.StatusBadRequest
	case ClassTooLarge:
		return http.StatusRequestEntityTooLarge
	case ClassUnsupported:
		return http.StatusUnsupportedMediaType
	case ClassUnavailable:
		return http.StatusServiceUnavailable
	case ClassUnauthenticated:
		return http.StatusUnauthorized
	case ClassForbidden:
		return http.StatusForbidden
	case ClassLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// otlpStatusCode is the HTTP status of an OTLP/HTTP answer to err (nil: 200, with the response
// message). It is StatusCode's, but for storage failures: OTLP senders retry only 429, 502, 503 and
// 504 (the OTLP/HTTP specification), so what Remote Write answers 500 for its senders to retry is a
// 503 here — nothing was acknowledged, and a retry may succeed.
func otlpStatusCode(err error) int {
	if err == nil {
		return http.StatusOK
	}
	if ClassOf(err) == ClassInternal {
		return http.StatusServiceUnavailable
	}
	return StatusCode(err)
}

// otlpRPCCode is the google.rpc.Status code of an OTLP error answer with HTTP status code.
func otlpRPCCode(code int) codes.Code {
	switch code {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return codes.InvalidArgument
	case http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	return codes.Internal
}

// defaultRetryAfter is the Retry-After of answers that a sender retries, unless the error says.
const defaultRetryAfter = 5 * time.Second

// answerHeaders sets the headers the answer to err needs: Retry-After on 503 and 429 (senders back
// off; retryAfter), WWW-Authenticate on 401 (RFC 9110: the schemes the sender may use).
func answerHeaders(h http.Header, err error) {
	if ra := retryAfter(err); ra != "" {
		h.Set("Retry-After", ra)
	}
	if ClassOf(err) == ClassUnauthenticated {
		h.Set("WWW-Authenticate", auth.Challenge)
	}
}

// retryAfter is the Retry-After header value of the answer to err: whole seconds for the errors a
// sender retries (429, 503), "" for the others.
func retryAfter(err error) string {
	switch ClassOf(err) {
	case ClassUnavailable, ClassLimited:
	default:
		return ""
	}
	d := defaultRetryAfter
	if e := (*Error)(nil); errors.As(err, &e) && e.RetryAfter > 0 {
		d = e.RetryAfter
	}
	return strconv.Itoa(int(max(d.Round(time.Second), time.Second) / time.Second))
}

// clientFault reports whether c is the sender's fault: retrying the same request cannot succeed.
func (c Class) clientFault() bool {
	switch c {
	case ClassInvalid, ClassConflict, ClassTooLarge, ClassUnsupported, ClassUnauthenticated, ClassForbidden:
		return true
	}
	return false
}

// classNames are the label values of classes in metrics (weir_receive_storage_errors_total).
var classNames = [...]string{
	ClassInternal: "internal", ClassInvalid: "invalid", ClassConflict: "conflict",
	ClassTooLarge: "too_large", ClassUnsupported: "unsupported", ClassUnavailable: "unavailable",
	ClassUnauthenticated: "unauthenticated", ClassForbidden: "forbidden",
	ClassLimited: "limited",
}

// className is the metric label value of c; "internal" for a class without a name.
func className(c Class) string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return classNames[ClassInternal]
}

// # Node-to-node errors
//
// The ingest service answers every error with a gRPC status whose code carries the class (a router
// of any build reads it) and an ErrorInfo detail in ingestErrorDomain whose reason names the class
// (see ingestReason). The detail is what tells a router that the ingest service answered, so the
// endpoint is up, as opposed to a transport failure with the same code (Unavailable,
// DeadlineExceeded). Messages still start with ingestErrorPrefix, which routers of earlier builds
// look for.

// ingestErrorDomain is the ErrorInfo domain of the ingest service's errors, whichever protocol the
// call used: it is how routers of every release since the details were introduced recognise them,
// so it stays the name of the v1 service.
const ingestErrorDomain = "weir.ingest.v1.Ingest"

// ingestErrorPrefix starts the message of every error the ingest service answers, for routers of
// earlier builds (which recognise an ingester's answer by it) and for people reading logs.
const ingestErrorPrefix = "weir ingest: "

// ingestStatus is the answer of the ingest service for err.
func ingestStatus(err error) error {
	code, class := ingestClass(err)
	st := status.New(code, ingestErrorPrefix+err.Error())
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: ingestReason(class), Domain: ingestErrorDomain}); derr == nil {
		st = d
	}
	return st.Err()
}

// ingestClass is the gRPC code and class the ingest service answers err with. A class the error
// carries wins over its cause, as in ClassOf (the Limiter's refusal is Unavailable, whatever ended
// its wait); unclassified cancellations keep their own codes, which tell the router who gave up.
func ingestClass(err error) (codes.Code, Class) {
	switch {
	case errors.Is(err, errNewerRequest):
		// A newer router: a failed replica, not the client's fault.
		return codes.Unimplemented, ClassInternal
	case errors.Is(err, errFrame):
		return codes.InvalidArgument, ClassInvalid
	}
	class := ClassOf(err)
	if e := (*Error)(nil); !errors.As(err, &e) {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return codes.DeadlineExceeded, class
		case errors.Is(err, context.Canceled):
			return codes.Canceled, class
		}
	}
	switch {
	case errors.Is(err, tenant.ErrNoRoom):
		// Still unavailable (503), but not Unavailable: routers of every build retry only that code
		// (retryable), and this refusal lasts until the ingester prunes tenants.
		return codes.ResourceExhausted, class
	case class == ClassUnavailable, class == ClassLimited:
		return codes.Unavailable, class
	case class.clientFault():
		return codes.InvalidArgument, class
	}
	return codes.Internal, class
}

// ingestReason is the ErrorInfo reason for class: its name in UPPER_SNAKE_CASE.
func ingestReason(c Class) string { return strings.ToUpper(className(c)) }

// classOfStatus is the class of a failed call to the ingest service: by its code, which ingesters of
// every build set as ingestClass does. The transient codes of gRPC itself are ClassUnavailable too.
func classOfStatus(err error) Class {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted, codes.Aborted:
		return ClassUnavailable
	case codes.InvalidArgument:
		return ClassInvalid
	}
	return ClassInternal
}

// forwardError classifies a failed call to endpoint.
func forwardError(endpoint string, err error) error {
	return &Error{Class: classOfStatus(err), Err: fmt.Errorf("forward to %s: %w", endpoint, err)}
}

// retryable reports whether a failed call to the ingest service may succeed if made again at once:
// Unavailable, from the transport (a connection being made) or from the service (not ready, storage
// opening, no write slot). Other codes would fail the same way (ResourceExhausted: no room for another
// tenant on the ingester), or the deadline is gone.
func retryable(err error) bool { return status.Code(err) == codes.Unavailable }

// endpointHealth is what the result of a call says about the endpoint it went to.
type endpointHealth uint8

const (
	healthUnknown endpointHealth = iota // nothing (cancelled by the router, a local failure)
	healthUp                            // the ingest service answered, successfully or not
	healthDown                          // unreachable, or no answer in time
)

// healthOf is what err, the result of a call to the ingest service, says about the endpoint.
func healthOf(err error) endpointHealth {
	switch {
	case err == nil, answeredByIngester(err):
		return healthUp
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return healthDown
	}
	return healthUnknown
}

// missingMethod reports whether err says that the endpoint does not serve the method called: gRPC's
// own Unimplemented, not one that the ingest service answered (a request of a newer router). A router
// then falls back to an older protocol (see codec.go).
func missingMethod(err error) bool {
	return status.Code(err) == codes.Unimplemented && !answeredByIngester(err)
}

// answeredByIngester reports whether err is an answer of the ingest service rather than a failure
// to reach it.
func answeredByIngester(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ingestErrorDomain {
			return true
		}
	}
	// Ingesters of earlier builds mark their answers only by the message prefix. Drop this with
	// protocol v1 (legacy.go): ingesters that serve v2 all set the detail.
	return strings.HasPrefix(st.Message(), ingestErrorPrefix)
}

// # Replica outcomes and the router's metrics

// outcomeOf is the replica outcome of a write that failed with err: the client's fault (invalid) or
// not (failed).
func outcomeOf(err error) outcome {
	if ClassOf(err).clientFault() {
		return outcomeInvalid
	}
	return outcomeFailed
}

// Results of the write of a share to one endpoint (label result of weir_forward_requests_total and
// weir_forward_series_total).
const (
	resultSuccess     = "success"
	resultInvalid     = "invalid"
	resultUnavailable = "unavailable"
	resultTimeout     = "timeout"
	resultDown        = "down"
	resultOverloaded  = "overloaded"
	resultError       = "error"
)

// forwardResult is the result label of one write to an endpoint that ended with err.
func forwardResult(err error) string {
	switch {
	case err == nil:
		return resultSuccess
	case errors.Is(err, ErrEndpointDown):
		return resultDown
	case errors.Is(err, ErrOverloaded):
		return resultOverloaded
	case isTimeout(err):
		return resultTimeout
	case outcomeOf(err) == outcomeInvalid:
		return resultInvalid
	case ClassOf(err) == ClassUnavailable:
		return resultUnavailable
	}
	return resultError
}

// isTimeout reports whether err says that a deadline passed, the router's own or the ingester's.
func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded
}

// Reasons of a request without a write quorum (label reason of weir_quorum_failures_total).
const (
	quorumUnavailable = "unavailable" // replicas failed for a server-side reason
	quorumTimeout     = "timeout"     // a replica did not answer in time, or the wait ran out
	quorumCanceled    = "canceled"    // the client went away before the replicas answered
	quorumInvalid     = "invalid"     // replicas refused series as the client's fault
	quorumNoRing      = "no_ring"     // no hashring for the tenant
	quorumRing        = "ring"        // the ring could not place the series
	quorumShutdown    = "shutdown"    // the router is closing
)

// quorumFailureReasons are every reason, to export each counter from the start.
var quorumFailureReasons = []string{
	quorumUnavailable, quorumInvalid, quorumTimeout, quorumCanceled, quorumNoRing, quorumRing, quorumShutdown,
}

// waitFailure is the reason of series left without a verdict when the router stopped waiting for
// their replicas because of waitErr.
func waitFailure(waitErr error) string {
	if errors.Is(waitErr, context.DeadlineExceeded) {
		return quorumTimeout
	}
	return quorumCanceled
}

// # The handler's refusals

// Reasons of requests refused before storage (label reason of
// weir_receive_requests_refused_total).
const (
	refusedNotReady      = "not_ready"
	refusedInvalidTenant = "invalid_tenant"
	refusedDecode        = "decode"
	refusedTooLarge      = "too_large"
	refusedUnsupported   = "unsupported"
	refusedOverloaded    = "overloaded"
	refusedLimits        = "limits"
	refusedUnauthorized  = "unauthenticated"
	refusedForbidden     = "forbidden"
	refusedTenantLimit   = "tenant_limit"
	refusedRateLimited   = "rate_limited"
)

// limitRefusal is the reason of a request refused for a tenant limit with err.
func limitRefusal(err error) string {
	if ClassOf(err) == ClassLimited {
		return refusedRateLimited
	}
	return refusedTenantLimit
}

// tenantRefusal is the reason of a request refused because its tenant could not be told (err).
func tenantRefusal(err error) string {
	switch ClassOf(err) {
	case ClassUnauthenticated:
		return refusedUnauthorized
	case ClassForbidden:
		return refusedForbidden
	case ClassUnavailable:
		return refusedOverloaded
	}
	return refusedInvalidTenant
}

// decodeRefusal is the reason of a request refused because decoding it failed with err.
func decodeRefusal(err error) string {
	switch ClassOf(err) {
	case ClassTooLarge:
		return refusedTooLarge
	case ClassUnsupported:
		return refusedUnsupported
	case ClassUnavailable:
		return refusedOverloaded
	}
	return refusedDecode
}
