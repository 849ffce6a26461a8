package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/telephony/creditledger/events"
)

// errClosed is returned by every operation after Close.
var errClosed = errors.New("eventstore: store is closed")

// coder is what *esdb.Error offers to tell its kind. Matching the method rather than the
// type lets errors.As find it under the client's own wrapping ("could not send append
// request. Reason: %w") and lets tests fake it: *esdb.Error has no exported constructor.
type coder interface {
	Code() esdb.ErrorCode
}

// errorCode returns the EventStoreDB error code in err's chain, if there is one.
func errorCode(err error) (esdb.ErrorCode, bool) {
	var c coder
	if errors.As(err, &c) {
		return c.Code(), true
	}
	return esdb.ErrorCodeUnknown, false
}

// hasCode tells whether err carries the given EventStoreDB error code.
func hasCode(err error, code esdb.ErrorCode) bool {
	c, ok := errorCode(err)
	return ok && c == code
}

// mapError turns an error of the client into the port's error for operation op:
//   - wrong expected version -> wraps events.ErrConflict (the caller reloads and decides again);
//   - the operation's context ended -> wraps ctx.Err(), because the client reports a
//     cancelled call as an unclassified gRPC error;
//   - a gRPC deadline -> wraps context.DeadlineExceeded;
//   - anything else is wrapped with op as it is.
//
// The client's error stays in the chain, so errors.As(err, **esdb.Error) still works.
func mapError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	code, _ := errorCode(err)
	switch {
	case code == esdb.ErrorCodeWrongExpectedVersion:
		return fmt.Errorf("%s: %w: %w", op, events.ErrConflict, err)
	case ctx != nil && ctx.Err() != nil:
		return fmt.Errorf("%s: %w: %w", op, ctx.Err(), err)
	case code == esdb.ErrorCodeDeadlineExceeded:
		return fmt.Errorf("%s: %w: %w", op, context.DeadlineExceeded, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

// retryable tells whether a failure to (re)establish a subscription may go away by
// itself (node restarting, leader election, network), so Subscribe keeps trying with
// backoff. Authentication, permissions and an unsupported server are configuration
// problems: retrying only hides them, so they end Subscribe. Errors without a code come
// from the transport or the client and are treated as transient.
func retryable(err error) bool {
	code, ok := errorCode(err)
	if !ok {
		return true
	}
	switch code {
	case esdb.ErrorCodeUnauthenticated, esdb.ErrorCodeAccessDenied, esdb.ErrorCodeUnsupportedFeature,
		esdb.ErrorCodeStreamDeleted, esdb.ErrorCodeParsing, esdb.ErrorCodeInternalClient:
		return false
	default:
		return true
	}
}

// clientGone tells whether the client has shut itself down. EventStore-Client-Go closes
// a client for good when a node discovery fails (for example while the server restarts);
// every later call then fails with ErrorCodeConnectionClosed before anything is sent, so
// the store can replace the client and safely send the request again.
func clientGone(err error) bool {
	return hasCode(err, esdb.ErrorCodeConnectionClosed)
}
