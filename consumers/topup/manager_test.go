package topup

import (
	"testing"
	"time"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// fastOptions make retries quick enough for tests.
func fastOptions() Options {
	return Options{RetryDelayBase: 20 * time.Millisecond, ErrorRetryDelay: 20 * time.Millisecond, WorkersMax: 4}
}

func TestManagerPaysAOneTimeTopUp(t *testing.T) {
	store, _ := newStore(t)
	w, _ := newWriter(t, store, t.TempDir())
	gw := newGatewayServer(t)
	openAccount(t, w, "acme")
	startManager(t, w, store, gw.webhook(t, WebhookOptions{}), fastOptions())

	execute(t, w, "acme", ledger.RequestTopUp{TopUpID: "tu-1", Amount: dec("50")})

	eventually(t, 10*time.Second, "the top-up to succeed", func() bool {
		_, evs := replay(t, store, "acme")
		return topUpOutcome(evs, "tu-1") != nil
	})
	acc, evs := replay(t, store, "acme")
	got, ok := topUpOutcome(evs, "tu-1").(events.TopUpSucceeded)
	if !ok || got.Attempt != 1 || got.PaymentID != "pay-1" || !got.Amount.Equal(dec("50")) {
		t.Fatalf("outcome %+v, want succeeded at attempt 1 with pay-1", topUpOutcome(evs, "tu-1"))
	}
	if !acc.Balance.Equal(dec("50")) || acc.Pending != nil {
		t.Errorf("balance %s, pending %+v; want 50 and none", acc.Balance, acc.Pending)
	}
	calls, _, problems := gw.snapshot()
	if len(calls) != 1 || calls[0].Key != "tu-1" || calls[0].Attempt != 1 || calls[0].Kind != events.TopUpOneTime || calls[0].Amount != "50" {
		t.Errorf("gateway calls %+v", calls)
	}
	if len(problems) > 0 {
		t.Errorf("gateway saw: %v", problems)
	}
}

func TestManagerDeclinedAutoTopUpFailsSuspendsAndSavingSettingsResumes(t *testing.T) {
	store, _ := newStore(t)
	w, _ := newWriter(t, store, t.TempDir())
	gw := newGatewayServer(t)
	gw.setDecide(func(gatewayCall) (int, string) { return 402, `{"status":"declined","reason":"card_declined"}` })
	openAccount(t, w, "acme")
	configureAuto(t, w, "acme", "20", "100") // balance 0 < 20: due at once
	r := startManager(t, w, store, gw.webhook(t, WebhookOptions{}), fastOptions())

	eventually(t, 10*time.Second, "the auto top-up to fail", func() bool {
		acc, _ := replay(t, store, "acme")
		return acc.AutoTopUp.Suspended
	})
	acc, evs := replay(t, store, "acme")
	requested := ofType[events.TopUpRequested](evs)
	if len(requested) != 1 || requested[0].Kind != events.TopUpAuto {
		t.Fatalf("requested %+v, want one auto top-up", requested)
	}
	id := requested[0].TopUpID
	failed, ok := topUpOutcome(evs, id).(events.TopUpFailed)
	if !ok || failed.Reason != "card_declined" || failed.Attempts != 3 || !failed.Suspended {
		t.Fatalf("outcome %+v, want failed after 3 attempts with card_declined, suspended", topUpOutcome(evs, id))
	}
	if acc.AutoTopUp.LastFailure != "card_declined" || !acc.Balance.IsZero() {
		t.Errorf("auto top-up %+v, balance %s", acc.AutoTopUp, acc.Balance)
	}
	checkRetrySpacing(t, gw, id)

	// Suspended: the balance stays below the threshold and nothing starts.
	time.Sleep(150 * time.Millisecond)
	if _, evs := replay(t, store, "acme"); len(ofType[events.TopUpRequested](evs)) != 1 {
		t.Fatalf("a suspended auto top-up started again")
	}
	if r.m.Stats.Failed.Load() != 1 || r.m.Stats.AttemptsFailed.Load() != 2 {
		t.Errorf("stats failed %d, attempts failed %d; want 1 and 2", r.m.Stats.Failed.Load(), r.m.Stats.AttemptsFailed.Load())
	}

	// Saving the settings again lifts the suspension; the card works now.
	gw.setDecide(nil)
	configureAuto(t, w, "acme", "20", "100")
	eventually(t, 10*time.Second, "the next auto top-up to succeed", func() bool {
		acc, _ := replay(t, store, "acme")
		return acc.Balance.Equal(dec("100"))
	})
	acc, evs = replay(t, store, "acme")
	if n := len(ofType[events.TopUpSucceeded](evs)); n != 1 || acc.AutoTopUp.Suspended || acc.Pending != nil {
		t.Errorf("%d succeeded, suspended %v, pending %+v", n, acc.AutoTopUp.Suspended, acc.Pending)
	}
}

// checkRetrySpacing checks loosely that each wait between attempts of a top-up is at
// least the scheduled delay (base, then doubled) and grows.
func checkRetrySpacing(t *testing.T, gw *gatewayServer, topUpID string) {
	t.Helper()
	calls, _, problems := gw.snapshot()
	var at []time.Time
	for i, c := range calls {
		if c.TopUpID != topUpID {
			continue
		}
		if c.Attempt != len(at)+1 {
			t.Errorf("call %d has attempt %d, want %d", i, c.Attempt, len(at)+1)
		}
		at = append(at, c.At)
	}
	if len(at) != 3 {
		t.Fatalf("%d attempts of %s, want 3", len(at), topUpID)
	}
	first, second := at[1].Sub(at[0]), at[2].Sub(at[1])
	if first < 20*time.Millisecond || second < 40*time.Millisecond || second <= first/2 {
		t.Errorf("attempt spacing %s then %s; want >= 20ms then >= 40ms (doubling)", first, second)
	}
	if len(problems) > 0 {
		t.Errorf("gateway saw: %v", problems)
	}
}

func TestManagerGatewayFailuresAreUnavailable(t *testing.T) {
	tests := []struct {
		name    string
		account string
		setup   func(*gatewayServer)
	}{
		{name: "status 500", account: "acct-500", setup: func(g *gatewayServer) {
			g.setDecide(func(gatewayCall) (int, string) { return 500, `{"error":"boom"}` })
		}},
		{name: "slow beyond the timeout", account: "acct-slow", setup: func(g *gatewayServer) { g.delay = 300 * time.Millisecond }},
	}
	store, _ := newStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := newWriter(t, store, t.TempDir())
			gw := newGatewayServer(t)
			tt.setup(gw)
			opts := fastOptions()
			opts.MaxAttempts = 2
			id := tt.account
			openAccount(t, w, id)
			startManager(t, w, store, gw.webhook(t, WebhookOptions{Timeout: 50 * time.Millisecond}), opts)
			execute(t, w, id, ledger.RequestTopUp{TopUpID: "tu-1", Amount: dec("5")})
			eventually(t, 10*time.Second, "the top-up to fail", func() bool {
				_, evs := replay(t, store, id)
				return topUpOutcome(evs, "tu-1") != nil
			})
			acc, evs := replay(t, store, id)
			failed, ok := topUpOutcome(evs, "tu-1").(events.TopUpFailed)
			if !ok || failed.Reason != ReasonGatewayUnavailable || failed.Attempts != 2 || failed.Suspended {
				t.Errorf("outcome %+v, want failed after 2 attempts as gateway_unavailable, not suspended (one-time)", topUpOutcome(evs, "tu-1"))
			}
			if !acc.Balance.IsZero() || acc.AutoTopUp.Suspended {
				t.Errorf("balance %s, suspended %v", acc.Balance, acc.AutoTopUp.Suspended)
			}
		})
	}
}
