package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"
	"go.uber.org/zap/zaptest"

	"github.com/telephony/creditledger/consumers/ingest"
)

// ledger is a running ledgerd for a test: the real wiring of run(), in this process.
type ledger struct {
	t       *testing.T
	cfg     config
	base    string
	nc      *nats.Conn
	stop    context.CancelFunc
	stopped chan error
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func testConfig(t *testing.T, dataDir string) config {
	cfg, err := parseConfig([]string{"--data-dir", dataDir, "--http-addr", freeAddr(t), "--nats-listen", freeAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.TopUpRetryBase = 50 * time.Millisecond
	return cfg
}

// startLedger runs ledgerd in-process on cfg and waits until it is ready.
func startLedger(t *testing.T, cfg config) *ledger {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &ledger{t: t, cfg: cfg, base: "http://" + cfg.HTTPAddr, stop: cancel, stopped: make(chan error, 1)}
	go func() { l.stopped <- run(ctx, cfg, zaptest.NewLogger(t).Named(t.Name())) }()
	waitReady(t, l.base, l.stopped)
	nc, err := nats.Connect("nats://" + cfg.NATSListen)
	if err != nil {
		t.Fatal(err)
	}
	l.nc = nc
	t.Cleanup(l.Stop)
	return l
}

// Stop stops the ledger gracefully and checks it stopped without error.
func (l *ledger) Stop() {
	if l.stop == nil {
		return
	}
	l.nc.Close()
	l.stop()
	l.stop = nil
	select {
	case err := <-l.stopped:
		if err != nil {
			l.t.Errorf("ledgerd stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		l.t.Error("ledgerd did not stop within 15 s")
	}
}

func waitReady(t *testing.T, base string, stopped <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-stopped:
			t.Fatalf("ledgerd exited while starting: %v", err)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("ledgerd not ready within 30 s")
}

type response struct {
	Status int
	Body   []byte
}

func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %s", r.Status, r.Body)
	}
	return m
}

func (l *ledger) do(method, path, body string) response {
	l.t.Helper()
	return doHTTP(l.t, method, l.base+path, body, "")
}

func doHTTP(t testing.TB, method, url, body, token string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Body: b}
}

func (l *ledger) mustDo(method, path, body string, wantStatus int) map[string]any {
	l.t.Helper()
	r := l.do(method, path, body)
	if r.Status != wantStatus {
		l.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, wantStatus, r.Body)
	}
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return nil
	}
	return r.JSON(l.t)
}

func (l *ledger) openAccount(id string) {
	l.t.Helper()
	l.mustDo("PUT", "/v1/accounts/"+id, `{"currency":"USD"}`, http.StatusCreated)
}

func (l *ledger) credit(account, id, amount string) {
	l.t.Helper()
	l.mustDo("POST", "/v1/accounts/"+account+"/adjustments", fmt.Sprintf(`{"adjustment_id":%q,"amount":%q,"reason":"test credit"}`, id, amount), http.StatusCreated)
}

func usageJSON(account, usageID, amount string) string {
	return fmt.Sprintf(`{"usage_id":%q,"account_id":%q,"type":"call","reason":"fup_exceeded","occurred_at":"2026-11-24T10:15:00Z","amount":%q,"currency":"USD","user_id":"u-7","quantity":"21","unit":"minute","destination":"+447911123456"}`,
		usageID, account, amount)
}

// publishUsage publishes over JetStream as the platform does and waits for the ack.
func (l *ledger) publishUsage(account, body string) {
	l.t.Helper()
	js, err := l.nc.JetStream()
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := js.Publish("usage."+account, []byte(body)); err != nil {
		l.t.Fatalf("publish usage: %v", err)
	}
}

// publishInterleaved publishes usages u-0 ... u-(perAccount-1) of 0.01 to each of the
// accounts account(0) ... account(accounts-1), round-robin and at full speed (async, every
// publish in flight at once), and waits until USAGE has acknowledged them all: many
// ingest batches, each holding usages of every account.
func (l *ledger) publishInterleaved(accounts, perAccount int) {
	l.t.Helper()
	js, err := natsjs.New(l.nc, natsjs.WithPublishAsyncMaxPending(accounts*perAccount))
	if err != nil {
		l.t.Fatal(err)
	}
	acks := make([]natsjs.PubAckFuture, 0, accounts*perAccount)
	for u := range perAccount {
		for a := range accounts {
			f, err := js.PublishAsync(ingest.UsageSubjectPrefix+account(a), []byte(usageJSON(account(a), fmt.Sprintf("u-%d", u), "0.01")))
			if err != nil {
				l.t.Fatal(err)
			}
			acks = append(acks, f)
		}
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			l.t.Fatal(err)
		}
	}
}

// balance reads the balance from the read model.
func (l *ledger) balance(account string) decimal.Decimal {
	l.t.Helper()
	m := l.mustDo("GET", "/v1/accounts/"+account, "", http.StatusOK)
	return decimal.RequireFromString(m["balance"].(string))
}

// eventually retries check until it returns "" or the time is up.
func eventually(t testing.TB, within time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		if last = check(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not within %s: %s", within, last)
}

func (l *ledger) waitBalance(account, want string) {
	l.t.Helper()
	w := decimal.RequireFromString(want)
	eventually(l.t, 10*time.Second, func() string {
		if got := l.balance(account); !got.Equal(w) {
			return fmt.Sprintf("balance of %s is %s, want %s", account, got, want)
		}
		return ""
	})
}

func decimalOf(s string) decimal.Decimal { return decimal.RequireFromString(s) }
