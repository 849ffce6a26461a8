package eventstore

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
)

// samplePayloads has one payload of every event type, with every field set, so a field
// lost in the conversion shows up.
func samplePayloads() []events.Event {
	at := time.Date(2026, 11, 24, 10, 15, 0, 123456789, time.UTC)
	d := decimal.RequireFromString
	return []events.Event{
		events.AccountOpened{Currency: "USD", LowBalanceThreshold: d("10")},
		events.UsageCharged{UsageID: "call-8f2c", UsageType: "call", Reason: "fup_exceeded", Cause: "fair_usage_exceeded",
			UsedAt: at, Amount: d("0.4200"), Currency: "USD", UserID: "u-7", Quantity: "21", Unit: "minute",
			Destination: "+447911123456", ContentHash: "sha256:abc"},
		events.AdjustmentApplied{AdjustmentID: "adj-1", Amount: d("-0.42"), Reason: "refund of disputed call", UsageID: "call-8f2c"},
		events.AlertSettingsChanged{LowBalanceThreshold: d("25")},
		events.AutoTopUpConfigured{Enabled: true, Threshold: d("20"), Amount: d("100")},
		events.TopUpRequested{TopUpID: "tu-1", Kind: events.TopUpAuto, Amount: d("50")},
		events.TopUpAttemptFailed{TopUpID: "tu-1", Attempt: 2, Reason: "card_declined", NextAttemptAt: at.Add(time.Minute)},
		events.TopUpSucceeded{TopUpID: "tu-1", Amount: d("50"), Attempt: 3, PaymentID: "pay-9"},
		events.TopUpFailed{TopUpID: "tu-1", Attempts: 3, Reason: "gateway_unavailable", Suspended: true},
	}
}

// TestSamplePayloadsCoverEveryType keeps samplePayloads complete: a new event type must
// be added there (and so to the round trip below).
func TestSamplePayloadsCoverEveryType(t *testing.T) {
	want := []string{
		events.TypeAccountOpened, events.TypeUsageCharged, events.TypeAdjustmentApplied,
		events.TypeAlertSettingsChanged, events.TypeAutoTopUpConfigured, events.TypeTopUpRequested,
		events.TypeTopUpAttemptFailed, events.TypeTopUpSucceeded, events.TypeTopUpFailed,
	}
	got := map[string]bool{}
	for _, p := range samplePayloads() {
		got[p.EventType()] = true
	}
	for _, typ := range want {
		if !got[typ] {
			t.Errorf("no sample payload of type %s", typ)
		}
	}
}

func sampleEnvelope(accountID string, version uint64, data events.Event) events.Envelope {
	// A zone other than UTC checks that times are normalised like events.Marshal does.
	zone := time.FixedZone("CET", 3600)
	return events.Envelope{
		ID:         events.NewID(accountID, version, data),
		AccountID:  accountID,
		Version:    version,
		OccurredAt: time.Date(2026, 11, 24, 11, 15, 0, 5, zone),
		RecordedAt: time.Date(2026, 11, 24, 11, 15, 2, 7, zone),
		Data:       data,
	}
}

// recordedFrom is what EventStoreDB gives back for an event written from d at revision
// rev of stream, at position pos.
func recordedFrom(stream string, rev, pos uint64, d esdb.EventData) *esdb.RecordedEvent {
	return &esdb.RecordedEvent{
		EventID:      d.EventID,
		EventType:    d.EventType,
		ContentType:  "application/json",
		StreamID:     stream,
		EventNumber:  rev,
		Position:     esdb.Position{Commit: pos, Prepare: pos},
		CreatedDate:  time.Now().UTC(),
		Data:         d.Data,
		UserMetadata: d.Metadata,
	}
}

// mustMarshal is the canonical JSON of an envelope: two envelopes are the same event
// exactly when it is equal (decimals compare by their text, times by their instant).
func mustMarshal(t *testing.T, e events.Envelope) []byte {
	t.Helper()
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func TestEnvelopeRoundTripEveryType(t *testing.T) {
	for i, p := range samplePayloads() {
		t.Run(p.EventType(), func(t *testing.T) {
			give := sampleEnvelope("acme:eu-1", uint64(i+1), p)
			d, err := toEventData(give)
			if err != nil {
				t.Fatalf("toEventData: %v", err)
			}
			if d.EventID != give.ID {
				t.Errorf("EventID = %s, want the envelope id %s", d.EventID, give.ID)
			}
			if d.EventType != p.EventType() {
				t.Errorf("EventType = %q, want %q", d.EventType, p.EventType())
			}
			if d.ContentType != esdb.ContentTypeJson {
				t.Errorf("ContentType = %v, want JSON", d.ContentType)
			}
			wantData, _ := events.MarshalData(p)
			if !bytes.Equal(d.Data, wantData) {
				t.Errorf("Data = %s, want the bare payload %s", d.Data, wantData)
			}

			got, err := fromRecorded(recordedFrom(events.StreamName(give.AccountID), revisionOf(give.Version), 4242, d))
			if err != nil {
				t.Fatalf("fromRecorded: %v", err)
			}
			if got.Position != 4242 {
				t.Errorf("Position = %d, want 4242", got.Position)
			}
			if got.ID != give.ID || got.AccountID != give.AccountID || got.Version != give.Version {
				t.Errorf("got id/account/version %s/%s/%d, want %s/%s/%d", got.ID, got.AccountID, got.Version, give.ID, give.AccountID, give.Version)
			}
			if !got.OccurredAt.Equal(give.OccurredAt) || !got.RecordedAt.Equal(give.RecordedAt) {
				t.Errorf("times %v/%v, want %v/%v", got.OccurredAt, got.RecordedAt, give.OccurredAt, give.RecordedAt)
			}
			if got.OccurredAt.Location() != time.UTC {
				t.Errorf("OccurredAt in %v, want UTC", got.OccurredAt.Location())
			}
			if g, w := mustMarshal(t, got), mustMarshal(t, give); !bytes.Equal(g, w) {
				t.Errorf("round trip changed the event:\n got %s\nwant %s", g, w)
			}
			// Same result as the JetStream adapter's body codec.
			viaBody, err := events.Unmarshal(mustMarshal(t, give))
			if err != nil {
				t.Fatalf("events.Unmarshal: %v", err)
			}
			viaBody.Position = got.Position
			if g, w := mustMarshal(t, got), mustMarshal(t, viaBody); !bytes.Equal(g, w) {
				t.Errorf("differs from events.Unmarshal:\n got %s\nwant %s", g, w)
			}
		})
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	give := sampleEnvelope("acme", 7, events.AlertSettingsChanged{LowBalanceThreshold: decimal.NewFromInt(5)})
	b, err := encodeMetadata(give)
	if err != nil {
		t.Fatal(err)
	}
	// The field names are a stored format: other readers (the EventStoreDB UI, an
	// auditor's script) rely on them.
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"account_id", "version", "occurred_at", "recorded_at"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("metadata %s has no %q", b, key)
		}
	}
	if len(raw) != 4 {
		t.Errorf("metadata %s has %d fields, want 4", b, len(raw))
	}
	got, err := decodeMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	want := metadata{AccountID: "acme", Version: 7, OccurredAt: give.OccurredAt.UTC(), RecordedAt: give.RecordedAt.UTC()}
	if got != want {
		t.Errorf("decodeMetadata = %+v, want %+v", got, want)
	}
	if !strings.Contains(string(b), `"occurred_at":"2026-11-24T10:15:00.000000005Z"`) {
		t.Errorf("metadata %s: want occurred_at in UTC with full precision", b)
	}
}

func TestFromRecordedRefusesInconsistentEvents(t *testing.T) {
	good := sampleEnvelope("acme", 3, events.AlertSettingsChanged{LowBalanceThreshold: decimal.NewFromInt(5)})
	d, err := toEventData(good)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give func() *esdb.RecordedEvent
		want string
	}{
		{"nil", func() *esdb.RecordedEvent { return nil }, "nothing recorded"},
		{"not an account stream", func() *esdb.RecordedEvent { return recordedFrom("user-acme", 2, 10, d) }, "not an account stream"},
		{"empty account", func() *esdb.RecordedEvent { return recordedFrom("account-", 2, 10, d) }, "not an account stream"},
		{"moved to another revision", func() *esdb.RecordedEvent { return recordedFrom("account-acme", 5, 10, d) }, "says account"},
		{"moved to another stream", func() *esdb.RecordedEvent { return recordedFrom("account-other", 2, 10, d) }, "says account"},
		{"no metadata", func() *esdb.RecordedEvent {
			r := recordedFrom("account-acme", 2, 10, d)
			r.UserMetadata = nil
			return r
		}, "metadata: empty"},
		{"metadata not JSON", func() *esdb.RecordedEvent {
			r := recordedFrom("account-acme", 2, 10, d)
			r.UserMetadata = []byte("{")
			return r
		}, "decode metadata"},
		{"unknown type", func() *esdb.RecordedEvent {
			r := recordedFrom("account-acme", 2, 10, d)
			r.EventType = "surprise.v1"
			return r
		}, "unknown type"},
		{"payload not JSON", func() *esdb.RecordedEvent {
			r := recordedFrom("account-acme", 2, 10, d)
			r.Data = []byte("not json")
			return r
		}, "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fromRecorded(tt.give())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("fromRecorded error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFromRecordedWithoutPosition(t *testing.T) {
	// Servers before 22.6 report no position on stream reads (the client shows MaxUint64).
	ev := sampleEnvelope("acme", 1, events.AccountOpened{Currency: "USD", LowBalanceThreshold: decimal.NewFromInt(10)})
	d, _ := toEventData(ev)
	got, err := fromRecorded(recordedFrom("account-acme", 0, math.MaxUint64, d))
	if err != nil {
		t.Fatal(err)
	}
	if got.Position != 0 {
		t.Errorf("Position = %d, want 0 when the server reports none", got.Position)
	}
}

func TestToEventDataWithoutPayload(t *testing.T) {
	if _, err := toEventData(events.Envelope{ID: uuid.New(), AccountID: "acme", Version: 1}); err == nil {
		t.Error("toEventData accepted an envelope without payload")
	}
}

func TestExpectedRevision(t *testing.T) {
	tests := []struct {
		give    uint64
		want    esdb.ExpectedRevision
		wantErr bool
	}{
		{give: 0, wantErr: true},
		{give: 1, want: esdb.NoStream{}},
		{give: 2, want: esdb.Revision(0)},
		{give: 3, want: esdb.Revision(1)},
		{give: 1000, want: esdb.Revision(998)},
		{give: math.MaxUint64, want: esdb.Revision(math.MaxUint64 - 2)},
	}
	for _, tt := range tests {
		got, err := expectedRevision(tt.give)
		if (err != nil) != tt.wantErr {
			t.Errorf("expectedRevision(%d) error = %v, want error %v", tt.give, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("expectedRevision(%d) = %#v, want %#v", tt.give, got, tt.want)
		}
	}
}

func TestRevisionVersionMapping(t *testing.T) {
	for _, v := range []uint64{1, 2, 17, math.MaxUint64} {
		if got := versionOf(revisionOf(v)); got != v {
			t.Errorf("versionOf(revisionOf(%d)) = %d", v, got)
		}
	}
	if revisionOf(1) != 0 || versionOf(0) != 1 {
		t.Error("version 1 must be revision 0")
	}
}

func TestPositionOf(t *testing.T) {
	tests := []struct {
		give   esdb.Position
		want   uint64
		wantOK bool
	}{
		{esdb.Position{Commit: 1788, Prepare: 1788}, 1788, true},
		{esdb.Position{Commit: 0, Prepare: 0}, 0, false},
		{esdb.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}, 0, false},
	}
	for _, tt := range tests {
		got, ok := positionOf(tt.give)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("positionOf(%+v) = %d, %v; want %d, %v", tt.give, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestIsAccountEvent(t *testing.T) {
	tests := []struct {
		stream, typ string
		want        bool
	}{
		{"account-acme", events.TypeUsageCharged, true},
		{"account-acme", "$streamDeleted", false},
		{"account-acme", "$>", false},
		{"$$account-acme", "$metadata", false},
		{"$stats-127.0.0.1:2113", "$statsCollected", false},
		{"accounts-acme", events.TypeUsageCharged, false},
		{"other-acme", events.TypeUsageCharged, false},
	}
	for _, tt := range tests {
		if got := isAccountEvent(&esdb.RecordedEvent{StreamID: tt.stream, EventType: tt.typ}); got != tt.want {
			t.Errorf("isAccountEvent(%q, %q) = %v, want %v", tt.stream, tt.typ, got, tt.want)
		}
	}
	if isAccountEvent(nil) {
		t.Error("isAccountEvent(nil) = true")
	}
}
