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
		events.AdjustmentApplied{AdjustmentID: "adj", Amount: dec("-1.5"), Reason: "refund café ✓", UsageID: "call-1"},
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

// TestFlatCodecCoversPayloads: every payload type takes the fast path, and its result
// is the events codec's.
func TestFlatCodecCoversPayloads(t *testing.T) {
	for _, e := range codecSamples() {
		typ := e.Data.EventType()
		ft := flatByName[typ]
		if ft == nil {
			t.Fatalf("%s has no fast codec", typ)
		}
		want, err := events.MarshalData(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ft.encode(nil, e.Data)
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("%s: encode\n got %s\nwant %s", typ, got, want)
		}
		if !ok && !bytes.ContainsAny(want, `\`) && isASCII(want) {
			t.Fatalf("%s: encode declined a plain payload %s", typ, want)
		}
		dec, ok := ft.decode(want)
		wantDec, err := events.UnmarshalData(typ, want)
		if err != nil {
			t.Fatal(err)
		}
		if !ok && !bytes.ContainsAny(want, `\`) {
			t.Fatalf("%s: decode declined a plain payload %s", typ, want)
		}
		if ok && !reflect.DeepEqual(dec, wantDec) {
			t.Fatalf("%s: decode\n got %#v\nwant %#v", typ, dec, wantDec)
		}
	}
	if n := len(flatByName); n != 9 {
		t.Fatalf("fast codec serves %d payload types, want 9", n)
	}
	// A type the fast codec cannot mirror is left to encoding/json.
	type nested struct {
		Inner struct{ A int } `json:"inner"`
	}
	if newFlatType(reflect.TypeFor[nested]()) != nil {
		t.Fatal("fast codec accepted a nested struct")
	}
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func FuzzEncodeEnvelope(f *testing.F) {
	f.Add("acme", "call-1", "+44 79", "0.42", int64(3), true, int64(1700000000123456789))
	f.Add("a.b", "x<y>", "é", "-12.50", int64(-1), false, int64(0))
	f.Add("", "", "\"", "1e3", int64(0), false, int64(-62135596800000000))
	f.Fuzz(func(t *testing.T, account, usageID, dest, amount string, n int64, flag bool, nanos int64) {
		amt, err := decimal.NewFromString(amount)
		if err != nil {
			return
		}
		at := time.Unix(0, nanos).In(time.FixedZone("Z9", 9*3600))
		for _, d := range []events.Event{
			events.UsageCharged{UsageID: usageID, Destination: dest, Amount: amt, UsedAt: at, UserID: dest},
			events.TopUpFailed{TopUpID: usageID, Attempts: int(n), Suspended: flag, Reason: dest},
			events.AutoTopUpConfigured{Enabled: flag, Threshold: amt},
		} {
			e := events.Envelope{ID: uuid.NewSHA1(uuid.Nil, []byte(usageID)), AccountID: account,
				Version: uint64(n), OccurredAt: at, RecordedAt: at, Data: d}
			want, errWant := events.Marshal(e)
			got, errGot := encodeEnvelope(e)
			if (errGot == nil) != (errWant == nil) || !bytes.Equal(got, want) {
				t.Fatalf("encodeEnvelope\n got %s, %v\nwant %s, %v", got, errGot, want, errWant)
			}
			if errWant != nil {
				continue
			}
			dec, errDec := decodeEnvelope(want)
			canon, errCanon := events.Unmarshal(want)
			if (errDec == nil) != (errCanon == nil) || (errDec == nil && !reflect.DeepEqual(dec, canon)) {
				t.Fatalf("decodeEnvelope\n got %#v, %v\nwant %#v, %v", dec, errDec, canon, errCanon)
			}
		}
	})
}
