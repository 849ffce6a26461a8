package topup

import (
	"context"

	"github.com/shopspring/decimal"
)

// Failure reasons the adapters report when the gateway gave none of its own.
const (
	// ReasonGatewayUnavailable: no usable answer (timeout, refused connection, an
	// unexpected status or body). The attempt is retried like a decline.
	ReasonGatewayUnavailable = "gateway_unavailable"
	// ReasonPaymentDeclined: the gateway declined without saying why.
	ReasonPaymentDeclined = "payment_declined"
)

// reasonLengthMax bounds a failure reason taken from a gateway's answer: it is stored in
// the account's stream forever and shown in alerts.
const reasonLengthMax = 128

// Payment is one payment attempt of a top-up.
type Payment struct {
	// TopUpID is the idempotency key: every attempt of one top-up carries the same one, so
	// the gateway charges a top-up at most once however often it is asked.
	TopUpID   string
	AccountID string
	Amount    decimal.Decimal
	Currency  string
	// Kind is events.TopUpOneTime or events.TopUpAuto.
	Kind string
	// Attempt counts from 1.
	Attempt int
}

// Result is the gateway's answer to one payment attempt.
type Result struct {
	Succeeded bool
	// PaymentID is the gateway's id of the payment when it succeeded.
	PaymentID string
	// Reason says why the attempt failed (for example "card_declined" or
	// ReasonGatewayUnavailable).
	Reason string
}

// Gateway is the port to the payment provider.
type Gateway interface {
	// Charge attempts the payment. Every answer, including no answer in time, is a
	// Result. An error means the attempt has no outcome to record, because ctx ended: the
	// caller abandons it and tries again later with the same TopUpID.
	Charge(ctx context.Context, p Payment) (Result, error)
}

// truncateReason keeps a gateway's reason within reasonLengthMax bytes.
func truncateReason(s string) string {
	if len(s) <= reasonLengthMax {
		return s
	}
	return s[:reasonLengthMax]
}
