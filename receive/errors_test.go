package receive

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

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

func TestClassNames(t *testing.T) {
	require.Len(t, classNames, int(ClassUnavailable)+1)
	for c, name := range classNames {
		require.NotEmpty(t, name, "class %d has no name", c)
	}
}
