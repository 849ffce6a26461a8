package events

import (
	"time"

	"github.com/shopspring/decimal"
)

// Versioned type names of the events in an account stream. A name never changes meaning:
// a new shape gets a new version suffix and an upcaster from the old one (see codec.go).
const (
	TypeAccountOpened        = "account_opened.v1"
	TypeUsageCharged         = "usage_charged.v1"
	TypeAdjustmentApplied    = "adjustment_applied.v1"
	TypeAlertSettingsChanged = "alert_settings_changed.v1"
	TypeAutoTopUpConfigured  = "auto_top_up_configured.v1"
	TypeTopUpRequested       = "top_up_requested.v1"
	TypeTopUpAttemptFailed   = "top_up_attempt_failed.v1"
	TypeTopUpSucceeded       = "top_up_succeeded.v1"
	TypeTopUpFailed          = "top_up_failed.v1"
)

// Event is the payload of one ledger event. Each implementation is a plain value type.
type Event interface {
	// EventType is the versioned type name written with the event.
	EventType() string
}

// AccountOpened starts an account stream; it is always version 1.
type AccountOpened struct {
	Currency            string          `json:"currency"`
	LowBalanceThreshold decimal.Decimal `json:"low_balance_threshold"`
}

// UsageCharged deducts the credit for one usage reported by the telephony platform.
type UsageCharged struct {
	UsageID     string          `json:"usage_id"`
	UsageType   string          `json:"usage_type"`
	Reason      string          `json:"reason,omitempty"`
	Cause       string          `json:"cause"`
	UsedAt      time.Time       `json:"used_at"`
	Amount      decimal.Decimal `json:"amount"`
	Currency    string          `json:"currency"`
	UserID      string          `json:"user_id,omitempty"`
	Quantity    string          `json:"quantity,omitempty"`
	Unit        string          `json:"unit,omitempty"`
	Destination string          `json:"destination,omitempty"`
	// ContentHash identifies the usage's content so a redelivery with the same id but
	// other content can be told apart from a plain duplicate.
	ContentHash string `json:"content_hash"`
}

// AdjustmentApplied is a compensating credit (positive) or debit (negative).
type AdjustmentApplied struct {
	AdjustmentID string          `json:"adjustment_id"`
	Amount       decimal.Decimal `json:"amount"`
	Reason       string          `json:"reason"`
	UsageID      string          `json:"usage_id,omitempty"`
}

// AlertSettingsChanged sets the balance under which the account is "low".
type AlertSettingsChanged struct {
	LowBalanceThreshold decimal.Decimal `json:"low_balance_threshold"`
}

// AutoTopUpConfigured saves the auto top-up settings; saving also lifts a suspension.
type AutoTopUpConfigured struct {
	Enabled   bool            `json:"enabled"`
	Threshold decimal.Decimal `json:"threshold"`
	Amount    decimal.Decimal `json:"amount"`
}

// Top-up kinds.
const (
	TopUpOneTime = "one_time"
	TopUpAuto    = "auto"
)

// TopUpRequested opens a top-up; at most one is pending per account.
type TopUpRequested struct {
	TopUpID string          `json:"top_up_id"`
	Kind    string          `json:"kind"`
	Amount  decimal.Decimal `json:"amount"`
}

// TopUpAttemptFailed records one payment attempt that did not succeed and when the next
// one is due. It moves no money.
type TopUpAttemptFailed struct {
	TopUpID       string    `json:"top_up_id"`
	Attempt       int       `json:"attempt"`
	Reason        string    `json:"reason"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
}

// TopUpSucceeded applies the paid credit.
type TopUpSucceeded struct {
	TopUpID   string          `json:"top_up_id"`
	Amount    decimal.Decimal `json:"amount"`
	Attempt   int             `json:"attempt"`
	PaymentID string          `json:"payment_id"`
}

// TopUpFailed gives a top-up up after its last attempt. For an auto top-up it also
// suspends auto top-up until the settings are saved again.
type TopUpFailed struct {
	TopUpID   string `json:"top_up_id"`
	Attempts  int    `json:"attempts"`
	Reason    string `json:"reason"`
	Suspended bool   `json:"auto_top_up_suspended"`
}

// EventType implements Event.
func (AccountOpened) EventType() string { return TypeAccountOpened }

// EventType implements Event.
func (UsageCharged) EventType() string { return TypeUsageCharged }

// EventType implements Event.
func (AdjustmentApplied) EventType() string { return TypeAdjustmentApplied }

// EventType implements Event.
func (AlertSettingsChanged) EventType() string { return TypeAlertSettingsChanged }

// EventType implements Event.
func (AutoTopUpConfigured) EventType() string { return TypeAutoTopUpConfigured }

// EventType implements Event.
func (TopUpRequested) EventType() string { return TypeTopUpRequested }

// EventType implements Event.
func (TopUpAttemptFailed) EventType() string { return TypeTopUpAttemptFailed }

// EventType implements Event.
func (TopUpSucceeded) EventType() string { return TypeTopUpSucceeded }

// EventType implements Event.
func (TopUpFailed) EventType() string { return TypeTopUpFailed }
