package eventstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/telephony/creditledger/events"
)

// codeErr stands in for *esdb.Error, which tests cannot build (its fields are unexported);
// the store only looks at Code().
type codeErr struct{ code esdb.ErrorCode }

func (e codeErr) Error() string         { return fmt.Sprintf("esdb error code %d", e.code) }
func (e codeErr) Code() esdb.ErrorCode  { return e.code }
func esdbErr(code esdb.ErrorCode) error { return codeErr{code} }

// The real *esdb.Error must keep satisfying the interface the store matches on.
var _ coder = (*esdb.Error)(nil)

func TestErrorCodeFindsWrappedClientErrors(t *testing.T) {
	wrapped := fmt.Errorf("could not send append request. Reason: %w", esdbErr(esdb.ErrorCodeWrongExpectedVersion))
	if code, ok := errorCode(wrapped); !ok || code != esdb.ErrorCodeWrongExpectedVersion {
		t.Errorf("errorCode = %v, %v", code, ok)
	}
	if _, ok := errorCode(errors.New("plain")); ok {
		t.Error("errorCode found a code in a plain error")
	}
	// The client's own FromError wraps a foreign error as ErrorCodeUnknown.
	fromClient, _ := esdb.FromError(errors.New("transport"))
	if code, ok := errorCode(fromClient); !ok || code != esdb.ErrorCodeUnknown {
		t.Errorf("errorCode(esdb.FromError(...)) = %v, %v", code, ok)
	}
}

func TestMapError(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	tests := []struct {
		name     string
		ctx      context.Context
		give     error
		wantIs   []error
		wantNot  []error
		wantText string
	}{
		{name: "nil", ctx: live, give: nil},
		{name: "wrong expected version", ctx: live, give: esdbErr(esdb.ErrorCodeWrongExpectedVersion),
			wantIs: []error{events.ErrConflict}, wantText: "append account-acme: wrong expected stream version"},
		{name: "wrong expected version wins over a cancelled context", ctx: cancelled, give: esdbErr(esdb.ErrorCodeWrongExpectedVersion),
			wantIs: []error{events.ErrConflict}, wantNot: []error{context.Canceled}},
		{name: "cancelled call", ctx: cancelled, give: esdbErr(esdb.ErrorCodeUnknown),
			wantIs: []error{context.Canceled}, wantNot: []error{events.ErrConflict}},
		{name: "gRPC deadline", ctx: live, give: esdbErr(esdb.ErrorCodeDeadlineExceeded),
			wantIs: []error{context.DeadlineExceeded}, wantNot: []error{events.ErrConflict}},
		{name: "unavailable", ctx: live, give: esdbErr(esdb.ErrorUnavailable),
			wantNot: []error{events.ErrConflict, context.Canceled, context.DeadlineExceeded}},
		{name: "access denied", ctx: live, give: esdbErr(esdb.ErrorCodeAccessDenied),
			wantNot: []error{events.ErrConflict}},
		{name: "stream deleted", ctx: live, give: esdbErr(esdb.ErrorCodeStreamDeleted),
			wantNot: []error{events.ErrConflict}},
		{name: "plain", ctx: live, give: errors.New("boom"), wantText: "append account-acme: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError(tt.ctx, "append account-acme", tt.give)
			if tt.give == nil {
				if got != nil {
					t.Fatalf("mapError(nil) = %v", got)
				}
				return
			}
			if !errors.Is(got, tt.give) {
				t.Errorf("%v does not keep the client's error in its chain", got)
			}
			for _, w := range tt.wantIs {
				if !errors.Is(got, w) {
					t.Errorf("%v: errors.Is(%v) = false", got, w)
				}
			}
			for _, w := range tt.wantNot {
				if errors.Is(got, w) {
					t.Errorf("%v: errors.Is(%v) = true", got, w)
				}
			}
			if tt.wantText != "" && len(got.Error()) < len(tt.wantText) || tt.wantText != "" && got.Error()[:len(tt.wantText)] != tt.wantText {
				t.Errorf("message %q, want it to start with %q", got.Error(), tt.wantText)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		give error
		want bool
	}{
		{errors.New("failed to initiate subscription"), true},
		{esdbErr(esdb.ErrorCodeUnknown), true},
		{esdbErr(esdb.ErrorUnavailable), true},
		{esdbErr(esdb.ErrorAborted), true},
		{esdbErr(esdb.ErrorCodeNotLeader), true},
		{esdbErr(esdb.ErrorCodeDeadlineExceeded), true},
		{esdbErr(esdb.ErrorCodeConnectionClosed), true},
		{esdbErr(esdb.ErrorCodeInternalServer), true},
		{esdbErr(esdb.ErrorCodeUnauthenticated), false},
		{esdbErr(esdb.ErrorCodeAccessDenied), false},
		{esdbErr(esdb.ErrorCodeUnsupportedFeature), false},
		{esdbErr(esdb.ErrorCodeStreamDeleted), false},
		{esdbErr(esdb.ErrorCodeParsing), false},
		{fmt.Errorf("failed to construct subscription. Reason: %w", esdbErr(esdb.ErrorCodeAccessDenied)), false},
	}
	for _, tt := range tests {
		if got := retryable(tt.give); got != tt.want {
			t.Errorf("retryable(%v) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestClientGone(t *testing.T) {
	if !clientGone(fmt.Errorf("x: %w", esdbErr(esdb.ErrorCodeConnectionClosed))) {
		t.Error("ConnectionClosed not recognised")
	}
	for _, e := range []error{nil, errors.New("x"), esdbErr(esdb.ErrorUnavailable)} {
		if clientGone(e) {
			t.Errorf("clientGone(%v) = true", e)
		}
	}
}
