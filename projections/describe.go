package projections

import (
	"strings"

	"github.com/shopspring/decimal"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// usageMovement is the movement of a charged usage: a negative amount, the usage's cause.
func usageMovement(e events.Envelope, d events.UsageCharged, balanceAfter decimal.Decimal, currency string) Movement {
	occurred := e.OccurredAt
	if occurred.IsZero() {
		occurred = d.UsedAt // the envelope carries the usage time; older events may only have it here
	}
	return Movement{
		AccountID: e.AccountID, Version: e.Version, EventID: e.ID,
		OccurredAt: occurred.UTC(), RecordedAt: e.RecordedAt.UTC(),
		Type: MovementUsage, Cause: d.Cause, UserID: d.UserID, Reference: d.UsageID,
		Description: describeUsage(d), Amount: d.Amount.Neg(), BalanceAfter: balanceAfter, Currency: currency,
	}
}

// topUpMovement is the credit of a succeeded top-up; kind comes from its TopUpRequested event.
func topUpMovement(e events.Envelope, d events.TopUpSucceeded, kind string, balanceAfter decimal.Decimal, currency string) Movement {
	cause, desc := CauseTopUp, "Top-up"
	if kind == events.TopUpAuto {
		cause, desc = CauseAutoTopUp, "Auto top-up"
	}
	return Movement{
		AccountID: e.AccountID, Version: e.Version, EventID: e.ID,
		OccurredAt: e.OccurredAt.UTC(), RecordedAt: e.RecordedAt.UTC(),
		Type: MovementTopUp, Cause: cause, Reference: d.TopUpID,
		Description: desc, Amount: d.Amount, BalanceAfter: balanceAfter, Currency: currency,
	}
}

// adjustmentMovement is a compensating credit or debit, signed as given.
func adjustmentMovement(e events.Envelope, d events.AdjustmentApplied, balanceAfter decimal.Decimal, currency string) Movement {
	return Movement{
		AccountID: e.AccountID, Version: e.Version, EventID: e.ID,
		OccurredAt: e.OccurredAt.UTC(), RecordedAt: e.RecordedAt.UTC(),
		Type: MovementAdjustment, Cause: CauseAdjustment, Reference: d.AdjustmentID,
		Description: describeAdjustment(d), Amount: d.Amount, BalanceAfter: balanceAfter, Currency: currency,
	}
}

// usageNouns names each usage type the way a statement line starts.
var usageNouns = map[string]string{
	ledger.UsageCall:                     "Call",
	ledger.UsageForwardedCall:            "Forwarded call",
	ledger.UsageSMS:                      "SMS",
	ledger.UsageWhatsApp:                 "WhatsApp message",
	ledger.UsageConversationIntelligence: "Conversation intelligence",
	ledger.UsageVoiceAgent:               "Voice agent",
}

// callReasons says why a call cost extra; the cause alone ("outside_package") hides which of
// three reasons it was.
var callReasons = map[string]string{
	"fup_exceeded":            "fair usage exceeded",
	"international":           "international",
	"premium":                 "premium number",
	"unsupported_destination": "destination outside package",
}

// causePhrases name the causes of the other usage types.
var causePhrases = map[string]string{
	ledger.CauseFairUsageExceeded: "fair usage exceeded",
	ledger.CauseOutsidePackage:    "outside package",
	ledger.CauseForwarding:        "call forwarding",
	ledger.CauseMessaging:         "messaging",
	ledger.CauseAdvancedFeatures:  "advanced features",
}

// describeUsage writes the sentence of a usage line, for example
// "Call to +447911123456, 21 minute, fair usage exceeded, by u-7".
func describeUsage(d events.UsageCharged) string {
	var sb strings.Builder
	noun, ok := usageNouns[d.UsageType]
	if !ok {
		noun = "Usage " + d.UsageType // a type added after this code; still say what it is
	}
	sb.WriteString(noun)
	if d.Destination != "" {
		sb.WriteString(" to ")
		sb.WriteString(d.Destination)
	}
	if d.Quantity != "" {
		sb.WriteString(", ")
		sb.WriteString(d.Quantity)
		if d.Unit != "" {
			sb.WriteString(" ")
			sb.WriteString(d.Unit)
		}
	}
	why, ok := callReasons[d.Reason]
	if d.UsageType != ledger.UsageCall || !ok {
		why = causePhrases[d.Cause]
	}
	if why != "" {
		sb.WriteString(", ")
		sb.WriteString(why)
	}
	if d.UserID != "" {
		sb.WriteString(", by ")
		sb.WriteString(d.UserID)
	}
	return sb.String()
}

// describeAdjustment writes "Adjustment: refund of disputed call (usage call-8f2c)".
func describeAdjustment(d events.AdjustmentApplied) string {
	s := "Adjustment"
	if d.Reason != "" {
		s += ": " + d.Reason
	}
	if d.UsageID != "" {
		s += " (usage " + d.UsageID + ")"
	}
	return s
}
