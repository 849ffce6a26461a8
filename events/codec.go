package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// wireEnvelope is the JSON form of an Envelope. Stores keep it as the message body, so an
// event read back from any store decodes the same way.
type wireEnvelope struct {
	ID         uuid.UUID       `json:"id"`
	AccountID  string          `json:"account_id"`
	Version    uint64          `json:"version"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	RecordedAt time.Time       `json:"recorded_at"`
	Data       json.RawMessage `json:"data"`
}

// Upcaster turns the payload of an older type name into the payload of a newer one.
type Upcaster func(data json.RawMessage) (newType string, newData json.RawMessage, err error)

// upcasters maps an old type name to its upcaster. Decoding applies them until a current
// type name is reached. Empty today: every type is still at v1.
var upcasters = map[string]Upcaster{}

// decoders builds an empty payload value for each current type name.
var decoders = map[string]func() Event{
	TypeAccountOpened:        func() Event { return new(AccountOpened) },
	TypeUsageCharged:         func() Event { return new(UsageCharged) },
	TypeAdjustmentApplied:    func() Event { return new(AdjustmentApplied) },
	TypeAlertSettingsChanged: func() Event { return new(AlertSettingsChanged) },
	TypeAutoTopUpConfigured:  func() Event { return new(AutoTopUpConfigured) },
	TypeTopUpRequested:       func() Event { return new(TopUpRequested) },
	TypeTopUpAttemptFailed:   func() Event { return new(TopUpAttemptFailed) },
	TypeTopUpSucceeded:       func() Event { return new(TopUpSucceeded) },
	TypeTopUpFailed:          func() Event { return new(TopUpFailed) },
}

// Marshal encodes an envelope as JSON.
func Marshal(e Envelope) ([]byte, error) {
	data, err := MarshalData(e.Data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(wireEnvelope{
		ID: e.ID, AccountID: e.AccountID, Version: e.Version, Type: e.Type(),
		OccurredAt: e.OccurredAt.UTC(), RecordedAt: e.RecordedAt.UTC(), Data: data,
	})
}

// MarshalData encodes only the payload (EventStoreDB keeps type and metadata apart).
func MarshalData(d Event) ([]byte, error) {
	if d == nil {
		return nil, fmt.Errorf("marshal event: no payload")
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", d.EventType(), err)
	}
	return b, nil
}

// Unmarshal decodes an envelope written by Marshal, upcasting old payloads. Position is
// not part of the body; the store sets it.
func Unmarshal(b []byte) (Envelope, error) {
	var w wireEnvelope
	if err := json.Unmarshal(b, &w); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	data, err := UnmarshalData(w.Type, w.Data)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{
		ID: w.ID, AccountID: w.AccountID, Version: w.Version,
		OccurredAt: w.OccurredAt, RecordedAt: w.RecordedAt, Data: data,
	}, nil
}

// UnmarshalData decodes a payload of the given type name, upcasting it first if the name
// is an older version.
func UnmarshalData(typeName string, raw json.RawMessage) (Event, error) {
	for steps := 0; ; steps++ {
		up, ok := upcasters[typeName]
		if !ok {
			break
		}
		if steps > len(upcasters) {
			return nil, fmt.Errorf("upcast %s: cycle", typeName)
		}
		var err error
		if typeName, raw, err = up(raw); err != nil {
			return nil, fmt.Errorf("upcast %s: %w", typeName, err)
		}
	}
	newPayload, ok := decoders[typeName]
	if !ok {
		return nil, fmt.Errorf("decode event: unknown type %q", typeName)
	}
	p := newPayload()
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typeName, err)
	}
	return deref(p), nil
}

// deref returns the value behind a payload pointer so that callers switch on value types.
func deref(p Event) Event {
	switch v := p.(type) {
	case *AccountOpened:
		return *v
	case *UsageCharged:
		return *v
	case *AdjustmentApplied:
		return *v
	case *AlertSettingsChanged:
		return *v
	case *AutoTopUpConfigured:
		return *v
	case *TopUpRequested:
		return *v
	case *TopUpAttemptFailed:
		return *v
	case *TopUpSucceeded:
		return *v
	case *TopUpFailed:
		return *v
	}
	return p
}
