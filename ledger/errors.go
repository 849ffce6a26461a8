package ledger

import (
	"errors"
	"fmt"
)

// Error codes, mapped once to HTTP statuses at the edge.
const (
	EINVALID       = "invalid"       // 400: malformed input
	ENOTFOUND      = "not_found"     // 404: unknown account or resource
	ECONFLICT      = "conflict"      // 409: clashes with what exists
	EUNPROCESSABLE = "unprocessable" // 422: well-formed but breaks a rule
)

// Error is the one error type of the domain. Code is the class; Reason is the stable
// machine-readable reason shown to clients (for example "conflicting_duplicate").
type Error struct {
	Code    string
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, else "".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrorReason returns the reason of err if it is (or wraps) an *Error, else "internal".
func ErrorReason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "internal"
}
