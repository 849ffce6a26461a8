package eventstore

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/telephony/creditledger/events"
)

// streamPrefix starts the name of every account stream (events.StreamName). Reads of $all
// keep only events of streams with this prefix; subscriptions filter on it server-side.
const streamPrefix = "account-"

// metadata is the EventStoreDB metadata of a ledger event.
//
// Why payload in Data and the envelope fields in Metadata, rather than the whole envelope
// (events.Marshal) as Data: EventStoreDB already keeps the id and the type name as
// first-class fields, and duplicating them in the body would give two sources that could
// disagree. Data stays the plain business fact, which is what the EventStoreDB UI, a
// server-side projection or a `$by_event_type` reader sees. The version is kept in
// Metadata although the revision already says it, so that a reader can check the two
// agree (an event moved or written by someone else is detected, not silently renumbered).
type metadata struct {
	AccountID  string    `json:"account_id"`
	Version    uint64    `json:"version"`
	OccurredAt time.Time `json:"occurred_at"`
	RecordedAt time.Time `json:"recorded_at"`
}

// encodeMetadata returns the Metadata bytes of an envelope. Times are written in UTC, like
// events.Marshal does, so both adapters give back identical envelopes.
func encodeMetadata(ev events.Envelope) ([]byte, error) {
	return json.Marshal(metadata{
		AccountID:  ev.AccountID,
		Version:    ev.Version,
		OccurredAt: ev.OccurredAt.UTC(),
		RecordedAt: ev.RecordedAt.UTC(),
	})
}

// decodeMetadata reads what encodeMetadata wrote.
func decodeMetadata(b []byte) (metadata, error) {
	var m metadata
	if len(b) == 0 {
		return m, fmt.Errorf("decode metadata: empty")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode metadata: %w", err)
	}
	return m, nil
}

// toEventData turns an envelope into the event EventStoreDB stores.
func toEventData(ev events.Envelope) (esdb.EventData, error) {
	if ev.Data == nil {
		return esdb.EventData{}, fmt.Errorf("event %s: no payload", ev.ID)
	}
	data, err := events.MarshalData(ev.Data)
	if err != nil {
		return esdb.EventData{}, err
	}
	meta, err := encodeMetadata(ev)
	if err != nil {
		return esdb.EventData{}, fmt.Errorf("encode metadata of %s: %w", ev.ID, err)
	}
	return esdb.EventData{
		EventID:     ev.ID, // deterministic: this is what makes a retried append idempotent
		EventType:   ev.Type(),
		ContentType: esdb.ContentTypeJson,
		Data:        data,
		Metadata:    meta,
	}, nil
}

// fromRecorded turns an event read from an account stream back into an envelope. It
// refuses an event whose metadata disagrees with where the event actually sits.
func fromRecorded(rec *esdb.RecordedEvent) (events.Envelope, error) {
	if rec == nil {
		return events.Envelope{}, fmt.Errorf("decode event: nothing recorded")
	}
	accountID, ok := strings.CutPrefix(rec.StreamID, streamPrefix)
	if !ok || accountID == "" {
		return events.Envelope{}, fmt.Errorf("decode event %s: stream %q is not an account stream", rec.EventID, rec.StreamID)
	}
	meta, err := decodeMetadata(rec.UserMetadata)
	if err != nil {
		return events.Envelope{}, fmt.Errorf("event %s of %s: %w", rec.EventID, rec.StreamID, err)
	}
	version := versionOf(rec.EventNumber)
	if meta.AccountID != accountID || meta.Version != version {
		return events.Envelope{}, fmt.Errorf("event %s sits at %s revision %d but says account %q version %d",
			rec.EventID, rec.StreamID, rec.EventNumber, meta.AccountID, meta.Version)
	}
	data, err := events.UnmarshalData(rec.EventType, rec.Data)
	if err != nil {
		return events.Envelope{}, fmt.Errorf("event %s of %s: %w", rec.EventID, rec.StreamID, err)
	}
	pos, _ := positionOf(rec.Position)
	return events.Envelope{
		ID:         rec.EventID,
		AccountID:  accountID,
		Version:    version,
		Position:   pos,
		OccurredAt: meta.OccurredAt,
		RecordedAt: meta.RecordedAt,
		Data:       data,
	}, nil
}

// isAccountEvent tells whether an event read from $all is a ledger event: one of an
// account stream, and not a system event (type "$..." such as a "$streamDeleted"
// tombstone or a "$>" link) that EventStoreDB may put there.
func isAccountEvent(rec *esdb.RecordedEvent) bool {
	return rec != nil && strings.HasPrefix(rec.StreamID, streamPrefix) && !strings.HasPrefix(rec.EventType, "$")
}

// expectedRevision is the ExpectedRevision of appending an event at ledger version v:
// "no stream yet" for the first event, otherwise the revision of the event before it.
// Ledger versions are 1-based (version v is the v-th event); EventStoreDB revisions are
// 0-based (the v-th event has revision v-1), so the event before version v has revision v-2.
func expectedRevision(version uint64) (esdb.ExpectedRevision, error) {
	switch version {
	case 0:
		return nil, fmt.Errorf("version 0: ledger versions start at 1")
	case 1:
		return esdb.NoStream{}, nil
	default:
		return esdb.Revision(version - 2), nil
	}
}

// revisionOf is the EventStoreDB revision of ledger version v (v >= 1).
func revisionOf(version uint64) uint64 { return version - 1 }

// versionOf is the ledger version of EventStoreDB revision r.
func versionOf(revision uint64) uint64 { return revision + 1 }

// positionOf returns the commit position of an event and whether the server reported
// one. Servers before 22.6 send no position on stream reads (the client shows
// math.MaxUint64), and an idempotent append may come back without one (the client shows
// 0; 0 is never an event's position because the log starts with an epoch record).
func positionOf(p esdb.Position) (uint64, bool) {
	if p.Commit == 0 || p.Commit == math.MaxUint64 {
		return 0, false
	}
	return p.Commit, true
}
