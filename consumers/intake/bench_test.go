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
// random as the platform's and content hashes as ledger.ParseUsage writes them.
func benchUsages(rng *rand.Rand, n int, pos uint64) []IndexedUsage {
	us := make([]IndexedUsage, n)
	for i := range us {
		us[i] = IndexedUsage{
			UsageKey:    UsageKey{AccountID: fmt.Sprintf("acct-%06d", rng.IntN(10_000)), UsageID: fmt.Sprintf("call-%016x", rng.Uint64())},
			ContentHash: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
			Amount:      decimal.New(rng.Int64N(100_000), -4),
			Position:    pos + uint64(i),
		}
	}
	return us
}

// benchIndex is one backend of the usage index under benchmark.
type benchIndex interface {
	PutUsages(ctx context.Context, usages []IndexedUsage) error
	LookupUsages(ctx context.Context, keys []UsageKey) (map[UsageKey]IndexedUsage, error)
}

// benchBackends are the usage indexes the benchmarks compare on the same data: the
// Pebble store the DB uses, and the SQLite table it replaced (sqliteindex_test.go).
var benchBackends = []struct {
	name string
	open func(b *testing.B) benchIndex
	// settle finishes the work a backend left for later, so that it is counted: Pebble
	// flushes its memtable and compacts in the background; SQLite checkpoints its WAL
	// inside the commits.
	settle func(b *testing.B, x benchIndex)
}{
	{
		name: "pebble",
		open: func(b *testing.B) benchIndex {
			db, err := Open(filepath.Join(b.TempDir(), "intake.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return db
		},
		settle: func(b *testing.B, x benchIndex) {
			p := x.(*DB).index.db
			if err := p.Flush(); err != nil {
				b.Fatal(err)
			}
			// Wait until no compaction has run for two polls in a row. (Pebble's
			// EstimatedDebt can stay above zero for good on a small store.)
			idle := 0
			for deadline := time.Now().Add(time.Minute); idle < 2 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				if p.Metrics().Compact.NumInProgress == 0 {
					idle++
				} else {
					idle = 0
				}
			}
		},
	},
	{
		name: "sqlite",
		open: func(b *testing.B) benchIndex {
			x, err := openSQLiteIndex(filepath.Join(b.TempDir(), "index.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { x.Close() })
			return x
		},
		settle: func(*testing.B, benchIndex) {},
	},
}

// benchIndexBase is how many usages the index holds before a benchmark measures.
const benchIndexBase = 300_000

// fillBench puts benchIndexBase usages into x in batches of 16,384 and returns them.
func fillBench(b *testing.B, x benchIndex, rng *rand.Rand) []IndexedUsage {
	all := benchUsages(rng, benchIndexBase, 0)
	for start := 0; start < len(all); start += 16_384 {
		if err := x.PutUsages(context.Background(), all[start:min(start+16_384, len(all))]); err != nil {
			b.Fatal(err)
		}
	}
	return all
}

// BenchmarkPutUsages writes 300,000 usages to the usage index in batches of rows, on
// top of an index that already holds 300,000: the write side's per-usage cost of
// exactly-once. Each backend gets the same usages. One iteration is the whole 300,000
// (run it with -benchtime 1x, or more iterations for more samples); ns/usage is the
// wall time of the PutUsages calls, cpu-ns/usage the process's CPU time from the first
// call to the end of the work the backend deferred (see settle), which is what the
// indexer costs the 2 cores ingest shares.
func BenchmarkPutUsages(b *testing.B) {
	for _, rows := range []int{1000, 16384, 65536} {
		for _, be := range benchBackends {
			b.Run(fmt.Sprintf("backend=%s/rows=%d", be.name, rows), func(b *testing.B) {
				ctx := context.Background()
				var wall, cpu time.Duration
				n := 0
				for b.Loop() {
					b.StopTimer()
					x := be.open(b)
					rng := rand.New(rand.NewPCG(1, 2))
					fillBench(b, x, rng)
					be.settle(b, x)
					us := benchUsages(rng, benchIndexBase, benchIndexBase)
					b.StartTimer()
					cpuStart := processCPU()
					for start := 0; start < len(us); start += rows {
						t := time.Now()
						if err := x.PutUsages(ctx, us[start:min(start+rows, len(us))]); err != nil {
							b.Fatal(err)
						}
						wall += time.Since(t)
					}
					be.settle(b, x)
					cpu += processCPU() - cpuStart
					n += len(us)
				}
				b.ReportMetric(float64(wall.Nanoseconds())/float64(n), "ns/usage")
				if cpu > 0 {
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/usage")
				}
			})
		}
	}
}

// BenchmarkLookupUsages looks up 1,000 usages at a time in an index of 300,000: keys
// that are not in it (every new usage of an ingest batch that the writer's cache and
// filter cannot answer) and keys that are (duplicates and redeliveries).
func BenchmarkLookupUsages(b *testing.B) {
	for _, be := range benchBackends {
		for _, present := range []bool{false, true} {
			b.Run(fmt.Sprintf("backend=%s/present=%v", be.name, present), func(b *testing.B) {
				x := be.open(b)
				rng := rand.New(rand.NewPCG(1, 2))
				stored := fillBench(b, x, rng)
				be.settle(b, x)
				ctx := context.Background()
				keys := make([]UsageKey, 1000)
				for b.Loop() {
					b.StopTimer()
					if present {
						for i := range keys {
							keys[i] = stored[rng.IntN(len(stored))].UsageKey
						}
					} else {
						for i, u := range benchUsages(rng, len(keys), 0) {
							keys[i] = u.UsageKey
						}
					}
					b.StartTimer()
					found, err := x.LookupUsages(ctx, keys)
					if err != nil {
						b.Fatal(err)
					}
					if present && len(found) == 0 || !present && len(found) != 0 {
						b.Fatalf("found %d of %d keys", len(found), len(keys))
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/usage")
			})
		}
	}
}
