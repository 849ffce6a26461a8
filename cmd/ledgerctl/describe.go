package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// step is one event of an account stream as the auditor sees it: the signed amount it
// moved and the balance right after it.
type step struct {
	events.Envelope
	// Amount is what the event moved: negative for a charge, positive for a credit, zero
	// for an event that moves no money (settings, a top-up being requested or failing).
	Amount decimal.Decimal
	// Before and After are the account balance around the event.
	Before, After decimal.Decimal
}

// steps folds the stream through ledger.Evolve, the very function the write side decides
// with, so the balance shown is the ledger's own and not a second implementation of it.
func steps(evs []events.Envelope) []step {
	acct := ledger.NewAccount("")
	out := make([]step, len(evs))
	for i, e := range evs {
		before := acct.Balance
		ledger.Evolve(acct, e)
		out[i] = step{Envelope: e, Amount: acct.Balance.Sub(before), Before: before, After: acct.Balance}
	}
	return out
}

// shortType drops the version suffix of an event type ("usage_charged.v1" -> "usage_charged").
func shortType(t string) string {
	if i := strings.LastIndex(t, ".v"); i > 0 {
		return t[:i]
	}
	return t
}

// signed writes an amount with its sign, so credits stand out from charges.
func signed(d decimal.Decimal) string {
	if d.IsPositive() {
		return "+" + d.String()
	}
	return d.String()
}

// timeText is the fixed-width form of a time in the text outputs (UTC, milliseconds); the
// JSON outputs keep full precision.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// detail says in a few words what an event records.
func detail(d events.Event) string {
	switch d := d.(type) {
	case events.AccountOpened:
		return fmt.Sprintf("opened in %s, low balance threshold %s", d.Currency, d.LowBalanceThreshold)
	case events.UsageCharged:
		return "usage " + d.UsageID + ": " + usageSummary(d)
	case events.AdjustmentApplied:
		s := fmt.Sprintf("adjustment %s: %s", d.AdjustmentID, d.Reason)
		if d.UsageID != "" {
			s += " (usage " + d.UsageID + ")"
		}
		return s
	case events.AlertSettingsChanged:
		return "low balance threshold set to " + d.LowBalanceThreshold.String()
	case events.AutoTopUpConfigured:
		if !d.Enabled {
			return fmt.Sprintf("auto top-up disabled (threshold %s, amount %s)", d.Threshold, d.Amount)
		}
		return fmt.Sprintf("auto top-up enabled: below %s add %s", d.Threshold, d.Amount)
	default:
		return topUpDetail(d)
	}
}

func topUpDetail(d events.Event) string {
	switch d := d.(type) {
	case events.TopUpRequested:
		return fmt.Sprintf("top-up %s requested (%s) for %s", d.TopUpID, d.Kind, d.Amount)
	case events.TopUpAttemptFailed:
		return fmt.Sprintf("top-up %s attempt %d failed: %s; next attempt at %s", d.TopUpID, d.Attempt, d.Reason, timeText(d.NextAttemptAt))
	case events.TopUpSucceeded:
		return fmt.Sprintf("top-up %s paid on attempt %d (payment %s)", d.TopUpID, d.Attempt, d.PaymentID)
	case events.TopUpFailed:
		s := fmt.Sprintf("top-up %s failed after %d attempts: %s", d.TopUpID, d.Attempts, d.Reason)
		if d.Suspended {
			s += "; auto top-up suspended"
		}
		return s
	case nil:
		return ""
	default:
		return d.EventType() // a type newer than this program: still say which
	}
}

// usageSummary is "call fup_exceeded -> fair_usage_exceeded, user u-7, to +44..., 21 minute".
func usageSummary(d events.UsageCharged) string {
	parts := []string{strings.TrimSpace(d.UsageType+" "+d.Reason) + " -> " + d.Cause}
	if d.UserID != "" {
		parts = append(parts, "user "+d.UserID)
	}
	if d.Destination != "" {
		parts = append(parts, "to "+d.Destination)
	}
	if d.Quantity != "" {
		parts = append(parts, strings.TrimSpace(d.Quantity+" "+d.Unit))
	}
	return strings.Join(parts, ", ")
}
