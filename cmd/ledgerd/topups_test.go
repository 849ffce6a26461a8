package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// gatewayServer is a real HTTP payment gateway for tests: it answers with the status and
// body the test sets, and remembers every charge by its Idempotency-Key.
type gatewayServer struct {
	*httptest.Server
	mu      sync.Mutex
	status  int
	body    string
	charges map[string]int
}

func newGateway(t *testing.T, status int, body string) *gatewayServer {
	g := &gatewayServer{status: status, body: body, charges: map[string]int{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.charges[r.Header.Get("Idempotency-Key")]++
		w.WriteHeader(g.status)
		fmt.Fprint(w, g.body)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gatewayServer) set(status int, body string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status, g.body = status, body
}

func TestOneTimeTopUpWithSandbox(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	l.openAccount("acme")
	if r := l.mustDo("POST", "/v1/accounts/acme/top-ups", `{"top_up_id":"tu-1","amount":"50"}`, http.StatusAccepted); r["top_up_id"] != "tu-1" || r["state"] != "pending" && r["state"] != "succeeded" {
		t.Fatalf("top-up answer %v", r)
	}
	l.waitBalance("acme", "50")
	got := l.mustDo("GET", "/v1/accounts/acme/top-ups/tu-1", "", 200)
	if got["state"] != "succeeded" || got["kind"] != "one_time" || got["attempts"] != float64(1) || got["completed_at"] == nil {
		t.Fatalf("top-up %v", got)
	}
	l.mustDo("POST", "/v1/accounts/acme/top-ups", `{"top_up_id":"tu-1","amount":"50.00"}`, http.StatusOK)
	l.mustDo("POST", "/v1/accounts/acme/top-ups", `{"top_up_id":"tu-1","amount":"60"}`, http.StatusConflict)
	l.mustDo("POST", "/v1/accounts/acme/top-ups", `{"top_up_id":"tu-2","amount":"-5"}`, http.StatusBadRequest)
	l.mustDo("GET", "/v1/accounts/acme/top-ups/nope", "", http.StatusNotFound)
	if list := l.mustDo("GET", "/v1/accounts/acme/top-ups", "", 200)["top_ups"].([]any); len(list) != 1 {
		t.Fatalf("top-ups %v", list)
	}
	l.waitBalance("acme", "50") // credited once
}

func TestAutoTopUpAndAlerts(t *testing.T) {
	gw := newGateway(t, 200, `{"status":"succeeded","payment_id":"pay-1"}`)
	cfg := testConfig(t, t.TempDir())
	cfg.PaymentGateway, cfg.PaymentWebhookURL = "webhook", gw.URL
	l := startLedger(t, cfg)
	alertsSeen := subscribeAlerts(t, l.nc, "acme")

	l.openAccount("acme")
	l.credit("acme", "start", "30") // depleted -> ok
	l.mustDo("PUT", "/v1/accounts/acme/auto-top-up", `{"enabled":true,"threshold":"20","amount":"100"}`, 200)
	l.publishUsage("acme", usageJSON("acme", "call-1", "15")) // 15 < 20: auto top-up of 100
	l.waitBalance("acme", "115")
	acct := l.mustDo("GET", "/v1/accounts/acme", "", 200)
	if auto := acct["auto_top_up"].(map[string]any); auto["enabled"] != true || auto["state"] != "idle" {
		t.Fatalf("auto_top_up %v", auto)
	}
	tops := l.mustDo("GET", "/v1/accounts/acme/top-ups", "", 200)["top_ups"].([]any)
	if len(tops) != 1 || tops[0].(map[string]any)["kind"] != "auto" {
		t.Fatalf("top-ups %v", tops)
	}

	// The card is declined from now on: the next auto top-up fails after its attempts and
	// auto top-up is suspended; the admins are told once.
	gw.set(402, `{"status":"declined","reason":"card_declined"}`)
	l.publishUsage("acme", usageJSON("acme", "call-2", "110")) // 5: low, below the threshold
	eventually(t, 10*time.Second, func() string {
		auto := l.mustDo("GET", "/v1/accounts/acme", "", 200)["auto_top_up"].(map[string]any)
		if auto["state"] != "suspended" || auto["last_failure"] != "card_declined" {
			return fmt.Sprintf("auto_top_up %v", auto)
		}
		return ""
	})
	l.publishUsage("acme", usageJSON("acme", "call-3", "5")) // 0: depleted
	l.waitBalance("acme", "0")
	want := []string{"ok", "low", "auto_top_up_failed", "auto_top_up_suspended", "depleted"}
	eventually(t, 10*time.Second, func() string {
		if got := alertsSeen.kinds(); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Sprintf("alerts %v, want %v", got, want)
		}
		return ""
	})
	first := alertsSeen.get(0)
	if first["message"] != "Your credit is back above the threshold" || first["previous"] != "depleted" || first["balance"] != "30" {
		t.Errorf("first alert %v", first)
	}
	if low := alertsSeen.get(1); low["message"] != "Your credit is running low" {
		t.Errorf("low alert %v", low)
	}
	if dep := alertsSeen.get(4); dep["message"] != "Your credit has run out" {
		t.Errorf("depleted alert %v", dep)
	}

	// Saving the settings lifts the suspension; with the card working again a top-up starts.
	gw.set(200, `{"status":"succeeded","payment_id":"pay-2"}`)
	l.mustDo("PUT", "/v1/accounts/acme/auto-top-up", `{"enabled":true,"threshold":"20","amount":"100"}`, 200)
	l.waitBalance("acme", "100")
	gw.mu.Lock()
	defer gw.mu.Unlock()
	for key, n := range gw.charges {
		if n > cfg.TopUpMaxAttempts {
			t.Errorf("top-up %s charged %d times", key, n)
		}
	}
}

func TestAlertSettings(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	l.openAccount("acme")
	l.credit("acme", "c", "20")
	if a := l.mustDo("GET", "/v1/accounts/acme", "", 200); a["alert"] != "ok" {
		t.Fatalf("alert %v", a["alert"])
	}
	a := l.mustDo("PUT", "/v1/accounts/acme/alert-settings", `{"low_balance_threshold":"25"}`, 200)
	if a["alert"] != "low" || a["low_balance_threshold"] != "25" {
		t.Fatalf("after raising the threshold: %v", a)
	}
	l.mustDo("PUT", "/v1/accounts/acme/alert-settings", `{"low_balance_threshold":"-1"}`, 400)
	l.mustDo("PUT", "/v1/accounts/acme/alert-settings", `{}`, 400)
}

type alertLog struct {
	mu   sync.Mutex
	msgs []map[string]any
}

func subscribeAlerts(t *testing.T, nc *nats.Conn, account string) *alertLog {
	log := &alertLog{}
	sub, err := nc.Subscribe("ledger.alerts."+account, func(m *nats.Msg) {
		var a map[string]any
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Errorf("alert is not JSON: %s", m.Data)
			return
		}
		log.mu.Lock()
		log.msgs = append(log.msgs, a)
		log.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return log
}

func (l *alertLog) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		out = append(out, fmt.Sprint(m["alert"]))
	}
	return out
}

func (l *alertLog) get(i int) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msgs[i]
}
