package ledger

import (
	"time"

	"github.com/shopspring/decimal"
	"github.com/telephony/creditledger/events"
)

// DefaultLowBalanceThreshold is the "low" threshold of an account that did not set one.
var DefaultLowBalanceThreshold = decimal.NewFromInt(10)

// recentAutoTopUpsMax bounds the remembered auto top-up start times (for the daily cap).
const recentAutoTopUpsMax = 64

// Account is the write-side state of one account, rebuilt by Evolve from its stream. It
// holds only what decisions need; usage ids live in the durable usage index.
type Account struct {
	ID                  string
	Opened              bool
	Currency            string
	Balance             decimal.Decimal
	LowBalanceThreshold decimal.Decimal
	// Version is the number of events applied: the expected version of the next append.
	Version   uint64
	UpdatedAt time.Time

	AutoTopUp AutoTopUp
	// Pending is the top-up being paid, nil when none is.
	Pending *PendingTopUp
	// TopUps remembers every top-up id with its amount, so repeats are recognised.
	TopUps map[string]TopUpRecord
	// Adjustments remembers every adjustment id with a fingerprint of its content.
	Adjustments map[string]events.AdjustmentApplied
	// Refunded is the total credited back per usage id through adjustments.
	Refunded map[string]decimal.Decimal
	// recentAutoTopUps are the request times of auto top-ups in the last 24 h.
	recentAutoTopUps []time.Time
}

// AutoTopUp is the saved auto top-up configuration and its health.
type AutoTopUp struct {
	Enabled     bool
	Threshold   decimal.Decimal
	Amount      decimal.Decimal
	Suspended   bool
	LastFailure string
}

// PendingTopUp is a top-up that has been requested and not yet succeeded or failed.
type PendingTopUp struct {
	ID            string
	Kind          string
	Amount        decimal.Decimal
	Attempts      int
	LastFailure   string
	RequestedAt   time.Time
	NextAttemptAt time.Time
}

// TopUpRecord is what the account remembers of any top-up.
type TopUpRecord struct {
	Amount decimal.Decimal
	Kind   string
}

// NewAccount is the state of an account with an empty stream.
func NewAccount(id string) *Account { return &Account{ID: id} }

// Clone returns a deep copy, so a decision can be tried on a copy.
func (a *Account) Clone() *Account {
	c := *a
	if a.Pending != nil {
		p := *a.Pending
		c.Pending = &p
	}
	c.TopUps = cloneMap(a.TopUps)
	c.Adjustments = cloneMap(a.Adjustments)
	c.Refunded = cloneMap(a.Refunded)
	c.recentAutoTopUps = append([]time.Time(nil), a.recentAutoTopUps...)
	return &c
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return nil
	}
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Alert is the account's alert level.
func (a *Account) Alert() string { return AlertLevel(a.Balance, a.LowBalanceThreshold) }

// Evolve applies one event of the account's stream to the state. Events are facts: Evolve
// never fails; it only records.
func Evolve(a *Account, e events.Envelope) {
	a.Version = e.Version
	a.UpdatedAt = e.RecordedAt
	switch d := e.Data.(type) {
	case events.AccountOpened:
		a.Opened = true
		a.Currency = d.Currency
		a.LowBalanceThreshold = d.LowBalanceThreshold
	case events.UsageCharged:
		a.Balance = a.Balance.Sub(d.Amount)
	case events.AdjustmentApplied:
		a.Balance = a.Balance.Add(d.Amount)
		a.Adjustments = put(a.Adjustments, d.AdjustmentID, d)
		if d.UsageID != "" {
			a.Refunded = put(a.Refunded, d.UsageID, a.Refunded[d.UsageID].Add(d.Amount))
		}
	case events.AlertSettingsChanged:
		a.LowBalanceThreshold = d.LowBalanceThreshold
	case events.AutoTopUpConfigured:
		a.AutoTopUp = AutoTopUp{Enabled: d.Enabled, Threshold: d.Threshold, Amount: d.Amount}
	case events.TopUpRequested:
		a.TopUps = put(a.TopUps, d.TopUpID, TopUpRecord{Amount: d.Amount, Kind: d.Kind})
		a.Pending = &PendingTopUp{ID: d.TopUpID, Kind: d.Kind, Amount: d.Amount, RequestedAt: e.RecordedAt, NextAttemptAt: e.RecordedAt}
		if d.Kind == events.TopUpAuto {
			a.noteAutoTopUp(e.RecordedAt)
		}
	case events.TopUpAttemptFailed:
		if a.Pending != nil && a.Pending.ID == d.TopUpID {
			a.Pending.Attempts = d.Attempt
			a.Pending.LastFailure = d.Reason
			a.Pending.NextAttemptAt = d.NextAttemptAt
		}
	case events.TopUpSucceeded:
		a.Balance = a.Balance.Add(d.Amount)
		if a.Pending != nil && a.Pending.ID == d.TopUpID {
			a.Pending = nil
		}
	case events.TopUpFailed:
		if a.Pending != nil && a.Pending.ID == d.TopUpID {
			a.Pending = nil
		}
		if d.Suspended {
			a.AutoTopUp.Suspended = true
			a.AutoTopUp.LastFailure = d.Reason
		}
	}
}

func put[K comparable, V any](m map[K]V, k K, v V) map[K]V {
	if m == nil {
		m = make(map[K]V)
	}
	m[k] = v
	return m
}

// noteAutoTopUp remembers an auto top-up start, forgetting those older than 24 h.
func (a *Account) noteAutoTopUp(at time.Time) {
	kept := a.recentAutoTopUps[:0]
	for _, t := range a.recentAutoTopUps {
		if at.Sub(t) < 24*time.Hour {
			kept = append(kept, t)
		}
	}
	a.recentAutoTopUps = append(kept, at)
	if len(a.recentAutoTopUps) > recentAutoTopUpsMax {
		a.recentAutoTopUps = a.recentAutoTopUps[len(a.recentAutoTopUps)-recentAutoTopUpsMax:]
	}
}

// AutoTopUpsSince counts the auto top-ups started after since.
func (a *Account) AutoTopUpsSince(since time.Time) int {
	n := 0
	for _, t := range a.recentAutoTopUps {
		if t.After(since) {
			n++
		}
	}
	return n
}
