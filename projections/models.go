package projections

import (
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// Auto top-up states shown on an account (API.md section 2).
const (
	AutoTopUpIdle      = "idle"
	AutoTopUpPending   = "pending"
	AutoTopUpSuspended = "suspended"
)

// Movement types (API.md section 7).
const (
	MovementUsage      = "usage"
	MovementTopUp      = "top_up"
	MovementAdjustment = "adjustment"
)

// Causes of the movements that are not usage; usage movements carry the ledger's causes
// (ledger.Causes).
const (
	CauseTopUp      = "top_up"
	CauseAutoTopUp  = "auto_top_up"
	CauseAdjustment = "adjustment"
)

// Top-up states (API.md section 5).
const (
	TopUpPending   = "pending"
	TopUpSucceeded = "succeeded"
	TopUpFailed    = "failed"
)

// Account is the read model of one account (API.md section 2). The JSON tags are the
// contract's field names; decimals marshal as JSON strings.
type Account struct {
	AccountID string          `json:"account_id"`
	Currency  string          `json:"currency"`
	Balance   decimal.Decimal `json:"balance"`
	// Alert is ledger.AlertLevel of Balance and LowBalanceThreshold.
	Alert string `json:"alert"`
	// AlertSince is the RecordedAt of the event that moved the account into its current
	// level (the opening event for an account that never changed level).
	AlertSince          time.Time       `json:"alert_since"`
	LowBalanceThreshold decimal.Decimal `json:"low_balance_threshold"`
	AutoTopUp           AutoTopUp       `json:"auto_top_up"`
	// Version is the number of events in the account's stream.
	Version   uint64    `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AutoTopUp is an account's auto top-up settings and health.
type AutoTopUp struct {
	Enabled   bool            `json:"enabled"`
	Threshold decimal.Decimal `json:"threshold"`
	Amount    decimal.Decimal `json:"amount"`
	// State is AutoTopUpIdle, AutoTopUpPending or AutoTopUpSuspended. It is pending while an
	// auto top-up is being paid, or any top-up while auto top-up is enabled (auto top-up
	// then waits for it); an account that never enabled it shows idle during a one-time
	// top-up, as API.md section 2 asks.
	State string `json:"state"`
	// LastFailure is the reason of the failure that suspended auto top-up; saving the
	// settings clears it.
	LastFailure string `json:"last_failure"`
}

// Movement is one credit movement (API.md section 7): a usage, a succeeded top-up or an
// adjustment.
type Movement struct {
	// AccountID is not part of the JSON row: the URL names the account.
	AccountID string    `json:"-"`
	Version   uint64    `json:"version"`
	EventID   uuid.UUID `json:"event_id"`
	// OccurredAt is when it happened: the usage's own time for a usage.
	OccurredAt time.Time `json:"occurred_at"`
	RecordedAt time.Time `json:"recorded_at"`
	Type       string    `json:"type"`
	Cause      string    `json:"cause"`
	UserID     string    `json:"user_id"`
	// Reference is the usage_id, top_up_id or adjustment_id.
	Reference   string `json:"reference"`
	Description string `json:"description"`
	// Amount is signed: negative for charges, positive for credits.
	Amount decimal.Decimal `json:"amount"`
	// BalanceAfter is the account balance right after this movement.
	BalanceAfter decimal.Decimal `json:"balance_after"`
	Currency     string          `json:"currency"`
}

// TopUp is the read model of one top-up (API.md section 5).
type TopUp struct {
	AccountID string          `json:"-"`
	TopUpID   string          `json:"top_up_id"`
	Kind      string          `json:"kind"`
	Amount    decimal.Decimal `json:"amount"`
	State     string          `json:"state"`
	// Attempts is the number of payment attempts made so far.
	Attempts int `json:"attempts"`
	// FailureReason is the reason of the last failed attempt ("" if none failed).
	FailureReason string    `json:"failure_reason"`
	RequestedAt   time.Time `json:"requested_at"`
	// CompletedAt is when the top-up succeeded or failed; nil while pending.
	CompletedAt *time.Time `json:"completed_at"`
	// Version is the account stream version of the TopUpRequested event.
	Version uint64 `json:"-"`
}

// Summary is the usage summary of an account over a time range (API.md section 7).
type Summary struct {
	// TotalCharged is the sum of the usage charges, as a positive number.
	TotalCharged decimal.Decimal `json:"total_charged"`
	// ByCause has every cause of ledger.Causes, zero ones included.
	ByCause map[string]decimal.Decimal `json:"by_cause"`
	// ByUser is sorted by amount, largest first, ties by user id. Usage without a user id
	// is grouped under "".
	ByUser []UserUsage `json:"by_user"`
}

// UserUsage is what one user was charged in a summary.
type UserUsage struct {
	UserID string          `json:"user_id"`
	Amount decimal.Decimal `json:"amount"`
	Count  int64           `json:"count"`
}
