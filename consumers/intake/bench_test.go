package intake

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// benchUsages returns n indexed usages spread over 10,000 accounts, with usage ids as
// random as the platform's.
func benchUsages(rng *rand.Rand, n int, pos uint64) []IndexedUsage {
	us := make([]IndexedUsage, n)
	for i := range us {
		us[i] = IndexedUsage{
			UsageKey:    UsageKey{AccountID: fmt.Sprintf("acct-%06d", rng.IntN(10_000)), UsageID: fmt.Sprintf("call-%016x", rng.Uint64())},
			ContentHash: fmt.Sprintf("%032x", rng.Uint64()),
			Amount:      decimal.New(rng.Int64N(100_000), -4),
			Position:    pos + uint64(i),
		}
	}
	return us
}

func openBench(b *testing.B) *DB {
	db, err := Open(filepath.Join(b.TempDir(), "intake.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkPutUsages writes the usage index in transactions of rows usages, on top of
// an index that already holds 300,000: the write side's per-usage cost of exactly-once.
func BenchmarkPutUsages(b *testing.B) {
	for _, rows := range []int{1000, 16384} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			db := openBench(b)
			rng := rand.New(rand.NewPCG(1, 2))
			ctx := context.Background()
			var pos uint64
			for range 300_000 / rows {
				if err := db.PutUsages(ctx, benchUsages(rng, rows, pos)); err != nil {
					b.Fatal(err)
				}
				pos += uint64(rows)
			}
			var elapsed time.Duration
			n := 0
			for b.Loop() {
				b.StopTimer()
				us := benchUsages(rng, rows, pos)
				pos += uint64(rows)
				b.StartTimer()
				start := time.Now()
				if err := db.PutUsages(ctx, us); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				n += rows
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/usage")
		})
	}
}

// BenchmarkLookupUsages looks up 1,000 usages that are not in the index (every new usage
// of an ingest batch that the cache cannot answer).
func BenchmarkLookupUsages(b *testing.B) {
	db := openBench(b)
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	for i := range 30 {
		if err := db.PutUsages(ctx, benchUsages(rng, 10_000, uint64(i*10_000))); err != nil {
			b.Fatal(err)
		}
	}
	keys := make([]UsageKey, 1000)
	for b.Loop() {
		b.StopTimer()
		for i, u := range benchUsages(rng, len(keys), 0) {
			keys[i] = u.UsageKey
		}
		b.StartTimer()
		if _, err := db.LookupUsages(ctx, keys); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/usage")
}
