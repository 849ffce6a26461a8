package topup

import (
	"context"

	"go.uber.org/zap"
)

// Sandbox is the development gateway: it approves every charge and moves no money.
type Sandbox struct{}

var _ Gateway = Sandbox{}

// NewSandbox returns the sandbox gateway. It logs a warning, because a ledger that runs
// on it gives away credit for free.
func NewSandbox(log *zap.Logger) Sandbox {
	log.Warn("payment gateway is the sandbox: every top-up is approved and no real money moves")
	return Sandbox{}
}

// Charge approves the payment. The payment id is derived from the top-up id, so a retried
// attempt gets the same payment, as from a real gateway with idempotency keys.
func (Sandbox) Charge(ctx context.Context, p Payment) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return Result{Succeeded: true, PaymentID: "sandbox-" + p.TopUpID}, nil
}
