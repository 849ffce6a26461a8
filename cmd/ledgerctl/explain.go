package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

var explainCommand = &command{
	name:    "explain",
	args:    []string{"ACCOUNT", "USAGE_ID"},
	summary: "one charge: where it sits, the balance around it, its refunds",
	details: `
Finds the charge of one usage in the account's stream (read from the event store) and
prints where it sits (version in the stream, store position, event id), when it occurred
and was recorded, the usage details (type and reason, cause, user, destination, quantity),
the amount charged, the balance before and after it, and every adjustment that references
the usage, with the total refunded and what may still be refunded (API.md section 8: the
refunds of a usage never exceed its charge).

An unknown account or a usage that was never charged to the account is an error (exit 1).`,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print one JSON object instead of text")
		return func(ctx context.Context, e *env, args []string) error {
			return explain(ctx, e, args[0], args[1], *asJSON)
		}
	},
}

// explanation is what explain finds out about one charge.
type explanation struct {
	AccountID     string          `json:"account_id"`
	UsageID       string          `json:"usage_id"`
	EventID       string          `json:"event_id"`
	Version       uint64          `json:"version"`
	StreamVersion uint64          `json:"stream_version"`
	Position      uint64          `json:"position"`
	RecordedAt    time.Time       `json:"recorded_at"`
	OccurredAt    time.Time       `json:"occurred_at"`
	UsageType     string          `json:"usage_type"`
	Reason        string          `json:"reason"`
	Cause         string          `json:"cause"`
	UserID        string          `json:"user_id"`
	Destination   string          `json:"destination"`
	Quantity      string          `json:"quantity"`
	Unit          string          `json:"unit"`
	Amount        decimal.Decimal `json:"amount"`
	Currency      string          `json:"currency"`
	BalanceBefore decimal.Decimal `json:"balance_before"`
	BalanceAfter  decimal.Decimal `json:"balance_after"`
	Adjustments   []adjustmentRef `json:"adjustments"`
	Refunded      decimal.Decimal `json:"refunded"`
	Refundable    decimal.Decimal `json:"refundable"`
}

// adjustmentRef is an adjustment that names the usage.
type adjustmentRef struct {
	AdjustmentID string          `json:"adjustment_id"`
	Version      uint64          `json:"version"`
	Position     uint64          `json:"position"`
	RecordedAt   time.Time       `json:"recorded_at"`
	Amount       decimal.Decimal `json:"amount"`
	Reason       string          `json:"reason"`
	BalanceAfter decimal.Decimal `json:"balance_after"`
}

func explain(ctx context.Context, e *env, account, usageID string, asJSON bool) error {
	if err := ledger.CheckID("account_id", account); err != nil {
		return usagef("%v", err)
	}
	if err := ledger.CheckID("usage_id", usageID); err != nil {
		return usagef("%v", err)
	}
	evs, err := readAccount(ctx, e.globals, account)
	if err != nil {
		return err
	}
	x, ok := explainUsage(steps(evs), usageID)
	if !ok {
		return fmt.Errorf("usage %q was never charged to account %q (%d events searched)", usageID, account, len(evs))
	}
	w := bufio.NewWriter(e.stdout)
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(x)
	} else {
		err = writeExplanation(w, x)
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// explainUsage finds the charge of usageID among the steps and the adjustments that
// reference it. ok is false when the usage was never charged.
func explainUsage(ss []step, usageID string) (x explanation, ok bool) {
	for _, s := range ss {
		switch d := s.Data.(type) {
		case events.UsageCharged:
			if d.UsageID == usageID && !ok {
				x, ok = chargeOf(s, d), true
			}
		case events.AdjustmentApplied:
			if d.UsageID == usageID {
				x.Adjustments = append(x.Adjustments, adjustmentRef{AdjustmentID: d.AdjustmentID, Version: s.Version,
					Position: s.Position, RecordedAt: s.RecordedAt.UTC(), Amount: d.Amount, Reason: d.Reason, BalanceAfter: s.After})
				x.Refunded = x.Refunded.Add(d.Amount)
			}
		}
	}
	if !ok {
		return x, false
	}
	x.StreamVersion = ss[len(ss)-1].Version
	x.Refundable = decimal.Max(x.Amount.Sub(x.Refunded), decimal.Zero)
	if x.Adjustments == nil {
		x.Adjustments = []adjustmentRef{}
	}
	return x, true
}

func chargeOf(s step, d events.UsageCharged) explanation {
	occurred := s.OccurredAt
	if occurred.IsZero() {
		occurred = d.UsedAt
	}
	return explanation{
		AccountID: s.AccountID, UsageID: d.UsageID, EventID: s.ID.String(), Version: s.Version, Position: s.Position,
		RecordedAt: s.RecordedAt.UTC(), OccurredAt: occurred.UTC(),
		UsageType: d.UsageType, Reason: d.Reason, Cause: d.Cause, UserID: d.UserID, Destination: d.Destination,
		Quantity: d.Quantity, Unit: d.Unit, Amount: d.Amount, Currency: d.Currency,
		BalanceBefore: s.Before, BalanceAfter: s.After,
	}
}

func writeExplanation(w io.Writer, x explanation) error {
	row := func(label, value string) { fmt.Fprintf(w, "  %-16s %s\n", label, orDash(value)) }
	fmt.Fprintf(w, "usage %s of account %s\n", x.UsageID, x.AccountID)
	row("stream", fmt.Sprintf("version %d of %d, store position %d", x.Version, x.StreamVersion, x.Position))
	row("event id", x.EventID)
	row("occurred at", timeText(x.OccurredAt))
	row("recorded at", timeText(x.RecordedAt))
	typ := x.UsageType
	if x.Reason != "" {
		typ += " (reason " + x.Reason + ")"
	}
	row("type", typ)
	row("cause", x.Cause)
	row("user", x.UserID)
	row("destination", x.Destination)
	row("quantity", joinNonEmpty(x.Quantity, x.Unit))
	row("charged", x.Amount.String()+" "+x.Currency)
	row("balance before", x.BalanceBefore.String())
	row("balance after", x.BalanceAfter.String())
	if len(x.Adjustments) == 0 {
		fmt.Fprintln(w, "adjustments referencing it: none")
	} else {
		fmt.Fprintf(w, "adjustments referencing it: %d\n", len(x.Adjustments))
	}
	for _, a := range x.Adjustments {
		fmt.Fprintf(w, "  version %d  %s  %s  %s  %q  (balance after %s)\n",
			a.Version, timeText(a.RecordedAt), a.AdjustmentID, signed(a.Amount), a.Reason, a.BalanceAfter)
	}
	row("refunded", x.Refunded.String())
	row("refundable", x.Refundable.String())
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}
