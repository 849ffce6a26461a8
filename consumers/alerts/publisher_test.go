package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events"
	ledgerjs "github.com/telephony/creditledger/events/jetstream"
	"github.com/telephony/creditledger/ledger"
)

// env is one ledger process's worth of real parts: an embedded NATS server with the
// JetStream store, a writer to make events with, and the intake db that holds the
// publisher's checkpoint.
type env struct {
	t     *testing.T
	nc    *nats.Conn
	js    natsjs.JetStream
	store events.Store
	db    *intake.DB
	w     *writer.Writer
}

func newEnv(t *testing.T) *env {
	_, nc := ledgerjs.RunTestServer(t)
	store, err := ledgerjs.New(context.Background(), nc, ledgerjs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	db, err := intake.Open(filepath.Join(t.TempDir(), "intake.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := writer.New(store, db, zap.NewNop(), writer.Options{})
	if err := w.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, nc: nc, js: js, store: store, db: db, w: w}
}

func (e *env) do(id string, cmd ledger.Command) []events.Envelope {
	e.t.Helper()
	evs, err := e.w.Execute(context.Background(), id, cmd)
	if err != nil {
		e.t.Fatalf("%T: %v", cmd, err)
	}
	return evs
}

func (e *env) adjust(id, adjustmentID, amount string) {
	e.t.Helper()
	e.do(id, ledger.ApplyAdjustment{Adjustment: events.AdjustmentApplied{AdjustmentID: adjustmentID, Amount: decimal.RequireFromString(amount), Reason: "test"}})
}

// failAutoTopUp starts an auto top-up and records its only attempt as declined.
func (e *env) failAutoTopUp(id string) {
	e.t.Helper()
	e.do(id, ledger.ConfigureAutoTopUp{Enabled: true, Threshold: decimal.NewFromInt(20), Amount: decimal.NewFromInt(100)})
	evs := e.do(id, ledger.StartAutoTopUp{DailyMax: 10})
	if len(evs) != 1 {
		e.t.Fatal("no auto top-up started")
	}
	topUpID := evs[0].Data.(events.TopUpRequested).TopUpID
	e.do(id, ledger.RecordPaymentAttempt{TopUpID: topUpID, Attempt: 1, Reason: "card_declined", MaxAttempts: 1, RetryDelayBase: time.Minute})
}

// listener collects what a core NATS subscriber of ledger.alerts.* receives.
type listener struct {
	mu  sync.Mutex
	got []Alert
}

func (e *env) listen() *listener {
	l := &listener{}
	sub, err := e.nc.Subscribe(SubjectPrefix+"*", func(m *nats.Msg) {
		var a Alert
		if err := json.Unmarshal(m.Data, &a); err != nil {
			e.t.Errorf("alert body %s: %v", m.Data, err)
		}
		if m.Subject != Subject(a.AccountID) {
			e.t.Errorf("alert of %s on subject %s", a.AccountID, m.Subject)
		}
		l.mu.Lock()
		l.got = append(l.got, a)
		l.mu.Unlock()
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (l *listener) alerts() []Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Alert(nil), l.got...)
}

// running is a Publisher under Run.
type running struct {
	p      *Publisher
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (e *env) start(configure func(*Publisher)) *running {
	p := NewPublisher(e.store, e.js, e.db, zaptest.NewLogger(e.t, zaptest.Level(zap.WarnLevel)), Options{})
	if configure != nil {
		configure(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = p.Run(ctx)
		close(r.done)
	}()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop ends Run and returns its error.
func (r *running) stop(t *testing.T) error {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("publisher did not stop")
	}
	return r.err
}

// caughtUp waits until the publisher has handled every event in the store.
func (e *env) caughtUp(r *running) {
	e.t.Helper()
	head, err := e.store.Head(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	waitFor(e.t, "the publisher to reach the store head", func() bool { return r.p.Stats.Position.Load() >= head })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle gives stray repeats a moment to arrive before the listener is checked.
func settle() { time.Sleep(100 * time.Millisecond) }

// streamCount is how many alerts the ALERTS stream holds.
func (e *env) streamCount() uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), StreamName)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

type want struct{ alert, previous, balance, message string }

func checkAlerts(t *testing.T, got []Alert, account string, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d alerts %+v, want %d", len(got), got, len(wants))
	}
	for i, w := range wants {
		g := got[i]
		if g.AccountID != account || g.Alert != w.alert || g.Previous != w.previous || g.Balance != w.balance || g.Message != w.message || g.At.IsZero() {
			t.Errorf("alert %d = %+v, want %+v", i, g, w)
		}
	}
}

var (
	wantOK        = want{"ok", "depleted", "50", ledger.MessageOK}
	wantLow       = want{"low", "ok", "5", ledger.MessageLow}
	wantDepleted  = want{"depleted", "low", "-5", ledger.MessageDepleted}
	wantFailed    = want{"auto_top_up_failed", "depleted", "-5", "Auto top-up failed: card_declined"}
	wantSuspended = want{"auto_top_up_suspended", "depleted", "-5", "Auto top-up suspended until the settings are saved again: card_declined"}
	wantBackOK    = want{"ok", "depleted", "95", ledger.MessageOK}
)

// history makes the events behind wantOK .. wantSuspended on account acme.
func (e *env) history() {
	e.do("acme", ledger.OpenAccount{Currency: "USD", LowBalanceThreshold: decimal.NewFromInt(10)}) // depleted, no alert
	e.adjust("acme", "adj-1", "50")                                                                // ok
	e.adjust("acme", "adj-2", "-45")                                                               // low
	e.adjust("acme", "adj-3", "-10")                                                               // depleted
	e.failAutoTopUp("acme")                                                                        // failed, suspended
}

func TestPublisherPublishesEachAlertOnceAndNothingAgainAfterARestart(t *testing.T) {
	e := newEnv(t)
	l := e.listen()
	e.history()
	first := e.start(nil)
	e.caughtUp(first)
	waitFor(t, "five alerts", func() bool { return len(l.alerts()) >= 5 })
	settle()
	checkAlerts(t, l.alerts(), "acme", []want{wantOK, wantLow, wantDepleted, wantFailed, wantSuspended})
	if err := first.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// While the publisher is down the account is credited back above the threshold.
	e.adjust("acme", "adj-4", "100")
	second := e.start(nil)
	e.caughtUp(second)
	waitFor(t, "the alert missed while down", func() bool { return len(l.alerts()) >= 6 })
	settle()
	checkAlerts(t, l.alerts(), "acme", []want{wantOK, wantLow, wantDepleted, wantFailed, wantSuspended, wantBackOK})

	// And live, while it runs.
	e.adjust("acme", "adj-5", "-90")
	waitFor(t, "the live alert", func() bool { return len(l.alerts()) >= 7 })
	settle()
	checkAlerts(t, l.alerts(), "acme", []want{wantOK, wantLow, wantDepleted, wantFailed, wantSuspended, wantBackOK, wantLow})
	if n := e.streamCount(); n != 7 {
		t.Errorf("ALERTS holds %d alerts, want 7", n)
	}
	if got := second.p.Stats.Published.Load(); got != 2 {
		t.Errorf("the restarted publisher published %d, want 2", got)
	}
}

// A crash after alerts were acknowledged and before the checkpoint moved: the restart
// derives the same alerts again and publishes none of them twice.
func TestPublisherCrashBeforeTheCheckpointRepeatsNothing(t *testing.T) {
	tests := []struct {
		name  string
		crash func(p *Publisher)
	}{
		{name: "after both alerts of an event", crash: func(p *Publisher) {
			p.beforeCheckpoint = func(uint64) error {
				if p.Stats.Published.Load() == 5 {
					return errors.New("crash before the checkpoint")
				}
				return nil
			}
		}},
		{name: "between the two alerts of an event", crash: func(p *Publisher) {
			p.afterPublish = func(a Alert) error {
				if a.Alert == ledger.AlertAutoTopUpFailed {
					return errors.New("crash after the first alert")
				}
				return nil
			}
		}},
		{name: "after a level change", crash: func(p *Publisher) {
			p.afterPublish = func(a Alert) error {
				if a.Alert == ledger.AlertLow {
					return errors.New("crash after the low alert")
				}
				return nil
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			l := e.listen()
			e.history()
			first := e.start(tt.crash)
			select {
			case <-first.done:
			case <-time.After(10 * time.Second):
				t.Fatal("no crash")
			}
			if !errors.Is(first.err, errCrash) {
				t.Fatalf("Run returned %v, want the crash", first.err)
			}
			second := e.start(nil)
			e.caughtUp(second)
			waitFor(t, "five alerts", func() bool { return len(l.alerts()) >= 5 })
			settle()
			checkAlerts(t, l.alerts(), "acme", []want{wantOK, wantLow, wantDepleted, wantFailed, wantSuspended})
			if n := e.streamCount(); n != 5 {
				t.Errorf("ALERTS holds %d alerts, want 5", n)
			}
		})
	}
}

// The stream's duplicate window is the last guard: the same alert id published twice is
// stored once. (A core subscriber does see both publishes, which is why the publisher
// looks at the stream before publishing an event's alerts again after a restart.)
func TestStreamDropsARepeatedAlert(t *testing.T) {
	e := newEnv(t)
	e.history()
	p := NewPublisher(e.store, e.js, e.db, zap.NewNop(), Options{})
	ctx := context.Background()
	if _, err := EnsureStream(ctx, e.js, Options{}); err != nil {
		t.Fatal(err)
	}
	ev := events.Envelope{ID: events.NewID("acme", 2, events.AdjustmentApplied{AdjustmentID: "adj-1"}), AccountID: "acme"}
	al := Alert{AccountID: "acme", Alert: "ok", Previous: "depleted", Balance: "50", Message: ledger.MessageOK}
	for range 2 {
		if err := p.publish(ctx, ev, al); err != nil {
			t.Fatal(err)
		}
	}
	if p.Stats.Published.Load() != 1 || p.Stats.Duplicates.Load() != 1 || e.streamCount() != 1 {
		t.Errorf("published %d, duplicates %d, stored %d; want 1, 1, 1",
			p.Stats.Published.Load(), p.Stats.Duplicates.Load(), e.streamCount())
	}
}
