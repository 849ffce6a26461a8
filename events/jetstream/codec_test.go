package jetstream

import (
	"bytes"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
)

// codecSamples covers every payload type, times in other zones and with nanoseconds, and
// values that must take the events codec's path (escaped strings, years past 9999).
func codecSamples() []events.Envelope {
	at := time.Date(2026, 11, 24, 10, 15, 0, 120000000, time.FixedZone("X", -5*3600))
	dec := decimal.RequireFromString
	payloads := []events.Event{
		events.AccountOpened{Currency: "USD", LowBalanceThreshold: dec("10")},
		events.UsageCharged{UsageID: "call-1", UsageType: "call", Reason: "premium", Cause: "outside_package",
			UsedAt: at, Amount: dec("0.4200"), Currency: "USD", UserID: "u<7>&", Quantity: "1",
			Unit: "minute", Destination: "+44 \"79\" \\ é", ContentHash: "h"},
		events.AdjustmentApplied{AdjustmentID: "adj", Amount: dec("-1.5"), Reason: "refund", UsageID: "call-1"},
		events.AlertSettingsChanged{LowBalanceThreshold: dec("25.0001")},
		events.AutoTopUpConfigured{Enabled: true, Threshold: dec("20"), Amount: dec("100")},
		events.TopUpRequested{TopUpID: "tu", Kind: events.TopUpAuto, Amount: dec("100")},
		events.TopUpAttemptFailed{TopUpID: "tu", Attempt: 2, Reason: "card_declined", NextAttemptAt: at},
		events.TopUpSucceeded{TopUpID: "tu", Amount: dec("100"), Attempt: 3, PaymentID: "p"},
		events.TopUpFailed{TopUpID: "tu", Attempts: 3, Reason: "gateway_unavailable", Suspended: true},
	}
	var out []events.Envelope
	for i, d := range payloads {
		out = append(out, events.Envelope{
			ID: events.NewID("acme.eu:1", uint64(i+1), d), AccountID: "acme.eu:1", Version: uint64(i + 1),
			OccurredAt: at, RecordedAt: at.Add(time.Duration(i) * time.Nanosecond), Data: d,
		})
	}
	odd := out[0]
	odd.AccountID = "a<b>" // escaped by encoding/json
	out = append(out, odd)
	odd = out[1]
	odd.OccurredAt = time.Time{} // year 1
	odd.Version = 0
	odd.ID = uuid.Nil
	out = append(out, odd)
	return out
}

// TestEnvelopeFieldsAreKnown fails when events.Envelope changes shape: codec.go writes
// and reads its JSON by hand and must be updated with it.
func TestEnvelopeFieldsAreKnown(t *testing.T) {
	var got []string
	typ := reflect.TypeOf(events.Envelope{})
	for i := 0; i < typ.NumField(); i++ {
		got = append(got, typ.Field(i).Name)
	}
	want := []string{"ID", "AccountID", "Version", "Position", "OccurredAt", "RecordedAt", "Data"}
	if !slices.Equal(got, want) {
		t.Fatalf("events.Envelope fields %v, codec.go knows %v: update encodeEnvelope/decodePlain", got, want)
	}
}

func TestEncodeMatchesCodec(t *testing.T) {
	for _, e := range codecSamples() {
		want, err := events.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeEnvelope(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encodeEnvelope\n got %s\nwant %s", got, want)
		}
	}
	if _, err := encodeEnvelope(events.Envelope{AccountID: "a"}); err == nil {
		t.Fatal("encoded an envelope without payload")
	}
}

func TestDecodeMatchesCodec(t *testing.T) {
	for i, e := range codecSamples() {
		body, err := events.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		want, err := events.Unmarshal(body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEnvelope(body)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("sample %d: decodeEnvelope\n got %#v\nwant %#v", i, got, want)
		}
		// The bodies the store writes must take the fast path, or it is gone unnoticed.
		if _, ok := decodePlain(body); !ok && plainJSONString(e.AccountID) && !bytes.Contains(body, []byte(`\`)) {
			t.Fatalf("sample %d did not take the fast path: %s", i, body)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, e := range codecSamples() {
		body, _ := events.Marshal(e)
		f.Add(body)
	}
	f.Add([]byte(`{"id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","account_id":"a","version":01,"type":"account_opened.v1","occurred_at":"2026-01-01T00:00:00Z","recorded_at":"2026-01-01T00:00:00Z","data":{}}`))
	f.Add([]byte(`{"id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","account_id":"a","version":1,"type":"account_opened.v1","occurred_at":"2026-01-01T00:00:00Z","recorded_at":"2026-01-01T00:00:00Z","data":{"currency":"U\"}"}}`))
	f.Add([]byte(`{"ID":"x","data":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, errGot := decodeEnvelope(body)
		want, errWant := events.Unmarshal(body)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("decodeEnvelope error %v, events.Unmarshal error %v", errGot, errWant)
		}
		if errGot == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeEnvelope\n got %#v\nwant %#v", got, want)
		}
	})
}
