package projections

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/jetstream"
)

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchAccounts is how many accounts the benchmark events spread over.
const benchAccounts = 10_000

// mixedEvents returns n events over accounts: mostly usage of every type, some adjustments,
// top-ups and settings changes, as a busy ledger writes them. Every account must be open.
func mixedEvents(h *history, rng *rand.Rand, accounts []string, n int) []events.Envelope {
	types := []struct{ typ, reason string }{
		{"call", "fup_exceeded"}, {"call", "international"}, {"forwarded_call", ""}, {"sms", ""},
		{"whatsapp", ""}, {"conversation_intelligence", ""}, {"voice_agent", ""},
	}
	evs := make([]events.Envelope, 0, n)
	for len(evs) < n {
		a := accounts[rng.IntN(len(accounts))]
		switch r := rng.IntN(100); {
		case r < 90:
			ty := types[rng.IntN(len(types))]
			u := usageOf(fmt.Sprintf("u-%d", h.pos), ty.typ, ty.reason, fmt.Sprintf("%d.%04d", rng.IntN(3), rng.IntN(10000)), fmt.Sprintf("user-%d", rng.IntN(20)))
			u.UsedAt, u.Quantity, u.Unit, u.Destination = h.now, "3", "minute", "+447911123456"
			evs = append(evs, h.ev(a, u))
		case r < 95:
			evs = append(evs, h.adjust(a, fmt.Sprintf("adj-%d", h.pos), "0.42"))
		case r < 99 && n-len(evs) >= 2:
			evs = append(evs, h.topUp(a, fmt.Sprintf("tu-%d", h.pos), events.TopUpOneTime, "20")...)
		default:
			evs = append(evs, h.ev(a, events.AlertSettingsChanged{LowBalanceThreshold: dec("15")}))
		}
	}
	return evs
}

func openAccounts(b testing.TB, db *DB, h *history, n int) []string {
	accounts := make([]string, n)
	evs := make([]events.Envelope, n)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("acct-%05d", i)
		evs[i] = h.open(accounts[i], "10")
	}
	for i := 0; i < n; i += batchSizeMaxDefault {
		mustApply(b, db, evs[i:min(i+batchSizeMaxDefault, n)]...)
	}
	return accounts
}

// benchApplyBatch is BenchmarkApply's batch size: DESIGN.md section 4's reference shape,
// kept when the Projector's own maximum grew, so that its figures stay comparable.
const benchApplyBatch = 1000

// BenchmarkApply applies batches of 1,000 mixed events spread over 10,000 accounts, the
// shape of DESIGN.md section 4's reference measurement (about 65,000 events/s).
func BenchmarkApply(b *testing.B) {
	db := openTest(b)
	h := newHistory()
	rng := rand.New(rand.NewPCG(1, 2))
	accounts := openAccounts(b, db, h, benchAccounts)
	var m applyMeter
	for b.Loop() {
		m.apply(b, db, func() []events.Envelope { return mixedEvents(h, rng, accounts, benchApplyBatch) })
	}
	m.report(b)
}

// applyMeter times Apply calls, wall and CPU, leaving out the making of their events.
type applyMeter struct {
	applied      int
	elapsed, cpu time.Duration
}

// apply applies the events next makes, timing only the Apply.
func (m *applyMeter) apply(b *testing.B, db *DB, next func() []events.Envelope) {
	b.StopTimer()
	evs := next()
	b.StartTimer()
	start, startCPU := time.Now(), cpuTime()
	if err := db.Apply(context.Background(), evs); err != nil {
		b.Fatal(err)
	}
	m.elapsed += time.Since(start)
	m.cpu += cpuTime() - startCPU
	m.applied += len(evs)
}

func (m *applyMeter) report(b *testing.B) {
	b.ReportMetric(float64(m.applied)/m.elapsed.Seconds(), "events/s")
	// Events per CPU-second of this process: steadier than wall time when other work shares
	// the machine.
	b.ReportMetric(float64(m.applied)/m.cpu.Seconds(), "events/cpu-s")
}

// benchHistory is how many events BenchmarkApplyBatchSizes applies before it measures: the
// cost of a batch grows with the movements index it inserts into.
var benchHistory = flag.Int("bench-history", 300_000, "events BenchmarkApplyBatchSizes applies before measuring")

// BenchmarkApplyBatchSizes applies mixed events over 10,000 accounts in batches of several
// sizes, on read models that already hold -bench-history events: each op is 10,000 events,
// so every size applies the same events per op. It is what chose the Projector's
// BatchSizeMax (see ProjectorOptions). The sizes run from small to large, so the larger
// ones meet a slightly larger history.
func BenchmarkApplyBatchSizes(b *testing.B) {
	db := openTest(b)
	h := newHistory()
	rng := rand.New(rand.NewPCG(7, 8))
	accounts := openAccounts(b, db, h, benchAccounts)
	ctx := context.Background()
	const historyBatch, opEvents = 5000, 10_000
	for n := 0; n < *benchHistory; n += historyBatch {
		if err := db.Apply(ctx, mixedEvents(h, rng, accounts, historyBatch)); err != nil {
			b.Fatal(err)
		}
	}
	for _, size := range []int{1000, 4000, 10_000} {
		b.Run(fmt.Sprintf("batch_%d", size), func(b *testing.B) {
			var m applyMeter
			for b.Loop() {
				for done := 0; done < opEvents; done += size {
					m.apply(b, db, func() []events.Envelope { return mixedEvents(h, rng, accounts, size) })
				}
			}
			m.report(b)
		})
	}
}

// BenchmarkUsageSummary summarises an account of 100,000 usages over 100 days, interleaved
// with another account's, over one day and over all of it.
func BenchmarkUsageSummary(b *testing.B) {
	db := openTest(b)
	h := newHistory()
	rng := rand.New(rand.NewPCG(3, 4))
	const usages, days = 100_000, 100
	mustApply(b, db, h.open("big", "10"), h.open("other", "10"))
	evs := make([]events.Envelope, 0, batchSizeMaxDefault)
	for i := 0; i < usages; i++ {
		for _, a := range []string{"big", "other"} {
			ty := []string{"sms", "whatsapp", "voice_agent", "forwarded_call"}[rng.IntN(4)]
			u := usageOf(fmt.Sprintf("u-%d", i), ty, "", "0.0125", fmt.Sprintf("user-%d", rng.IntN(50)))
			u.UsedAt = t0.Add(time.Duration(i) * 24 * time.Hour / usages * days)
			evs = append(evs, h.ev(a, u))
		}
		if len(evs) >= batchSizeMaxDefault {
			mustApply(b, db, evs...)
			evs = evs[:0]
		}
	}
	mustApply(b, db, evs...)
	ctx := context.Background()
	for _, bc := range []struct {
		name     string
		from, to time.Time
	}{
		{"one_day", t0.Add(50 * 24 * time.Hour), t0.Add(51 * 24 * time.Hour)},
		{"all", time.Time{}, time.Time{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.UsageSummary(ctx, "big", bc.from, bc.to); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRebuild rebuilds the read models of 100,000 mixed events over 10,000 accounts
// from a JetStream store, reporting events/s (store read and projection together).
func BenchmarkRebuild(b *testing.B) {
	_, nc := jetstream.RunTestServer(b)
	s, err := jetstream.New(context.Background(), nc, jetstream.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := newHistory()
	rng := rand.New(rand.NewPCG(5, 6))
	accounts := make([]string, benchAccounts)
	var evs []events.Envelope
	for i := range accounts {
		accounts[i] = fmt.Sprintf("acct-%05d", i)
		evs = append(evs, h.open(accounts[i], "10"))
	}
	evs = append(evs, mixedEvents(h, rng, accounts, 100_000-len(evs))...)
	for i := 0; i < len(evs); i += 5000 {
		for _, err := range s.Append(context.Background(), evs[i:min(i+5000, len(evs))]) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	// new_file rebuilds into an empty file each time; same_file rebuilds the same file over
	// and over, as ledgerctl rebuild does on read models that are (mostly) right already.
	for _, same := range []bool{false, true} {
		name := map[bool]string{false: "new_file", true: "same_file"}[same]
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			if same {
				if err := Rebuild(context.Background(), s, filepath.Join(dir, "rm.db"), nil); err != nil {
					b.Fatal(err)
				}
			}
			var n int
			start, startCPU := time.Now(), cpuTime()
			for i := 0; b.Loop(); i++ {
				path := filepath.Join(dir, "rm.db")
				if !same {
					path = filepath.Join(dir, fmt.Sprintf("rm-%d.db", i))
				}
				if err := Rebuild(context.Background(), s, path, nil); err != nil {
					b.Fatal(err)
				}
				n += len(evs)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
			// Per CPU-second of the whole process (the embedded server's reads included):
			// steadier than wall time when other work shares the machine.
			b.ReportMetric(float64(n)/(cpuTime()-startCPU).Seconds(), "events/cpu-s")
		})
	}
}
