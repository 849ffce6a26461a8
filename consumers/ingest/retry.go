package ingest

import (
	"context"
	"errors"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/ledger"
)

// Retry charges a rejected usage again (for example after its account was opened). The
// rejection is marked resolved when the usage is now charged, or was charged meanwhile
// with the same content; otherwise it stays open with the new reason. A passing failure
// is returned as an error and changes nothing.
func (c *Consumer) Retry(ctx context.Context, rejectionID string) (intake.Rejection, error) {
	r, ok, err := c.intake.Rejection(ctx, rejectionID)
	if err != nil {
		return r, err
	}
	if !ok {
		return r, ledger.Errorf(ledger.ENOTFOUND, "rejection_not_found", "rejection %q does not exist", rejectionID)
	}
	if r.Status == intake.RejectionResolved {
		return r, nil
	}
	u, err := Decode(r.Subject, r.Payload)
	if err == nil {
		err = c.writer.ChargeUsages(ctx, []ledger.Usage{u})[0]
	}
	if err != nil && !isRejection(err) {
		return r, err
	}
	r.Status, r.UpdatedAt = intake.RejectionResolved, c.opts.Now().UTC()
	var rejected *ledger.Error
	if errors.As(err, &rejected) {
		r.Status, r.Reason, r.Message = intake.RejectionOpen, rejected.Reason, rejected.Message
	}
	if err := c.intake.UpdateRejection(ctx, r.ID, r.Status, r.Reason, r.Message, r.UpdatedAt); err != nil {
		return r, err
	}
	return r, nil
}
