package topup

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// At most one pending top-up per account is a rule of the stream, not of a lock in one
// process: two writers (two processes, each with its own intake db and its own manager)
// race hundreds of usage charges across the auto top-up threshold of a few accounts,
// and a slow gateway checks that no account ever has two charges in flight.
func TestAtMostOnePendingTopUpUnderRacingWriters(t *testing.T) {
	const (
		accounts         = 4
		usagesPerAccount = 100
		usageAmount      = "1.5"
		threshold        = "50"
		topUpAmount      = "20"
		chargers         = 16
	)
	store, _ := newStore(t)
	wA, _ := newWriter(t, store, t.TempDir())
	ids := make([]string, accounts)
	for i := range ids {
		ids[i] = fmt.Sprintf("acct-%d", i)
		openAccount(t, wA, ids[i])
		configureAuto(t, wA, ids[i], threshold, topUpAmount)
	}
	wB, _ := newWriter(t, store, t.TempDir()) // loaded after the accounts exist
	gw := newGatewayServer(t)
	gw.delay = 15 * time.Millisecond
	opts := fastOptions()
	opts.AutoTopUpDailyMax = 1000
	mA := startManager(t, wA, store, gw.webhook(t, WebhookOptions{}), opts)
	mB := startManager(t, wB, store, gw.webhook(t, WebhookOptions{}), opts)
	// Both managers live before any usage: a manager's start-up scan adopts every pending
	// top-up (it assumes the restart of the process that was paying it), so a manager
	// still starting while the other pays would call the gateway for the same top-up
	// too. That is the documented cost of a start beside a live process, not this test's
	// subject.
	for _, r := range []*running{mA, mB} {
		select {
		case <-r.m.scanned:
		case <-time.After(10 * time.Second):
			t.Fatal("a manager did not start")
		}
	}

	chargeConcurrently(t, []*writer.Writer{wA, wB}, ids, usagesPerAccount, usageAmount, chargers)

	usageTotal := decimal.RequireFromString(usageAmount).Mul(decimal.NewFromInt(usagesPerAccount))
	eventually(t, 30*time.Second, "every account topped up back over the threshold", func() bool {
		for _, id := range ids {
			acc, _ := replay(t, store, id)
			if acc.Pending != nil || acc.Balance.LessThan(dec(threshold)) {
				return false
			}
		}
		return true
	})
	mA.stop(t)
	mB.stop(t)

	calls, payments, problems := gw.snapshot()
	for _, p := range problems {
		t.Error("gateway:", p)
	}
	for _, id := range ids {
		acc, evs := replay(t, store, id)
		checkOnePendingAtATime(t, id, evs)
		succeeded := ofType[events.TopUpSucceeded](evs)
		if n := len(ofType[events.UsageCharged](evs)); n != usagesPerAccount {
			t.Errorf("%s: %d usages charged, want %d", id, n, usagesPerAccount)
		}
		// The gateway's own books: what it charged this account.
		paid := decimal.Zero
		for _, s := range succeeded {
			if payments[id+"/"+s.TopUpID] != s.PaymentID {
				t.Errorf("%s: top-up %s recorded payment %q, the gateway made %q", id, s.TopUpID, s.PaymentID, payments[id+"/"+s.TopUpID])
			}
			paid = paid.Add(s.Amount)
		}
		if got := gw.chargesOf(id); got != len(succeeded) {
			t.Errorf("%s: gateway charged %d times, %d top-ups succeeded", id, got, len(succeeded))
		}
		want := paid.Sub(usageTotal)
		if !acc.Balance.Equal(want) {
			t.Errorf("%s: balance %s, want %s (top-ups %s - usage %s)", id, acc.Balance, want, paid, usageTotal)
		}
	}
	t.Logf("%d gateway calls, %d payments; auto top-ups started by A %d, by B %d",
		len(calls), len(payments), mA.m.Stats.AutoTopUpsStarted.Load(), mB.m.Stats.AutoTopUpsStarted.Load())
}

// chargeConcurrently charges usagesPerAccount usages on every account from many
// goroutines, in small batches, alternating between the writers. A batch that fails for
// a passing reason (too many lost races) is charged again: charging is exactly-once.
func chargeConcurrently(t *testing.T, writers []*writer.Writer, ids []string, usagesPerAccount int, amount string, goroutines int) {
	t.Helper()
	type batch []ledger.Usage
	var batches []batch
	for n := 0; n < usagesPerAccount; n += 2 {
		var b batch
		for _, id := range ids {
			b = append(b, usage(t, id, fmt.Sprintf("u-%d", n), amount), usage(t, id, fmt.Sprintf("u-%d", n+1), amount))
		}
		batches = append(batches, b)
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range work {
				chargeUntilDone(t, writers[(g+i)%len(writers)], batches[i])
			}
		})
	}
	for i := range batches {
		work <- i
	}
	close(work)
	wg.Wait()
}

func chargeUntilDone(t *testing.T, w *writer.Writer, usages []ledger.Usage) {
	for try := 0; ; try++ {
		var again []ledger.Usage
		for i, err := range w.ChargeUsages(context.Background(), usages) {
			switch {
			case err == nil:
			case ledger.ErrorCode(err) != "":
				t.Errorf("usage %s/%s rejected: %v", usages[i].AccountID, usages[i].Charge.UsageID, err)
			default:
				again = append(again, usages[i])
			}
		}
		if len(again) == 0 {
			return
		}
		if try > 50 {
			t.Errorf("%d usages still not charged after %d tries", len(again), try)
			return
		}
		usages = again
	}
}

// checkOnePendingAtATime reads the stream in order: a top-up may only be requested when
// the previous one has succeeded or failed.
func checkOnePendingAtATime(t *testing.T, id string, evs []events.Envelope) {
	t.Helper()
	pending := ""
	for _, e := range evs {
		switch d := e.Data.(type) {
		case events.TopUpRequested:
			if pending != "" {
				t.Errorf("%s v%d: top-up %s requested while %s is pending", id, e.Version, d.TopUpID, pending)
			}
			pending = d.TopUpID
		case events.TopUpSucceeded:
			pending = closeTopUp(t, id, pending, d.TopUpID)
		case events.TopUpFailed:
			pending = closeTopUp(t, id, pending, d.TopUpID)
		}
	}
}

func closeTopUp(t *testing.T, id, pending, closed string) string {
	if closed != pending {
		t.Errorf("%s: top-up %s closed while %q is pending", id, closed, pending)
	}
	return ""
}
