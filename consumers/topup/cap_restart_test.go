package topup

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

func TestManagerStopsAtTheDailyCap(t *testing.T) {
	store, _ := newStore(t)
	w, _ := newWriter(t, store, t.TempDir())
	gw := newGatewayServer(t)
	openAccount(t, w, "acme")
	configureAuto(t, w, "acme", "50", "10") // from 0, five top-ups of 10 would be needed
	opts := fastOptions()
	opts.AutoTopUpDailyMax = 3
	r := startManager(t, w, store, gw.webhook(t, WebhookOptions{}), opts)

	eventually(t, 10*time.Second, "three auto top-ups", func() bool {
		acc, _ := replay(t, store, "acme")
		return acc.Balance.Equal(dec("30")) && acc.Pending == nil
	})
	// Usage pulls the balance down again: still capped.
	if errs := w.ChargeUsages(context.Background(), []ledger.Usage{usage(t, "acme", "u-1", "25")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	time.Sleep(200 * time.Millisecond)
	acc, evs := replay(t, store, "acme")
	if n := len(ofType[events.TopUpRequested](evs)); n != 3 || !acc.Balance.Equal(dec("5")) {
		t.Errorf("%d top-ups, balance %s; want 3 (the cap) and 5", n, acc.Balance)
	}
	if got := r.m.Stats.AutoTopUpsStarted.Load(); got != 3 {
		t.Errorf("AutoTopUpsStarted = %d, want 3", got)
	}
}

func TestDailyCapEnds(t *testing.T) {
	start := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	// An account with auto top-up on, below its threshold, and auto top-ups started at
	// start, start+1h and start+2h (each succeeded).
	acc := ledger.NewAccount("acme")
	version := uint64(0)
	apply := func(at time.Time, d events.Event) {
		version++
		ledger.Evolve(acc, events.Envelope{AccountID: "acme", Version: version, RecordedAt: at, Data: d})
	}
	apply(start, events.AccountOpened{Currency: "USD", LowBalanceThreshold: dec("10")})
	apply(start, events.AutoTopUpConfigured{Enabled: true, Threshold: dec("1000"), Amount: dec("10")})
	for i := range 3 {
		at := start.Add(time.Duration(i) * time.Hour)
		id := "auto-" + string(rune('a'+i))
		apply(at, events.TopUpRequested{TopUpID: id, Kind: events.TopUpAuto, Amount: dec("10")})
		apply(at, events.TopUpSucceeded{TopUpID: id, Amount: dec("10"), Attempt: 1})
	}
	now := start.Add(3 * time.Hour)
	tests := []struct {
		name       string
		give       int
		wantCapped bool
		wantAt     time.Time
	}{
		{name: "under the cap: due, not capped", give: 4},
		{name: "at the cap: the oldest leaves the window", give: 3, wantCapped: true, wantAt: start.Add(24 * time.Hour)},
		{name: "two over: the second oldest", give: 1, wantCapped: true, wantAt: start.Add(26 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, capped := dailyCapEnds(acc, now, tt.give)
			if capped != tt.wantCapped {
				t.Fatalf("capped = %v, want %v", capped, tt.wantCapped)
			}
			if capped && (at.Before(tt.wantAt) || at.After(tt.wantAt.Add(time.Second))) {
				t.Errorf("ends at %s, want %s (to the second)", at, tt.wantAt)
			}
			if capped && !ledger.AutoTopUpDue(acc, at, tt.give) {
				t.Errorf("not due at the time the cap ends")
			}
		})
	}
}

// A payment is charged, then the manager dies before recording the outcome. After the
// restart the attempt is made again with the same top_up_id: the gateway repeats the
// payment it made instead of charging again, and the credit is applied once.
func TestManagerRestartInTheMiddleOfAPayment(t *testing.T) {
	store, _ := newStore(t)
	dir := t.TempDir()
	w1, db1 := newWriter(t, store, dir)
	gw := newGatewayServer(t)
	openAccount(t, w1, "acme")

	// The gateway charges, then the manager's context is cancelled from inside the
	// handler, and the answer goes out only once the caller has hung up.
	var first *running
	gw.setOnCharged(func(c gatewayCall, req *http.Request) {
		first.cancel()
		<-req.Context().Done()
	})
	first = startManager(t, w1, store, gw.webhook(t, WebhookOptions{}), fastOptions())
	execute(t, w1, "acme", ledger.RequestTopUp{TopUpID: "tu-1", Amount: dec("50")})
	select {
	case <-first.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the manager did not stop at the crash")
	}
	m1 := first.m
	gw.onCharged = nil
	if _, payments, _ := gw.snapshot(); payments["acme/tu-1"] == "" {
		t.Fatal("the gateway did not charge before the crash")
	}
	acc, evs := replay(t, store, "acme")
	if topUpOutcome(evs, "tu-1") != nil || acc.Pending == nil || acc.Pending.Attempts != 0 {
		t.Fatalf("outcome recorded before the crash: %+v", evs)
	}
	if m1.Stats.Abandoned.Load() != 1 {
		t.Errorf("Abandoned = %d, want 1", m1.Stats.Abandoned.Load())
	}

	// The restart: a new process on the same store and intake directory.
	db1.Close()
	w2, _ := newWriter(t, store, dir)
	startManager(t, w2, store, gw.webhook(t, WebhookOptions{}), fastOptions())
	eventually(t, 10*time.Second, "the resumed top-up to succeed", func() bool {
		_, evs := replay(t, store, "acme")
		return topUpOutcome(evs, "tu-1") != nil
	})
	acc, evs = replay(t, store, "acme")
	got, ok := topUpOutcome(evs, "tu-1").(events.TopUpSucceeded)
	calls, payments, problems := gw.snapshot()
	if !ok || got.PaymentID != payments["acme/tu-1"] || got.Attempt != 1 {
		t.Errorf("outcome %+v, want succeeded with the payment made before the crash (%s)", topUpOutcome(evs, "tu-1"), payments["acme/tu-1"])
	}
	if !acc.Balance.Equal(dec("50")) || len(ofType[events.TopUpSucceeded](evs)) != 1 {
		t.Errorf("balance %s; want the credit applied once (50)", acc.Balance)
	}
	if len(calls) != 2 || calls[0].Key != "tu-1" || calls[1].Key != "tu-1" || len(payments) != 1 || gw.chargesOf("acme") != 1 {
		t.Errorf("gateway calls %+v, payments %v; want two calls with key tu-1 and one charge", calls, payments)
	}
	if len(problems) > 0 {
		t.Errorf("gateway saw: %v", problems)
	}
}

// A top-up requested by another process whose manager never pays it (it died) is taken
// over after OrphanAfter past its due attempt. This writer learns of the top-up only
// from the store, so it also has to catch up before deciding.
func TestManagerTakesOverAnOrphanedTopUp(t *testing.T) {
	store, _ := newStore(t)
	other, _ := newWriter(t, store, t.TempDir()) // a process without a manager
	openAccount(t, other, "acme")
	w, _ := newWriter(t, store, t.TempDir())
	gw := newGatewayServer(t)
	opts := fastOptions()
	opts.OrphanAfter = 100 * time.Millisecond
	r := startManager(t, w, store, gw.webhook(t, WebhookOptions{}), opts)
	// Once the manager follows the store, the request reaches it only from there.
	eventually(t, 10*time.Second, "the manager to start", func() bool { return r.m.Stats.Position.Load() > 0 })
	requestedAt := time.Now()
	execute(t, other, "acme", ledger.RequestTopUp{TopUpID: "tu-1", Amount: dec("30")})

	eventually(t, 10*time.Second, "the orphan to be paid", func() bool {
		_, evs := replay(t, store, "acme")
		return topUpOutcome(evs, "tu-1") != nil
	})
	calls, _, _ := gw.snapshot()
	if len(calls) != 1 || calls[0].At.Sub(requestedAt) < opts.OrphanAfter {
		t.Errorf("gateway calls %+v; want one, at least %s after the request", calls, opts.OrphanAfter)
	}
	if acc, ok := w.Account("acme"); !ok || !acc.Balance.Equal(dec("30")) || acc.Pending != nil {
		t.Errorf("writer state %+v; want the credit of 30 and nothing pending", acc)
	}
	if r.m.Stats.Paying.Load() != 0 {
		t.Errorf("Paying = %d after the top-up closed, want 0", r.m.Stats.Paying.Load())
	}
}
