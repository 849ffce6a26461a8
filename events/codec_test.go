package events

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func TestCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC)
	d := decimal.RequireFromString("0.4200")
	payloads := []Event{
		AccountOpened{Currency: "USD", LowBalanceThreshold: d},
		UsageCharged{UsageID: "u", UsageType: "call", Reason: "premium", Cause: "outside_package", UsedAt: at, Amount: d, Currency: "USD", UserID: "u-7", ContentHash: "h"},
		AdjustmentApplied{AdjustmentID: "a", Amount: d.Neg(), Reason: "r", UsageID: "u"},
		AlertSettingsChanged{LowBalanceThreshold: d},
		AutoTopUpConfigured{Enabled: true, Threshold: d, Amount: d},
		TopUpRequested{TopUpID: "t", Kind: TopUpAuto, Amount: d},
		TopUpAttemptFailed{TopUpID: "t", Attempt: 2, Reason: "card_declined", NextAttemptAt: at},
		TopUpSucceeded{TopUpID: "t", Amount: d, Attempt: 1, PaymentID: "p"},
		TopUpFailed{TopUpID: "t", Attempts: 3, Reason: "gateway_unavailable", Suspended: true},
	}
	if len(payloads) != len(decoders) {
		t.Fatalf("test covers %d payload types, codec knows %d", len(payloads), len(decoders))
	}
	for i, p := range payloads {
		e := Envelope{ID: NewID("acme", uint64(i+1), p), AccountID: "acme", Version: uint64(i + 1), OccurredAt: at, RecordedAt: at, Data: p}
		b, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", p.EventType(), err)
		}
		// Decimals compare by value: re-marshal both and compare the JSON.
		want, _ := json.Marshal(e.Data)
		have, _ := json.Marshal(got.Data)
		if got.ID != e.ID || got.Version != e.Version || got.Type() != p.EventType() || string(want) != string(have) || !got.OccurredAt.Equal(at) {
			t.Errorf("%s: round trip changed the event:\n got %+v\nwant %+v", p.EventType(), got, e)
		}
		if reflect.TypeOf(got.Data) != reflect.TypeOf(p) {
			t.Errorf("%s decoded as %T", p.EventType(), got.Data)
		}
	}
}

func TestNewIDUsesBusinessKeys(t *testing.T) {
	u1 := NewID("acme", 5, UsageCharged{UsageID: "u1"})
	if u1 != NewID("acme", 9, UsageCharged{UsageID: "u1", Amount: decimal.NewFromInt(3)}) {
		t.Error("a usage's id depends on its position or content")
	}
	if u1 == NewID("other", 5, UsageCharged{UsageID: "u1"}) {
		t.Error("the same usage id in two accounts collides")
	}
	s1 := NewID("acme", 5, AlertSettingsChanged{})
	if s1 == NewID("acme", 6, AlertSettingsChanged{}) {
		t.Error("settings changes at two positions share an id")
	}
	if NewID("acme", 1, TopUpSucceeded{TopUpID: "t"}) != NewID("acme", 2, TopUpFailed{TopUpID: "t"}) {
		t.Error("a top-up can have two outcomes")
	}
}

func TestUnmarshalRejectsUnknownTypes(t *testing.T) {
	if _, err := Unmarshal([]byte(`{"type":"meteor_strike.v1","data":{}}`)); err == nil {
		t.Fatal("unknown type decoded")
	}
}

func FuzzUnmarshal(f *testing.F) {
	b, _ := Marshal(Envelope{AccountID: "a", Version: 1, Data: AccountOpened{Currency: "USD"}})
	f.Add(b)
	f.Add([]byte(`{"type":"usage_charged.v1","data":{"amount":"x"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := Unmarshal(raw)
		if err == nil && e.Data == nil {
			t.Fatal("decoded an envelope without payload")
		}
	})
}
