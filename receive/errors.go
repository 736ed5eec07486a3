package receive

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/weir-metrics/weir/tenant"
)

// Class says whose fault an error is and so what a sender must do about it. StatusCode is the only
// place that turns a class into an HTTP status.
type Class uint8

// Error classes, in the order of the status table in doc.go.
const (
	ClassInternal    Class = iota // a bug or a local failure: 500, retried
	ClassInvalid                  // the request is wrong and will stay wrong: 400, never retried
	ClassConflict                 // some points clash with stored data; the rest was written: 400
	ClassTooLarge                 // over a size limit: 413, never retried
	ClassUnsupported              // encoding or content type we do not speak: 415
	ClassUnavailable              // try again later (not ready, storage opening, shutting down): 503
)

// Error is an error with a class.
type Error struct {
	Class Class
	Err   error
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
	}
	return http.StatusInternalServerError
}
