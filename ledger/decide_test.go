package ledger

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// run decides cmd on a and evolves a with the result, as the writer does.
func run(t *testing.T, a *Account, cmd Command, now time.Time) ([]events.Envelope, error) {
	t.Helper()
	evs, err := Decide(a, cmd, now)
	for _, e := range evs {
		Evolve(a, e)
	}
	return evs, err
}

func mustRun(t *testing.T, a *Account, cmd Command, now time.Time) []events.Envelope {
	t.Helper()
	evs, err := run(t, a, cmd, now)
	if err != nil {
		t.Fatalf("%T: %v", cmd, err)
	}
	return evs
}

func openAccount(t *testing.T) *Account {
	a := NewAccount("acme")
	mustRun(t, a, OpenAccount{Currency: "USD", LowBalanceThreshold: dec("10")}, t0)
	return a
}

func charge(id, amount string) ChargeUsage {
	return ChargeUsage{Charge: events.UsageCharged{UsageID: id, UsageType: "sms", Cause: CauseMessaging, UsedAt: t0, Amount: dec(amount), Currency: "USD"}}
}

func TestOpenAccount(t *testing.T) {
	a := NewAccount("acme")
	if _, err := Decide(a, charge("u1", "1"), t0); ErrorReason(err) != "account_not_found" {
		t.Fatalf("charge on unopened account: %v", err)
	}
	evs := mustRun(t, a, OpenAccount{Currency: "USD", LowBalanceThreshold: dec("10")}, t0)
	if len(evs) != 1 || evs[0].Version != 1 || a.Alert() != AlertDepleted {
		t.Fatalf("open: %+v, alert %s", evs, a.Alert())
	}
	if evs := mustRun(t, a, OpenAccount{Currency: "USD"}, t0); len(evs) != 0 {
		t.Fatal("reopening with the same currency appended")
	}
	if _, err := Decide(a, OpenAccount{Currency: "EUR"}, t0); ErrorCode(err) != ECONFLICT {
		t.Fatalf("reopening with another currency: %v", err)
	}
}

func TestChargeGoesBelowZero(t *testing.T) {
	a := openAccount(t)
	mustRun(t, a, charge("u1", "3.5"), t0)
	if !a.Balance.Equal(dec("-3.5")) || a.Version != 2 {
		t.Fatalf("balance %s version %d", a.Balance, a.Version)
	}
	wrong := charge("u2", "1")
	wrong.Charge.Currency = "EUR"
	if _, err := Decide(a, wrong, t0); ErrorReason(err) != "currency_mismatch" {
		t.Fatalf("other currency: %v", err)
	}
}

func TestEventIDsAreDeterministic(t *testing.T) {
	a, b := openAccount(t), openAccount(t)
	ea, _ := Decide(a, charge("u1", "1"), t0)
	eb, _ := Decide(b, charge("u1", "1"), t0.Add(time.Hour))
	if ea[0].ID != eb[0].ID || ea[0].ID != events.UsageEventID("acme", "u1") {
		t.Fatal("the same usage got different event ids")
	}
}

func TestAdjustments(t *testing.T) {
	a := openAccount(t)
	mustRun(t, a, charge("call-1", "0.42"), t0)
	charged := dec("0.42")
	adj := func(id, amount, usage string) ApplyAdjustment {
		c := ApplyAdjustment{Adjustment: events.AdjustmentApplied{AdjustmentID: id, Amount: dec(amount), Reason: "refund", UsageID: usage}}
		if usage != "" {
			c.UsageAmount = &charged
		}
		return c
	}
	tests := []struct {
		name       string
		give       ApplyAdjustment
		wantEvents int
		wantReason string
	}{
		{"partial refund", adj("adj-1", "0.40", "call-1"), 1, ""},
		{"repeat is a no-op", adj("adj-1", "0.40", "call-1"), 0, ""},
		{"same id other amount", adj("adj-1", "0.41", "call-1"), 0, "adjustment_conflict"},
		{"refund beyond the charge", adj("adj-2", "0.03", "call-1"), 0, "refund_exceeds_charge"},
		{"refund up to the charge", adj("adj-3", "0.02", "call-1"), 1, ""},
		{"unknown usage", ApplyAdjustment{Adjustment: events.AdjustmentApplied{AdjustmentID: "adj-4", Amount: dec("1"), UsageID: "nope"}}, 0, "usage_not_found"},
		{"zero", adj("adj-5", "0", ""), 0, "invalid_amount"},
		{"goodwill credit", adj("adj-6", "5", ""), 1, ""},
		{"debit", adj("adj-7", "-1", ""), 1, ""},
	}
	for _, tt := range tests {
		evs, err := run(t, a, tt.give, t0)
		if len(evs) != tt.wantEvents {
			t.Errorf("%s: %d events, want %d", tt.name, len(evs), tt.wantEvents)
		}
		if (tt.wantReason == "") != (err == nil) || (err != nil && ErrorReason(err) != tt.wantReason) {
			t.Errorf("%s: got error %v, want reason %q", tt.name, err, tt.wantReason)
		}
	}
	if want := dec("4"); !a.Balance.Equal(want) { // -0.42 + 0.40 + 0.02 + 5 - 1
		t.Fatalf("balance %s, want %s", a.Balance, want)
	}
}

func TestOneTimeTopUp(t *testing.T) {
	a := openAccount(t)
	if evs := mustRun(t, a, RequestTopUp{TopUpID: "tu-1", Amount: dec("50")}, t0); len(evs) != 1 || a.Pending == nil {
		t.Fatal("top-up not pending")
	}
	if evs := mustRun(t, a, RequestTopUp{TopUpID: "tu-1", Amount: dec("50.00")}, t0); len(evs) != 0 {
		t.Fatal("repeat appended")
	}
	if _, err := Decide(a, RequestTopUp{TopUpID: "tu-1", Amount: dec("60")}, t0); ErrorCode(err) != ECONFLICT {
		t.Fatalf("same id other amount: %v", err)
	}
	if _, err := Decide(a, RequestTopUp{TopUpID: "tu-2", Amount: dec("5")}, t0); ErrorReason(err) != "top_up_pending" {
		t.Fatalf("second pending top-up: %v", err)
	}
	mustRun(t, a, RecordPaymentAttempt{TopUpID: "tu-1", Attempt: 1, Succeeded: true, PaymentID: "p1", MaxAttempts: 3}, t0)
	if a.Pending != nil || !a.Balance.Equal(dec("50")) {
		t.Fatalf("after success: pending %v balance %s", a.Pending, a.Balance)
	}
	if evs := mustRun(t, a, RecordPaymentAttempt{TopUpID: "tu-1", Attempt: 1, Succeeded: true, MaxAttempts: 3}, t0); len(evs) != 0 {
		t.Fatal("a repeated outcome applied the credit twice")
	}
}

func TestPaymentRetriesThenSuspends(t *testing.T) {
	a := openAccount(t)
	mustRun(t, a, ConfigureAutoTopUp{Enabled: true, Threshold: dec("20"), Amount: dec("100")}, t0)
	evs := mustRun(t, a, StartAutoTopUp{DailyMax: 10}, t0)
	if len(evs) != 1 || a.Pending == nil || a.Pending.Kind != events.TopUpAuto {
		t.Fatalf("auto top-up not started: %+v", evs)
	}
	if evs := mustRun(t, a, StartAutoTopUp{DailyMax: 10}, t0); len(evs) != 0 {
		t.Fatal("a second auto top-up started while one is pending")
	}
	id := a.Pending.ID
	fail := func(attempt int, now time.Time) RecordPaymentAttempt {
		return RecordPaymentAttempt{TopUpID: id, Attempt: attempt, Reason: "card_declined", MaxAttempts: 3, RetryDelayBase: time.Minute}
	}
	mustRun(t, a, fail(1, t0), t0)
	if !a.Pending.NextAttemptAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("next attempt at %s", a.Pending.NextAttemptAt)
	}
	mustRun(t, a, fail(2, t0), t0)
	if !a.Pending.NextAttemptAt.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("second retry at %s, want doubled delay", a.Pending.NextAttemptAt)
	}
	mustRun(t, a, fail(3, t0), t0)
	if a.Pending != nil || !a.AutoTopUp.Suspended || a.AutoTopUp.LastFailure != "card_declined" {
		t.Fatalf("after last attempt: %+v", a.AutoTopUp)
	}
	if evs := mustRun(t, a, StartAutoTopUp{DailyMax: 10}, t0); len(evs) != 0 {
		t.Fatal("auto top-up started while suspended")
	}
	mustRun(t, a, ConfigureAutoTopUp{Enabled: true, Threshold: dec("20"), Amount: dec("100")}, t0)
	if a.AutoTopUp.Suspended {
		t.Fatal("saving the settings did not lift the suspension")
	}
}

func TestAutoTopUpDailyCap(t *testing.T) {
	a := openAccount(t)
	mustRun(t, a, ConfigureAutoTopUp{Enabled: true, Threshold: dec("1000"), Amount: dec("1")}, t0)
	now := t0
	for i := 0; i < 3; i++ {
		if evs := mustRun(t, a, StartAutoTopUp{DailyMax: 3}, now); len(evs) != 1 {
			t.Fatalf("auto top-up %d not started", i+1)
		}
		mustRun(t, a, RecordPaymentAttempt{TopUpID: a.Pending.ID, Attempt: 1, Succeeded: true, MaxAttempts: 3}, now)
		now = now.Add(time.Hour)
	}
	if evs := mustRun(t, a, StartAutoTopUp{DailyMax: 3}, now); len(evs) != 0 {
		t.Fatal("the daily cap did not hold")
	}
	if evs := mustRun(t, a, StartAutoTopUp{DailyMax: 3}, t0.Add(24*time.Hour+time.Minute)); len(evs) != 1 {
		t.Fatal("no auto top-up a day later")
	}
}

func TestAlertLevel(t *testing.T) {
	tests := []struct{ balance, threshold, want string }{
		{"0", "10", AlertDepleted}, {"-1", "10", AlertDepleted}, {"0.0001", "10", AlertLow},
		{"9.9999", "10", AlertLow}, {"10", "10", AlertOK}, {"5", "0", AlertOK},
	}
	for _, tt := range tests {
		if got := AlertLevel(dec(tt.balance), dec(tt.threshold)); got != tt.want {
			t.Errorf("AlertLevel(%s, %s) = %s, want %s", tt.balance, tt.threshold, got, tt.want)
		}
	}
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		balance    string
		found      bool
		direction  string
		numberType string
		want       bool
		wantReason string
	}{
		{"5", true, DirectionOutbound, NumberTypeStandard, true, ""},
		{"5", true, DirectionInbound, NumberTypeTollFree, true, ""},
		{"5", true, DirectionInbound, NumberTypeStandard, true, ""},
		{"0", true, DirectionOutbound, NumberTypeStandard, false, "credit_depleted"},
		{"0", true, DirectionInbound, NumberTypeTollFree, false, "credit_depleted"},
		{"0", true, DirectionInbound, NumberTypeStandard, true, ""},
		{"-2", true, DirectionOutbound, NumberTypeTollFree, false, "credit_depleted"},
		{"-2", true, DirectionInbound, NumberTypeStandard, true, ""},
		{"0", false, DirectionInbound, NumberTypeStandard, false, "account_not_found"},
		{"0", false, DirectionOutbound, NumberTypeStandard, false, "account_not_found"},
	}
	for _, tt := range tests {
		r := AuthorizeRequest{AccountID: "acme", Direction: tt.direction, NumberType: tt.numberType}
		got := Authorize(r, tt.found, dec(tt.balance), dec("10"))
		if got.Allowed != tt.want || got.Reason != tt.wantReason {
			t.Errorf("balance %s found %v %s/%s: got %+v", tt.balance, tt.found, tt.direction, tt.numberType, got)
		}
	}
}

func TestAutoTopUpIDsAreUniqueAcrossAccounts(t *testing.T) {
	a, b := AutoTopUpID("acme", 3), AutoTopUpID("globex", 3)
	if a == b || a != AutoTopUpID("acme", 3) || !ValidID(a) || !ValidID(AutoTopUpID(string(make([]byte, 64)), 1<<63)) {
		t.Fatalf("auto top-up ids %q %q", a, b)
	}
}
