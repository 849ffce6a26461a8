package writer

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/events/jetstream"
	"github.com/telephony/creditledger/ledger"
)

// BenchmarkChargeUsages is the command side of ingest: batches of 1,000 new usages over
// 10,000 accounts through ChargeUsages (cache and index lookups, Decide, one Append
// round, state and index updates) on an embedded JetStream server. The usage index is
// written behind it; the benchmark waits for it at the end so its cost is counted.
func BenchmarkChargeUsages(b *testing.B) {
	const accounts, batchSize = 10_000, 1000
	srv, nc := jetstream.RunTestServer(b)
	_ = srv
	ctx := context.Background()
	store, err := jetstream.New(ctx, nc, jetstream.Options{})
	if err != nil {
		b.Fatal(err)
	}
	db, err := intake.Open(filepath.Join(b.TempDir(), "intake.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	w := New(store, db, zap.NewNop(), Options{})
	if err := w.Load(ctx); err != nil {
		b.Fatal(err)
	}
	for i := range accounts {
		if _, err := w.Execute(ctx, fmt.Sprintf("acct-%05d", i), ledger.OpenAccount{Currency: "USD", LowBalanceThreshold: decimal.NewFromInt(10)}); err != nil {
			b.Fatal(err)
		}
	}
	next := 0
	batch := func() []ledger.Usage {
		us := make([]ledger.Usage, batchSize)
		for i := range us {
			us[i] = usage(b, fmt.Sprintf("acct-%05d", (next*7919)%accounts), fmt.Sprintf("u-%d", next), "0.0421")
			next++
		}
		return us
	}
	var elapsed time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		us := batch()
		b.StartTimer()
		start := time.Now()
		for i, err := range w.ChargeUsages(ctx, us) {
			if err != nil {
				b.Fatalf("usage %d: %v", i, err)
			}
		}
		elapsed += time.Since(start)
		n += len(us)
	}
	start := time.Now()
	if err := w.SyncIndex(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed += time.Since(start)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "usages/s")
}
