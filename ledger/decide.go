package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/shopspring/decimal"
	"github.com/telephony/creditledger/events"
)

// Command is a request to change an account. Decide turns it into events.
type Command interface{ commandName() string }

// OpenAccount opens an account with a currency.
type OpenAccount struct {
	Currency            string
	LowBalanceThreshold decimal.Decimal
}

// ChargeUsage charges one validated usage. The caller has already checked the usage index:
// a usage reaching Decide has not been charged before.
type ChargeUsage struct{ Charge events.UsageCharged }

// ApplyAdjustment credits (positive) or debits (negative) the account. When the adjustment
// refers to a usage, UsageAmount is what that usage was charged (nil if it was never charged).
type ApplyAdjustment struct {
	Adjustment  events.AdjustmentApplied
	UsageAmount *decimal.Decimal
}

// ChangeAlertSettings sets the low-balance threshold.
type ChangeAlertSettings struct{ LowBalanceThreshold decimal.Decimal }

// ConfigureAutoTopUp saves the auto top-up settings (and lifts a suspension).
type ConfigureAutoTopUp struct {
	Enabled   bool
	Threshold decimal.Decimal
	Amount    decimal.Decimal
}

// RequestTopUp asks for a one-time top-up.
type RequestTopUp struct {
	TopUpID string
	Amount  decimal.Decimal
}

// StartAutoTopUp starts an auto top-up if AutoTopUpDue says so; otherwise it does nothing.
type StartAutoTopUp struct{ DailyMax int }

// RecordPaymentAttempt records the outcome of payment attempt Attempt of a pending top-up.
type RecordPaymentAttempt struct {
	TopUpID   string
	Attempt   int
	Succeeded bool
	PaymentID string
	// Reason is the gateway's failure reason (for example "card_declined").
	Reason string
	// MaxAttempts is how many attempts a top-up gets before it fails.
	MaxAttempts int
	// RetryDelayBase is the delay before attempt 2; it doubles for each further attempt.
	RetryDelayBase time.Duration
}

func (OpenAccount) commandName() string          { return "open_account" }
func (ChargeUsage) commandName() string          { return "charge_usage" }
func (ApplyAdjustment) commandName() string      { return "apply_adjustment" }
func (ChangeAlertSettings) commandName() string  { return "change_alert_settings" }
func (ConfigureAutoTopUp) commandName() string   { return "configure_auto_top_up" }
func (RequestTopUp) commandName() string         { return "request_top_up" }
func (StartAutoTopUp) commandName() string       { return "start_auto_top_up" }
func (RecordPaymentAttempt) commandName() string { return "record_payment_attempt" }

// Decide returns the events that cmd produces on account a at time now, or an *Error when
// the command breaks a rule. No events and no error means the command was already done
// (an idempotent repeat) or there is nothing to do.
func Decide(a *Account, cmd Command, now time.Time) ([]events.Envelope, error) {
	if _, opening := cmd.(OpenAccount); !opening && !a.Opened {
		return nil, Errorf(ENOTFOUND, "account_not_found", "account %q does not exist", a.ID)
	}
	var data events.Event
	var err error
	occurredAt := now
	switch c := cmd.(type) {
	case OpenAccount:
		data, err = decideOpen(a, c)
	case ChargeUsage:
		data, err = decideCharge(a, c)
		occurredAt = c.Charge.UsedAt
	case ApplyAdjustment:
		data, err = decideAdjustment(a, c)
	case ChangeAlertSettings:
		data, err = decideAlertSettings(a, c)
	case ConfigureAutoTopUp:
		data, err = decideAutoTopUpSettings(c)
	case RequestTopUp:
		data, err = decideTopUp(a, c)
	case StartAutoTopUp:
		data = decideAutoTopUp(a, c, now)
	case RecordPaymentAttempt:
		data = decidePaymentAttempt(a, c, now)
	default:
		return nil, Errorf(EINVALID, "unknown_command", "unknown command %T", cmd)
	}
	if err != nil || data == nil {
		return nil, err
	}
	version := a.Version + 1
	return []events.Envelope{{
		ID: events.NewID(a.ID, version, data), AccountID: a.ID, Version: version,
		OccurredAt: occurredAt.UTC(), RecordedAt: now.UTC(), Data: data,
	}}, nil
}

func decideOpen(a *Account, c OpenAccount) (events.Event, error) {
	if a.Opened {
		if a.Currency != c.Currency {
			return nil, Errorf(ECONFLICT, "currency_mismatch", "account %q exists with currency %s", a.ID, a.Currency)
		}
		return nil, nil
	}
	if c.LowBalanceThreshold.IsNegative() {
		return nil, Errorf(EINVALID, "invalid_amount", "low_balance_threshold must not be negative")
	}
	return events.AccountOpened{Currency: c.Currency, LowBalanceThreshold: c.LowBalanceThreshold}, nil
}

func decideCharge(a *Account, c ChargeUsage) (events.Event, error) {
	if c.Charge.Currency != a.Currency {
		return nil, Errorf(EINVALID, "currency_mismatch", "usage is in %s but account %q is in %s", c.Charge.Currency, a.ID, a.Currency)
	}
	if c.Charge.Amount.IsNegative() {
		return nil, Errorf(EINVALID, "invalid_amount", "usage amount must not be negative")
	}
	// Usage is a fact: it is charged even when the balance goes below zero.
	return c.Charge, nil
}

func decideAdjustment(a *Account, c ApplyAdjustment) (events.Event, error) {
	adj := c.Adjustment
	if prior, ok := a.Adjustments[adj.AdjustmentID]; ok {
		if prior.Amount.Equal(adj.Amount) && prior.UsageID == adj.UsageID && prior.Reason == adj.Reason {
			return nil, nil
		}
		return nil, Errorf(ECONFLICT, "adjustment_conflict", "adjustment %q exists with other content", adj.AdjustmentID)
	}
	if adj.Amount.IsZero() {
		return nil, Errorf(EINVALID, "invalid_amount", "an adjustment of 0 moves nothing")
	}
	if adj.UsageID != "" {
		if c.UsageAmount == nil {
			return nil, Errorf(ENOTFOUND, "usage_not_found", "usage %q was never charged to account %q", adj.UsageID, a.ID)
		}
		refunded := a.Refunded[adj.UsageID].Add(adj.Amount)
		if refunded.GreaterThan(*c.UsageAmount) {
			return nil, Errorf(EUNPROCESSABLE, "refund_exceeds_charge",
				"usage %q was charged %s and %s is already refunded; %s more would exceed it",
				adj.UsageID, c.UsageAmount.String(), a.Refunded[adj.UsageID].String(), adj.Amount.String())
		}
	}
	return adj, nil
}

func decideAlertSettings(a *Account, c ChangeAlertSettings) (events.Event, error) {
	if c.LowBalanceThreshold.IsNegative() {
		return nil, Errorf(EINVALID, "invalid_amount", "low_balance_threshold must not be negative")
	}
	if c.LowBalanceThreshold.Equal(a.LowBalanceThreshold) {
		return nil, nil
	}
	return events.AlertSettingsChanged{LowBalanceThreshold: c.LowBalanceThreshold}, nil
}

func decideAutoTopUpSettings(c ConfigureAutoTopUp) (events.Event, error) {
	if c.Threshold.IsNegative() {
		return nil, Errorf(EINVALID, "invalid_amount", "threshold must not be negative")
	}
	if c.Enabled && !c.Amount.IsPositive() {
		return nil, Errorf(EINVALID, "invalid_amount", "amount must be greater than 0 when auto top-up is enabled")
	}
	// Always an event, even when nothing changed: saving lifts a suspension.
	return events.AutoTopUpConfigured{Enabled: c.Enabled, Threshold: c.Threshold, Amount: c.Amount}, nil
}

func decideTopUp(a *Account, c RequestTopUp) (events.Event, error) {
	if prior, ok := a.TopUps[c.TopUpID]; ok {
		if prior.Amount.Equal(c.Amount) && prior.Kind == events.TopUpOneTime {
			return nil, nil
		}
		return nil, Errorf(ECONFLICT, "top_up_conflict", "top-up %q exists with amount %s", c.TopUpID, prior.Amount.String())
	}
	if !c.Amount.IsPositive() {
		return nil, Errorf(EINVALID, "invalid_amount", "amount must be greater than 0")
	}
	if a.Pending != nil {
		return nil, Errorf(ECONFLICT, "top_up_pending", "top-up %q is still being paid; at most one top-up per account is pending", a.Pending.ID)
	}
	return events.TopUpRequested{TopUpID: c.TopUpID, Kind: events.TopUpOneTime, Amount: c.Amount}, nil
}

func decideAutoTopUp(a *Account, c StartAutoTopUp, now time.Time) events.Event {
	if !AutoTopUpDue(a, now, c.DailyMax) {
		return nil
	}
	id := AutoTopUpID(a.ID, a.Version+1)
	return events.TopUpRequested{TopUpID: id, Kind: events.TopUpAuto, Amount: a.AutoTopUp.Amount}
}

// AutoTopUpID names the auto top-up requested at a stream version. The version makes it
// unique within the account and the same on a retry; the account tag makes it unique
// across accounts too, because the payment gateway receives it as the Idempotency-Key
// and a gateway that keys on the header alone must never match one account's payment to
// another's. It stays within the 64 characters of an id.
func AutoTopUpID(accountID string, version uint64) string {
	sum := sha256.Sum256([]byte(accountID))
	return "auto-" + hex.EncodeToString(sum[:6]) + "-" + strconv.FormatUint(version, 10)
}

func decidePaymentAttempt(a *Account, c RecordPaymentAttempt, now time.Time) events.Event {
	p := a.Pending
	if p == nil || p.ID != c.TopUpID || c.Attempt != p.Attempts+1 {
		return nil // stale: that attempt is already recorded
	}
	if c.Succeeded {
		return events.TopUpSucceeded{TopUpID: p.ID, Amount: p.Amount, Attempt: c.Attempt, PaymentID: c.PaymentID}
	}
	if c.Attempt >= c.MaxAttempts {
		return events.TopUpFailed{TopUpID: p.ID, Attempts: c.Attempt, Reason: c.Reason, Suspended: p.Kind == events.TopUpAuto}
	}
	delay := c.RetryDelayBase << (c.Attempt - 1)
	return events.TopUpAttemptFailed{TopUpID: p.ID, Attempt: c.Attempt, Reason: c.Reason, NextAttemptAt: now.Add(delay).UTC()}
}
