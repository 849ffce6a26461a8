package topup

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/jetstream"
	"github.com/telephony/creditledger/ledger"
)

// newStore starts a real embedded NATS server and returns the JetStream store on it.
func newStore(t *testing.T) (events.Store, *server.Server) {
	t.Helper()
	srv, nc := jetstream.RunTestServer(t)
	store, err := jetstream.New(context.Background(), nc, jetstream.Options{})
	if err != nil {
		t.Fatalf("jetstream store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return store, srv
}

// newWriter opens the intake db in dir and loads a writer over store, as a process would.
func newWriter(t *testing.T, store events.Store, dir string) (*writer.Writer, *intake.DB) {
	t.Helper()
	db, err := intake.Open(filepath.Join(dir, "intake.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := writer.New(store, db, testLogger(t), writer.Options{})
	if err := w.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w, db
}

// testLogger logs warnings and errors into the test output.
func testLogger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

// running is a Manager under Run.
type running struct {
	m      *Manager
	cancel context.CancelFunc
	// done is closed when Run returned err.
	done chan struct{}
	err  error
	once sync.Once
}

// startManager runs a manager until stop or the end of the test.
func startManager(t *testing.T, w *writer.Writer, store events.Store, gw Gateway, opts Options) *running {
	t.Helper()
	m := NewManager(w, store, gw, testLogger(t), opts)
	return runManager(t, m)
}

func runManager(t *testing.T, m *Manager) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = m.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it to return; later calls do nothing.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
			if r.err != nil {
				t.Errorf("Run: %v", r.err)
			}
		case <-time.After(10 * time.Second):
			t.Error("manager did not stop within 10s")
		}
	})
}

func execute(t *testing.T, w *writer.Writer, id string, cmd ledger.Command) []events.Envelope {
	t.Helper()
	evs, err := w.Execute(context.Background(), id, cmd)
	if err != nil {
		t.Fatalf("%T on %s: %v", cmd, id, err)
	}
	return evs
}

func openAccount(t *testing.T, w *writer.Writer, id string) {
	execute(t, w, id, ledger.OpenAccount{Currency: "USD", LowBalanceThreshold: ledger.DefaultLowBalanceThreshold})
}

func configureAuto(t *testing.T, w *writer.Writer, id, threshold, amount string) {
	execute(t, w, id, ledger.ConfigureAutoTopUp{Enabled: true, Threshold: dec(threshold), Amount: dec(amount)})
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// usage builds a validated usage of amount on the account.
func usage(t testing.TB, account, id, amount string) ledger.Usage {
	raw := fmt.Sprintf(`{"usage_id":%q,"account_id":%q,"type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":%q,"currency":"USD"}`, id, account, amount)
	u, err := ledger.ParseUsage([]byte(raw))
	if err != nil {
		t.Fatalf("usage %s: %v", raw, err)
	}
	return u
}

// replay rebuilds an account from its stream in the store: the truth, whatever any
// writer holds in memory.
func replay(t testing.TB, store events.Store, id string) (*ledger.Account, []events.Envelope) {
	t.Helper()
	evs, err := store.ReadStream(context.Background(), id, 0)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	acc := ledger.NewAccount(id)
	for _, e := range evs {
		ledger.Evolve(acc, e)
	}
	return acc, evs
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// topUpOutcome is the closing event of a top-up in the stream, if any.
func topUpOutcome(evs []events.Envelope, topUpID string) events.Event {
	for _, e := range evs {
		switch d := e.Data.(type) {
		case events.TopUpSucceeded:
			if d.TopUpID == topUpID {
				return d
			}
		case events.TopUpFailed:
			if d.TopUpID == topUpID {
				return d
			}
		}
	}
	return nil
}

func ofType[T events.Event](evs []events.Envelope) []T {
	var out []T
	for _, e := range evs {
		if d, ok := e.Data.(T); ok {
			out = append(out, d)
		}
	}
	return out
}

// gatewayServer is a real HTTP payment gateway for the tests. Like a real one it is
// idempotent by key: a key it has charged gets the same payment again, not a new charge.
// The key is scoped by account_id: a top_up_id is unique only within its account
// ("auto-3" exists in every account that had auto top-ups), so a gateway keying on it
// alone would answer one account's top-up with another's payment.
// It records every call and checks the rule the manager promises: never two calls for
// one account at once.
type gatewayServer struct {
	*httptest.Server
	// decide answers a call that is not a repeat of a charged key. Default: approve.
	decide func(c gatewayCall) (status int, body string)
	delay  time.Duration
	// onCharged runs in the handler after a new charge is made, before the answer.
	onCharged func(c gatewayCall, req *http.Request)

	mu       sync.Mutex
	calls    []gatewayCall
	payments map[string]string // account_id/idempotency key -> payment id
	charged  map[string]int    // account -> charges made (repeats of a key excluded)
	inFlight map[string]string // account -> top_up_id of the call under way
	problems []string
}

// gatewayCall is one request the gateway received.
type gatewayCall struct {
	Key       string
	TopUpID   string `json:"top_up_id"`
	AccountID string `json:"account_id"`
	Amount    string `json:"amount"`
	Currency  string `json:"currency"`
	Kind      string `json:"kind"`
	Attempt   int    `json:"attempt"`
	At        time.Time
}

func newGatewayServer(t *testing.T) *gatewayServer {
	g := &gatewayServer{payments: map[string]string{}, charged: map[string]int{}, inFlight: map[string]string{}}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *gatewayServer) serve(w http.ResponseWriter, r *http.Request) {
	var c gatewayCall
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.Key, c.At = r.Header.Get("Idempotency-Key"), time.Now()
	g.begin(c)
	defer g.end(c)
	if g.delay > 0 {
		select {
		case <-time.After(g.delay):
		case <-r.Context().Done():
		}
	}
	status, body, charged := g.answer(c)
	g.mu.Lock()
	onCharged := g.onCharged
	g.mu.Unlock()
	if charged && onCharged != nil {
		onCharged(c, r)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

func (g *gatewayServer) begin(c gatewayCall) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, c)
	if c.Key != c.TopUpID {
		g.problems = append(g.problems, fmt.Sprintf("Idempotency-Key %q for top-up %q", c.Key, c.TopUpID))
	}
	if other, busy := g.inFlight[c.AccountID]; busy {
		g.problems = append(g.problems, fmt.Sprintf("account %s: charge of %s while %s is in flight", c.AccountID, c.TopUpID, other))
	}
	g.inFlight[c.AccountID] = c.TopUpID
}

func (g *gatewayServer) end(c gatewayCall) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inFlight[c.AccountID] == c.TopUpID {
		delete(g.inFlight, c.AccountID)
	}
}

// answer charges a new key (or declines it) and repeats the payment of a known key.
func (g *gatewayServer) answer(c gatewayCall) (status int, body string, charged bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := c.AccountID + "/" + c.Key
	if id, ok := g.payments[key]; ok {
		return 200, fmt.Sprintf(`{"status":"succeeded","payment_id":%q}`, id), false
	}
	if g.decide != nil {
		if status, body = g.decide(c); body != "" {
			return status, body, false
		}
	}
	id := fmt.Sprintf("pay-%d", len(g.payments)+1)
	g.payments[key] = id
	g.charged[c.AccountID]++
	return 200, fmt.Sprintf(`{"status":"succeeded","payment_id":%q}`, id), true
}

func (g *gatewayServer) setOnCharged(fn func(c gatewayCall, req *http.Request)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.onCharged = fn
}

func (g *gatewayServer) setDecide(fn func(c gatewayCall) (int, string)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.decide = fn
}

func (g *gatewayServer) snapshot() (calls []gatewayCall, payments map[string]string, problems []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gatewayCall(nil), g.calls...), maps.Clone(g.payments), append([]string(nil), g.problems...)
}

// chargesOf is how many charges the gateway made to the account (repeats excluded).
func (g *gatewayServer) chargesOf(account string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.charged[account]
}

func (g *gatewayServer) webhook(t *testing.T, opts WebhookOptions) *Webhook {
	gw, err := NewWebhook(g.URL, testLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return gw
}
