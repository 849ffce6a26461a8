package ledger

import (
	"time"

	"github.com/shopspring/decimal"
)

// Alert levels and the notifications that are not levels.
const (
	AlertOK                  = "ok"
	AlertLow                 = "low"
	AlertDepleted            = "depleted"
	AlertAutoTopUpFailed     = "auto_top_up_failed"
	AlertAutoTopUpSuspended  = "auto_top_up_suspended"
	MessageLow               = "Your credit is running low"
	MessageDepleted          = "Your credit has run out"
	MessageOK                = "Your credit is back above the threshold"
	reasonCreditDepleted     = "credit_depleted"
	reasonAccountNotFound    = "account_not_found"
	reasonInvalidAuthRequest = "invalid_request"
)

// AlertLevel is depleted when balance <= 0, low when balance < threshold, else ok.
func AlertLevel(balance, lowThreshold decimal.Decimal) string {
	switch {
	case balance.Sign() <= 0:
		return AlertDepleted
	case balance.LessThan(lowThreshold):
		return AlertLow
	}
	return AlertOK
}

// AlertMessage is the sentence the admins see for a level.
func AlertMessage(level string) string {
	switch level {
	case AlertLow:
		return MessageLow
	case AlertDepleted:
		return MessageDepleted
	case AlertOK:
		return MessageOK
	}
	return ""
}

// Call directions and number types of an authorization request.
const (
	DirectionOutbound  = "outbound"
	DirectionInbound   = "inbound"
	NumberTypeStandard = "standard"
	NumberTypeTollFree = "toll_free"
)

// AuthorizeRequest asks whether a call may connect.
type AuthorizeRequest struct {
	AccountID  string `json:"account_id"`
	Direction  string `json:"direction"`
	NumberType string `json:"number_type"`
}

// Validate checks the request's fields.
func (r AuthorizeRequest) Validate() error {
	if err := CheckID("account_id", r.AccountID); err != nil {
		return err
	}
	if r.Direction != DirectionOutbound && r.Direction != DirectionInbound {
		return Errorf(EINVALID, "invalid_direction", "direction must be outbound or inbound, got %q", truncate(r.Direction, 20))
	}
	if r.NumberType != NumberTypeStandard && r.NumberType != NumberTypeTollFree {
		return Errorf(EINVALID, "invalid_number_type", "number_type must be standard or toll_free, got %q", truncate(r.NumberType, 20))
	}
	return nil
}

// AuthorizeDecision is the answer to an AuthorizeRequest.
type AuthorizeDecision struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
	Balance string `json:"balance,omitempty"`
	Alert   string `json:"alert,omitempty"`
}

// Authorize applies the table of API.md section 4. found is false for an unknown account.
// Only inbound calls to a standard number connect when the credit is used up.
func Authorize(r AuthorizeRequest, found bool, balance, lowThreshold decimal.Decimal) AuthorizeDecision {
	if !found {
		return AuthorizeDecision{Allowed: false, Reason: reasonAccountNotFound}
	}
	d := AuthorizeDecision{Allowed: true, Balance: balance.String(), Alert: AlertLevel(balance, lowThreshold)}
	if balance.Sign() <= 0 && !(r.Direction == DirectionInbound && r.NumberType == NumberTypeStandard) {
		d.Allowed, d.Reason = false, reasonCreditDepleted
	}
	return d
}

// AutoTopUpDue reports whether an auto top-up should start now: auto top-up is enabled
// and not suspended, the balance is below its threshold, no top-up is pending, and fewer
// than dailyMax auto top-ups started in the last 24 h.
func AutoTopUpDue(a *Account, now time.Time, dailyMax int) bool {
	t := a.AutoTopUp
	return a.Opened && t.Enabled && !t.Suspended && a.Pending == nil &&
		a.Balance.LessThan(t.Threshold) && a.AutoTopUpsSince(now.Add(-24*time.Hour)) < dailyMax
}
