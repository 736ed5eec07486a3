package receive

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-metrics/weir/auth"
	"github.com/weir-metrics/weir/tenant"
)

func TestStatusCode(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		class  Class
		status int
	}{
		{"nil", nil, ClassInternal, http.StatusNoContent},
		{"plain error", errors.New("disk full"), ClassInternal, http.StatusInternalServerError},
		{"internal", errorf(ClassInternal, "bug"), ClassInternal, http.StatusInternalServerError},
		{"invalid", errorf(ClassInvalid, "bad"), ClassInvalid, http.StatusBadRequest},
		{"conflict", errorf(ClassConflict, "partial"), ClassConflict, http.StatusBadRequest},
		{"too large", errorf(ClassTooLarge, "big"), ClassTooLarge, http.StatusRequestEntityTooLarge},
		{"unsupported", errorf(ClassUnsupported, "gzip"), ClassUnsupported, http.StatusUnsupportedMediaType},
		{"unavailable", errorf(ClassUnavailable, "later"), ClassUnavailable, http.StatusServiceUnavailable},
		{"limited", &Error{Class: ClassLimited, Err: errors.New("rate"), RetryAfter: 3 * time.Second}, ClassLimited, http.StatusTooManyRequests},
		{"wrapped classed error", fmt.Errorf("outer: %w", errorf(ClassTooLarge, "big")), ClassTooLarge, http.StatusRequestEntityTooLarge},
		{"twice wrapped classed error", fmt.Errorf("a: %w", fmt.Errorf("b: %w", errorf(ClassUnsupported, "x"))), ClassUnsupported, http.StatusUnsupportedMediaType},
		{"joined classed error", errors.Join(errors.New("first"), errorf(ClassInvalid, "x")), ClassInvalid, http.StatusBadRequest},
		{"invalid tenant ID", tenant.ErrInvalidID, ClassInvalid, http.StatusBadRequest},
		{"wrapped invalid tenant ID", tenant.ValidateID("../etc"), ClassInvalid, http.StatusBadRequest},
		{"tenant unavailable", tenant.ErrUnavailable, ClassUnavailable, http.StatusServiceUnavailable},
		{"wrapped tenant unavailable", fmt.Errorf("open tenant a: %w", tenant.ErrUnavailable), ClassUnavailable, http.StatusServiceUnavailable},
		{"tenant closed", tenant.ErrClosed, ClassUnavailable, http.StatusServiceUnavailable},
		{"wrapped tenant closed", fmt.Errorf("write: %w", tenant.ErrClosed), ClassUnavailable, http.StatusServiceUnavailable},
		{"cancelled", context.Canceled, ClassUnavailable, http.StatusServiceUnavailable},
		{"wrapped cancelled", fmt.Errorf("write cancelled: %w", context.Canceled), ClassUnavailable, http.StatusServiceUnavailable},
		{"deadline", context.DeadlineExceeded, ClassUnavailable, http.StatusServiceUnavailable},
		{"wrapped deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), ClassUnavailable, http.StatusServiceUnavailable},
		{"unauthenticated", fmt.Errorf("x: %w", auth.ErrUnauthenticated), ClassUnauthenticated, http.StatusUnauthorized},
		{"forbidden", fmt.Errorf("x: %w", auth.ErrForbidden), ClassForbidden, http.StatusForbidden},
		{"header names another tenant", fmt.Errorf("x: %w", tenant.ErrOtherTenant), ClassForbidden, http.StatusForbidden},
		// The class an error carries wins over its cause.
		{"class wins over cause", &Error{Class: ClassInternal, Err: tenant.ErrUnavailable}, ClassInternal, http.StatusInternalServerError},
		{"unknown class", &Error{Class: Class(200), Err: errors.New("?")}, Class(200), http.StatusInternalServerError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err != nil {
				require.Equal(t, tc.class, ClassOf(tc.err))
			}
			require.Equal(t, tc.status, StatusCode(tc.err))
		})
	}
}

func TestError(t *testing.T) {
	cause := errors.New("cause")
	err := &Error{Class: ClassInvalid, Err: fmt.Errorf("wrapped: %w", cause)}
	require.EqualError(t, err, "wrapped: cause")
	require.ErrorIs(t, err, cause)

	e := errorf(ClassTooLarge, "body of %d bytes", 7)
	require.Equal(t, ClassTooLarge, e.Class)
	require.EqualError(t, e, "body of 7 bytes")
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errorf(ClassInvalid, "x"), ""},
		{errorf(ClassConflict, "x"), ""},
		{errorf(ClassTooLarge, "x"), ""},
		{errorf(ClassUnavailable, "x"), "5"},
		{&Error{Class: ClassLimited, Err: errors.New("x")}, "5"},
		{&Error{Class: ClassLimited, Err: errors.New("x"), RetryAfter: 3 * time.Second}, "3"},
		{fmt.Errorf("wrapped: %w", &Error{Class: ClassLimited, Err: errors.New("x"), RetryAfter: 200 * time.Millisecond}), "1"},
	} {
		require.Equal(t, tc.want, retryAfter(tc.err), "%v", tc.err)
	}
}

func TestClassNames(t *testing.T) {
	require.Len(t, classNames, int(ClassLimited)+1)
	for c, name := range classNames {
		require.NotEmpty(t, name, "class %d has no name", c)
	}
}

// TestIngestStatus: what the ingest service answers is read back by a router as the same class, and
// as an answer (the endpoint is up) — unlike a transport failure with the same code.
func TestIngestStatus(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		code  codes.Code
		class Class // on the router
	}{
		{"not ready", errorf(ClassUnavailable, "not ready"), codes.Unavailable, ClassUnavailable},
		{"limiter gave up at the deadline", &Error{Class: ClassUnavailable, Err: fmt.Errorf("overloaded: %w", context.DeadlineExceeded)}, codes.Unavailable, ClassUnavailable},
		{"storage deadline", fmt.Errorf("write: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ClassUnavailable},
		{"storage cancelled", fmt.Errorf("write: %w", context.Canceled), codes.Canceled, ClassUnavailable},
		{"tenant opening", tenant.ErrUnavailable, codes.Unavailable, ClassUnavailable},
		{"no room for another tenant", fmt.Errorf("%w: 900 of 1000 open files", tenant.ErrNoRoom), codes.ResourceExhausted, ClassUnavailable},
		{"invalid tenant", tenant.ValidateID(".."), codes.InvalidArgument, ClassInvalid},
		{"too large", errorf(ClassTooLarge, "big"), codes.InvalidArgument, ClassInvalid},
		{"conflict", errorf(ClassConflict, "ooo"), codes.InvalidArgument, ClassInvalid},
		{"malformed frame", fmt.Errorf("%w: short", errFrame), codes.InvalidArgument, ClassInvalid},
		{"unknown frame version", fmt.Errorf("%w 9", errFrameVersion), codes.Unimplemented, ClassInternal},
		{"storage failure", errors.New("disk full"), codes.Internal, ClassInternal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ingestStatus(tc.err)
			require.Equal(t, tc.code, status.Code(err))
			require.Equal(t, ingestErrorPrefix+tc.err.Error(), status.Convert(err).Message())
			require.Equal(t, tc.class, ClassOf(forwardError("ingester", err)))
			require.Equal(t, healthUp, healthOf(err))
		})
	}
}

func TestHealthOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want endpointHealth
	}{
		{"success", nil, healthUp},
		{"ingester answer", ingestStatus(errors.New("disk full")), healthUp},
		{"ingester answer of an earlier build", status.Error(codes.Unavailable, ingestErrorPrefix+"not ready"), healthUp},
		{"unreachable", status.Error(codes.Unavailable, "connection refused"), healthDown},
		{"no answer in time", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), healthDown},
		{"cancelled by the router", status.Error(codes.Canceled, "context canceled"), healthUnknown},
		{"foreign detail", foreignDetail(t), healthDown},
		{"not a status", errors.New("x"), healthUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, healthOf(tc.err))
		})
	}
}

// foreignDetail is an Unavailable status with an ErrorInfo of another domain (a proxy in between).
func foreignDetail(t *testing.T) error {
	st, err := status.New(codes.Unavailable, "upstream connect error").WithDetails(&errdetails.ErrorInfo{Reason: "UNAVAILABLE", Domain: "proxy.example"})
	require.NoError(t, err)
	return st.Err()
}

func TestIngestReason(t *testing.T) {
	err := ingestStatus(errorf(ClassTooLarge, "big"))
	details := status.Convert(err).Details()
	require.Len(t, details, 1)
	info, ok := details[0].(*errdetails.ErrorInfo)
	require.True(t, ok, "%T", details[0])
	require.Equal(t, ingestErrorDomain, info.GetDomain())
	require.Equal(t, "TOO_LARGE", info.GetReason())
	require.Equal(t, "INTERNAL", ingestReason(Class(200)))
}

func TestRetryable(t *testing.T) {
	require.True(t, retryable(status.Error(codes.Unavailable, "connection refused")))
	require.True(t, retryable(forwardError("e", ingestStatus(tenant.ErrUnavailable))))
	require.False(t, retryable(ingestStatus(errors.New("disk full"))))
	require.False(t, retryable(forwardError("e", ingestStatus(tenant.ErrNoRoom))), "lasts until tenants are pruned")
	require.False(t, retryable(status.Error(codes.DeadlineExceeded, "late")))
	require.False(t, retryable(errors.New("x")))
}

func TestReasons(t *testing.T) {
	require.Equal(t, refusedTooLarge, decodeRefusal(errorf(ClassTooLarge, "big")))
	require.Equal(t, refusedUnsupported, decodeRefusal(errorf(ClassUnsupported, "gzip")))
	require.Equal(t, refusedOverloaded, decodeRefusal(errorf(ClassUnavailable, "no slot")))
	require.Equal(t, refusedDecode, decodeRefusal(errorf(ClassInvalid, "not snappy")))
	require.Equal(t, quorumTimeout, waitFailure(fmt.Errorf("x: %w", context.DeadlineExceeded)))
	require.Equal(t, quorumCanceled, waitFailure(context.Canceled))
	require.Equal(t, "internal", className(Class(200)))
	require.Len(t, quorumFailureReasons, 7)
}
