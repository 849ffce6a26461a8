package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/telephony/creditledger/events"
)

// The hot paths of the pure domain, one benchmark each (BENCHMARKS.md):
//
//	BenchmarkParseUsage     decode + validate one usage event (ingest, per message)
//	BenchmarkDecideEvolve   decide a charge and evolve the state (writer, per usage)
//	BenchmarkAuthorize      the authorization policy (ledger.authorize, per request)

// benchUsages are realistic payloads of every usage type, as the platform sends them.
var benchUsages = [][]byte{
	[]byte(`{"usage_id":"call-8f2c","account_id":"acme","type":"call","reason":"fup_exceeded","occurred_at":"2026-11-24T10:15:00Z","amount":"0.42","currency":"USD","user_id":"u-7","quantity":"21","unit":"minute","destination":"+447911123456"}`),
	[]byte(`{"usage_id":"call-9a1b","account_id":"acme","type":"call","reason":"international","occurred_at":"2026-11-24T10:15:00.123Z","amount":"3.1415","currency":"USD","user_id":"u-8","quantity":"12","unit":"minute","destination":"+14155550123"}`),
	[]byte(`{"usage_id":"fwd-1","account_id":"acme","type":"forwarded_call","occurred_at":"2026-11-24T10:16:00Z","amount":"0.2","currency":"USD","user_id":"u-7","quantity":"4","unit":"minute","destination":"+4930123456"}`),
	[]byte(`{"usage_id":"sms-1","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:16:00Z","amount":"0.05","currency":"USD","user_id":"u-7","quantity":"1","unit":"message","destination":"+33612345678"}`),
	[]byte(`{"usage_id":"wa-1","account_id":"acme","type":"whatsapp","occurred_at":"2026-11-24T10:17:00Z","amount":"0.0125","currency":"USD","user_id":"u-3"}`),
	[]byte(`{"usage_id":"ci-1","account_id":"acme","type":"conversation_intelligence","occurred_at":"2026-11-24T10:18:00Z","amount":"1.2","currency":"USD","user_id":"u-3","quantity":"10","unit":"minute"}`),
	[]byte(`{"usage_id":"va-1","account_id":"acme","type":"voice_agent","occurred_at":"2026-11-24T10:19:00Z","amount":"2.5","currency":"USD","quantity":"5","unit":"minute"}`),
}

func BenchmarkParseUsage(b *testing.B) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := ParseUsage(benchUsages[i%len(benchUsages)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDecideEvolve(b *testing.B) {
	a := NewAccount("acme")
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	open, err := Decide(a, OpenAccount{Currency: "USD", LowBalanceThreshold: decimal.NewFromInt(10)}, now)
	if err != nil {
		b.Fatal(err)
	}
	Evolve(a, open[0])
	charges := make([]ChargeUsage, 1024)
	for i := range charges {
		u, err := ParseUsage(benchUsages[i%len(benchUsages)])
		if err != nil {
			b.Fatal(err)
		}
		u.Charge.UsageID = fmt.Sprintf("u-%d", i)
		charges[i] = ChargeUsage{Charge: u.Charge}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		evs, err := Decide(a, charges[i%len(charges)], now)
		if err != nil {
			b.Fatal(err)
		}
		Evolve(a, evs[0])
		i++
	}
}

// BenchmarkEvolveUsage is the replay side alone: what Load and every projection pay per
// usage event.
func BenchmarkEvolveUsage(b *testing.B) {
	a := &Account{ID: "acme", Opened: true, Currency: "USD"}
	u, err := ParseUsage(benchUsages[0])
	if err != nil {
		b.Fatal(err)
	}
	e := events.Envelope{AccountID: "acme", Data: u.Charge}
	b.ReportAllocs()
	for b.Loop() {
		e.Version = a.Version + 1
		Evolve(a, e)
	}
}

func BenchmarkAuthorize(b *testing.B) {
	reqs := []AuthorizeRequest{
		{AccountID: "acme", Direction: DirectionOutbound, NumberType: NumberTypeStandard},
		{AccountID: "acme", Direction: DirectionInbound, NumberType: NumberTypeTollFree},
		{AccountID: "acme", Direction: DirectionInbound, NumberType: NumberTypeStandard},
	}
	balances := []decimal.Decimal{decimal.RequireFromString("42.5"), decimal.Zero, decimal.RequireFromString("-3.1415")}
	threshold := decimal.NewFromInt(10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := reqs[i%len(reqs)]
		if err := r.Validate(); err != nil {
			b.Fatal(err)
		}
		_ = Authorize(r, true, balances[i%len(balances)], threshold)
		i++
	}
}
