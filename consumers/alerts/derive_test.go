package alerts

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

func TestDerive(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	d := decimal.RequireFromString
	alert := func(kind, previous, balance, message string) Alert {
		return Alert{AccountID: "acme", Alert: kind, Previous: previous, Balance: balance, Message: message, At: at}
	}
	tests := []struct {
		name string
		give events.Event
		want []Alert
	}{
		{name: "opening: the initial level is no change", give: events.AccountOpened{Currency: "USD", LowBalanceThreshold: d("10")}},
		{name: "credit above the threshold", give: events.AdjustmentApplied{AdjustmentID: "a1", Amount: d("50")},
			want: []Alert{alert("ok", "depleted", "50", ledger.MessageOK)}},
		{name: "usage staying ok", give: events.UsageCharged{UsageID: "u1", Amount: d("30")}},
		{name: "usage below the threshold", give: events.UsageCharged{UsageID: "u2", Amount: d("15")},
			want: []Alert{alert("low", "ok", "5", ledger.MessageLow)}},
		{name: "threshold lowered: ok again", give: events.AlertSettingsChanged{LowBalanceThreshold: d("5")},
			want: []Alert{alert("ok", "low", "5", ledger.MessageOK)}},
		{name: "usage to exactly zero", give: events.UsageCharged{UsageID: "u3", Amount: d("5")},
			want: []Alert{alert("depleted", "ok", "0", ledger.MessageDepleted)}},
		{name: "deeper below zero: same level", give: events.UsageCharged{UsageID: "u4", Amount: d("0.42")}},
		{name: "auto top-up configured", give: events.AutoTopUpConfigured{Enabled: true, Threshold: d("20"), Amount: d("100")}},
		{name: "auto top-up requested", give: events.TopUpRequested{TopUpID: "auto-9", Kind: events.TopUpAuto, Amount: d("100")}},
		{name: "an attempt failed, retry due", give: events.TopUpAttemptFailed{TopUpID: "auto-9", Attempt: 1, Reason: "card_declined"}},
		{name: "auto top-up failed and suspended", give: events.TopUpFailed{TopUpID: "auto-9", Attempts: 3, Reason: "card_declined", Suspended: true},
			want: []Alert{
				alert(ledger.AlertAutoTopUpFailed, "depleted", "-0.42", "Auto top-up failed: card_declined"),
				alert(ledger.AlertAutoTopUpSuspended, "depleted", "-0.42", "Auto top-up suspended until the settings are saved again: card_declined"),
			}},
		{name: "one-time top-up requested", give: events.TopUpRequested{TopUpID: "tu-1", Kind: events.TopUpOneTime, Amount: d("5")}},
		{name: "one-time top-up failed: no alert", give: events.TopUpFailed{TopUpID: "tu-1", Attempts: 3, Reason: "card_declined"}},
		{name: "top-up succeeded back to ok", give: events.TopUpSucceeded{TopUpID: "tu-2", Amount: d("10.42"), Attempt: 1},
			want: []Alert{alert("ok", "depleted", "10", ledger.MessageOK)}},
	}
	acc := ledger.NewAccount("acme")
	for i, tt := range tests {
		// The steps build on each other: one account, one stream.
		e := events.Envelope{AccountID: "acme", Version: uint64(i + 1), RecordedAt: at, Data: tt.give}
		got := Derive(acc, e)
		if len(got) != len(tt.want) {
			t.Fatalf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
		for j := range got {
			if got[j] != tt.want[j] {
				t.Errorf("%s: alert %d = %+v, want %+v", tt.name, j, got[j], tt.want[j])
			}
		}
	}
}

func TestSubject(t *testing.T) {
	tests := []struct{ give, want string }{
		{"acme", "ledger.alerts.acme"},
		{"a:b-c_d", "ledger.alerts.a:b-c_d"},
		{"eu.acme", "ledger.alerts.eu.acme"},
		{".acme", "ledger.alerts.~.acme"},
		{"a..b.", "ledger.alerts.a.~.b.~"},
	}
	for _, tt := range tests {
		if got := Subject(tt.give); got != tt.want {
			t.Errorf("Subject(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
