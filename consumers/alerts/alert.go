package alerts

import (
	"strings"
	"time"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// Names of the alerts' NATS objects.
const (
	// StreamName is the JetStream stream that stores every published alert.
	StreamName = "ALERTS"
	// SubjectPrefix starts the subject of an account's alerts; the account id follows.
	SubjectPrefix = "ledger.alerts."
	// StreamSubjects is what ALERTS captures: the alerts of every account.
	StreamSubjects = SubjectPrefix + ">"
)

// Alert is the JSON body published for one alert (API.md section 6).
type Alert struct {
	AccountID string `json:"account_id"`
	// Alert is a level (ok, low, depleted) or auto_top_up_failed / auto_top_up_suspended.
	Alert string `json:"alert"`
	// Previous is the level before a level change; for a failed or suspended auto
	// top-up, which moves no money, it is the account's level at that moment.
	Previous string `json:"previous"`
	// Balance is the balance after the event, a decimal string.
	Balance string `json:"balance"`
	Message string `json:"message"`
	// At is when the event behind the alert was recorded, so that a repeated publish
	// carries the very same body.
	At time.Time `json:"at"`
}

// Subject is the NATS subject of an account's alerts: ledger.alerts.{account_id}. An id
// with a "." gives the subject more tokens (subscribe to ledger.alerts.> to see every
// account); an empty token, from an id that starts or ends with "." or holds "..", is
// written "~", which no id can hold, so the subject stays valid and one-to-one.
func Subject(accountID string) string {
	if accountID != "" && accountID[0] != '.' && accountID[len(accountID)-1] != '.' && !strings.Contains(accountID, "..") {
		return SubjectPrefix + accountID
	}
	tokens := strings.Split(accountID, ".")
	for i, tok := range tokens {
		if tok == "" {
			tokens[i] = "~"
		}
	}
	return SubjectPrefix + strings.Join(tokens, ".")
}

// MsgID is the Nats-Msg-Id of the alert of that kind caused by the event: the same on
// every replay, so the server can drop a repeated publish.
func MsgID(eventID string, alert string) string { return eventID + ":" + alert }

// Derive applies event e to the account state a (the state before e; Derive evolves it)
// and returns the alerts e causes, in the order they are published.
func Derive(a *ledger.Account, e events.Envelope) []Alert {
	wasOpen, before := a.Opened, a.Alert()
	failed, isFailure := e.Data.(events.TopUpFailed)
	autoFailed := isFailure && (failed.Suspended || a.TopUps[failed.TopUpID].Kind == events.TopUpAuto)
	ledger.Evolve(a, e)
	after := a.Alert()
	base := Alert{AccountID: a.ID, Previous: before, Balance: ledger.FormatAmount(a.Balance), At: e.RecordedAt.UTC()}
	var out []Alert
	// A newly opened account has no previous level: no alert (see the package doc).
	if wasOpen && before != after {
		al := base
		al.Alert, al.Message = after, ledger.AlertMessage(after)
		out = append(out, al)
	}
	if autoFailed {
		al := base
		al.Alert, al.Message = ledger.AlertAutoTopUpFailed, "Auto top-up failed: "+failed.Reason
		out = append(out, al)
	}
	if isFailure && failed.Suspended {
		al := base
		al.Alert = ledger.AlertAutoTopUpSuspended
		al.Message = "Auto top-up suspended until the settings are saved again: " + failed.Reason
		out = append(out, al)
	}
	return out
}
