package projections

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// t0 is the clock of the generated streams.
var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// history builds envelopes as a store would hand them out: consecutive versions per account,
// increasing positions, a clock that ticks one second per event.
type history struct {
	pos      uint64
	versions map[string]uint64
	now      time.Time
}

func newHistory() *history { return &history{versions: map[string]uint64{}, now: t0} }

// ev appends one event of account to the history.
func (h *history) ev(account string, d events.Event) events.Envelope {
	h.versions[account]++
	h.pos++
	v := h.versions[account]
	e := events.Envelope{
		ID: events.NewID(account, v, d), AccountID: account, Version: v, Position: h.pos,
		OccurredAt: h.now, RecordedAt: h.now, Data: d,
	}
	if u, ok := d.(events.UsageCharged); ok && !u.UsedAt.IsZero() {
		e.OccurredAt = u.UsedAt
	}
	h.now = h.now.Add(time.Second)
	return e
}

func (h *history) open(account, threshold string) events.Envelope {
	return h.ev(account, events.AccountOpened{Currency: "USD", LowBalanceThreshold: dec(threshold)})
}

func (h *history) usage(account, id, amount string) events.Envelope {
	return h.ev(account, usageOf(id, "sms", "", amount, ""))
}

func (h *history) adjust(account, id, amount string) events.Envelope {
	return h.ev(account, events.AdjustmentApplied{AdjustmentID: id, Amount: dec(amount), Reason: "goodwill"})
}

func (h *history) topUp(account, id, kind, amount string) []events.Envelope {
	return []events.Envelope{
		h.ev(account, events.TopUpRequested{TopUpID: id, Kind: kind, Amount: dec(amount)}),
		h.ev(account, events.TopUpSucceeded{TopUpID: id, Amount: dec(amount), Attempt: 1, PaymentID: "pay-" + id}),
	}
}

// usageOf is a charged usage; the cause is derived as the ledger derives it.
func usageOf(id, typ, reason, amount, user string) events.UsageCharged {
	cause, err := ledger.CauseOf(typ, reason)
	if err != nil {
		panic(err)
	}
	return events.UsageCharged{UsageID: id, UsageType: typ, Reason: reason, Cause: cause,
		Amount: dec(amount), Currency: "USD", UserID: user}
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "readmodels.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustApply(t testing.TB, db *DB, evs ...events.Envelope) {
	t.Helper()
	if err := db.Apply(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func mustAccount(t testing.TB, db *DB, id string) Account {
	t.Helper()
	a, ok, err := db.Account(context.Background(), id)
	if err != nil || !ok {
		t.Fatalf("Account(%s) = %v, %v", id, ok, err)
	}
	return a
}

func allMovements(t testing.TB, db *DB, id string, f MovementFilter) []Movement {
	t.Helper()
	var ms []Movement
	if err := db.EachMovement(context.Background(), id, f, func(m Movement) error {
		ms = append(ms, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ms
}

func flat(groups ...[]events.Envelope) []events.Envelope {
	var all []events.Envelope
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}
