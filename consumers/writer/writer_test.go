package writer

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shopspring/decimal"
	"go.uber.org/zap/zaptest"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/jetstream"
	"github.com/telephony/creditledger/ledger"
)

func newStore(t *testing.T) (events.Store, func() events.Store) {
	srv, nc := jetstream.RunTestServer(t)
	open := func() events.Store {
		s, err := jetstream.New(context.Background(), jetstream.ConnectTestServer(t, srv), jetstream.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s, err := jetstream.New(context.Background(), nc, jetstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, open
}

func newWriter(t *testing.T, store events.Store) *Writer {
	db, err := intake.Open(filepath.Join(t.TempDir(), "intake.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := New(store, db, zaptest.NewLogger(t), Options{})
	if err := w.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

func usage(t testing.TB, account, id, amount string) ledger.Usage {
	u, err := ledger.ParseUsage([]byte(fmt.Sprintf(`{"usage_id":%q,"account_id":%q,"type":"sms","occurred_at":"2026-11-24T10:00:00Z","amount":%q,"currency":"USD"}`, id, account, amount)))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func open(t *testing.T, w *Writer, ids ...string) {
	for _, id := range ids {
		if _, err := w.Execute(context.Background(), id, ledger.OpenAccount{Currency: "USD", LowBalanceThreshold: decimal.NewFromInt(10)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEachUsageChargedOnceUnderRaces: two writers (two processes' worth of state and
// usage index) over one store, many goroutines each, all sending the same usages in
// different batches and orders. Every usage is charged exactly once.
func TestEachUsageChargedOnceUnderRaces(t *testing.T) {
	store, openStore := newStore(t)
	w1 := newWriter(t, store)
	accounts := []string{"a", "b", "c"}
	open(t, w1, accounts...)
	w2 := newWriter(t, openStore()) // loads after the accounts exist, like a second process
	const usages, goroutines = 60, 12
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		w := []*Writer{w1, w2}[g%2]
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for start := g % 5; start < usages; start += 5 {
				var batch []ledger.Usage
				for i := start; i < min(start+7, usages); i++ {
					for _, a := range accounts {
						batch = append(batch, usage(t, a, fmt.Sprintf("u-%d", i), "0.01"))
					}
				}
				for i, err := range w.ChargeUsages(context.Background(), batch) {
					if err != nil {
						t.Errorf("goroutine %d: usage %s: %v", g, batch[i].Charge.UsageID, err)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	for _, a := range accounts {
		evs, err := store.ReadStream(context.Background(), a, 0)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range evs {
			if u, ok := e.Data.(events.UsageCharged); ok {
				seen[u.UsageID]++
			}
		}
		if len(seen) != usages || len(evs) != usages+1 {
			t.Errorf("account %s: %d distinct usages in %d events, want %d and %d", a, len(seen), len(evs), usages, usages+1)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("account %s: usage %s charged %d times", a, id, n)
			}
		}
	}
	// Each writer's view converges on the store's truth once it has seen the latest events.
	for _, w := range []*Writer{w1, w2} {
		for _, a := range accounts {
			if err := w.CatchUp(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			if v, _ := w.View(a); !v.Balance.Equal(decimal.RequireFromString("-0.6")) {
				t.Errorf("account %s balance %s, want -0.6", a, v.Balance)
			}
		}
	}
}

func TestConflictingDuplicateAndRestart(t *testing.T) {
	store, _ := newStore(t)
	db, err := intake.Open(filepath.Join(t.TempDir(), "intake.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := New(store, db, zaptest.NewLogger(t), Options{})
	if err := w.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	open(t, w, "acme")
	errs := w.ChargeUsages(context.Background(), []ledger.Usage{usage(t, "acme", "u1", "1"), usage(t, "acme", "u1", "2"), usage(t, "ghost", "u1", "1")})
	if errs[0] != nil || ledger.ErrorReason(errs[1]) != "conflicting_duplicate" || ledger.ErrorReason(errs[2]) != "account_not_found" {
		t.Fatalf("outcomes %v", errs)
	}
	// A new writer (a restart) on the same index: a week-old duplicate is still recognised,
	// from the durable index rather than any window.
	w2 := New(store, db, zaptest.NewLogger(t), Options{})
	if err := w2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	errs = w2.ChargeUsages(context.Background(), []ledger.Usage{usage(t, "acme", "u1", "1.0000"), usage(t, "acme", "u1", "3")})
	if errs[0] != nil || ledger.ErrorReason(errs[1]) != "conflicting_duplicate" {
		t.Fatalf("after restart: %v", errs)
	}
	if v, _ := w2.View("acme"); !v.Balance.Equal(decimal.NewFromInt(-1)) || v.Version != 2 {
		t.Fatalf("view %+v", v)
	}
}

// TestIndexHealsAfterCrash: the usage was appended but the index write never happened
// (a crash in between). Load re-indexes it from the stream before accepting new usage.
func TestIndexHealsAfterCrash(t *testing.T) {
	store, _ := newStore(t)
	w := newWriter(t, store)
	open(t, w, "acme")
	// Append a usage charge straight to the store, as if the writer died after the append.
	u := usage(t, "acme", "u1", "4")
	acct, _ := w.Account("acme")
	evs, err := ledger.Decide(acct, ledger.ChargeUsage{Charge: u.Charge}, acct.UpdatedAt)
	if err != nil {
		t.Fatal(err)
	}
	if errs := store.Append(context.Background(), evs); errs[0] != nil {
		t.Fatal(errs[0])
	}
	w2 := newWriter(t, store) // a fresh index, as after losing it: Load heals it
	if errs := w2.ChargeUsages(context.Background(), []ledger.Usage{u}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if v, _ := w2.View("acme"); !v.Balance.Equal(decimal.NewFromInt(-4)) {
		t.Fatalf("balance %s: the usage was charged twice", v.Balance)
	}
}

func TestAdjustmentRefundCapUsesTheIndex(t *testing.T) {
	store, _ := newStore(t)
	w := newWriter(t, store)
	open(t, w, "acme")
	w.ChargeUsages(context.Background(), []ledger.Usage{usage(t, "acme", "call-1", "0.42")})
	refund := func(id, amount string) error {
		_, err := w.Execute(context.Background(), "acme", ledger.ApplyAdjustment{Adjustment: events.AdjustmentApplied{
			AdjustmentID: id, Amount: decimal.RequireFromString(amount), Reason: "dispute", UsageID: "call-1"}})
		return err
	}
	if err := refund("r1", "0.42"); err != nil {
		t.Fatal(err)
	}
	if err := refund("r2", "0.01"); ledger.ErrorCode(err) != ledger.EUNPROCESSABLE {
		t.Fatalf("over-refund: %v", err)
	}
}
