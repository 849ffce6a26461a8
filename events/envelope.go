package events

import (
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Envelope is one event as it sits in an account stream.
type Envelope struct {
	// ID is deterministic (see NewID): the same decision always yields the same id, so a
	// retried append is recognised by the store instead of being written twice.
	ID uuid.UUID
	// AccountID names the stream.
	AccountID string
	// Version is the event's 1-based position in its account stream.
	Version uint64
	// Position is the event's place in the whole store (JetStream stream sequence,
	// EventStoreDB commit position). Set by the store on append and on read.
	Position uint64
	// OccurredAt is when the fact happened in the world (the usage time for a usage).
	OccurredAt time.Time
	// RecordedAt is when the ledger decided it.
	RecordedAt time.Time
	// Data is the payload.
	Data Event
}

// Type is the versioned type name of the payload.
func (e Envelope) Type() string { return e.Data.EventType() }

// namespace roots every deterministic id of the ledger (uuid.NewSHA1 over it).
var namespace = uuid.MustParse("5b0c8f5e-3b8e-4d0a-9a55-6c1f7b2de001")

// NewID derives the id of an event from what makes it unique: its business key when it
// has one (usage, top-up, adjustment), otherwise its place in the stream. Retrying the same
// decision therefore always produces the same id.
func NewID(accountID string, version uint64, data Event) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte(naturalKey(accountID, version, data)))
}

// UsageEventID is the id of the event a usage becomes.
func UsageEventID(accountID, usageID string) uuid.UUID {
	return NewID(accountID, 0, UsageCharged{UsageID: usageID})
}

func naturalKey(accountID string, version uint64, data Event) string {
	const sep = "\x00"
	switch d := data.(type) {
	case AccountOpened:
		return "account" + sep + accountID
	case UsageCharged:
		return "usage" + sep + accountID + sep + d.UsageID
	case AdjustmentApplied:
		return "adjustment" + sep + accountID + sep + d.AdjustmentID
	case TopUpRequested:
		return "top_up" + sep + accountID + sep + d.TopUpID
	case TopUpAttemptFailed:
		return "top_up_attempt" + sep + accountID + sep + d.TopUpID + sep + strconv.Itoa(d.Attempt)
	case TopUpSucceeded:
		return "top_up_outcome" + sep + accountID + sep + d.TopUpID
	case TopUpFailed:
		return "top_up_outcome" + sep + accountID + sep + d.TopUpID
	default:
		// Settings changes have no business key: the stream position is the key, which is
		// unique because an append at a taken position is refused.
		return data.EventType() + sep + accountID + sep + strconv.FormatUint(version, 10)
	}
}

// StreamName is the EventStoreDB stream of an account.
func StreamName(accountID string) string { return "account-" + accountID }
