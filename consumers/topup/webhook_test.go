package topup

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

func testPayment() Payment {
	return Payment{TopUpID: "tu-1", AccountID: "acme", Amount: decimal.RequireFromString("12.50"), Currency: "USD", Kind: "auto", Attempt: 2}
}

func TestWebhookMapsAnswers(t *testing.T) {
	tests := []struct {
		name   string
		give   func(w http.ResponseWriter)
		want   Result
		sleeps bool
	}{
		{name: "succeeded", give: answer(200, `{"status":"succeeded","payment_id":"pay-9"}`), want: Result{Succeeded: true, PaymentID: "pay-9"}},
		{name: "succeeded 201", give: answer(201, `{"status":"succeeded","payment_id":"pay-9"}`), want: Result{Succeeded: true, PaymentID: "pay-9"}},
		{name: "declined in a 200", give: answer(200, `{"status":"declined","reason":"insufficient_funds"}`), want: Result{Reason: "insufficient_funds"}},
		{name: "declined without reason", give: answer(200, `{"status":"declined"}`), want: Result{Reason: ReasonPaymentDeclined}},
		{name: "402 with reason", give: answer(402, `{"status":"declined","reason":"card_declined"}`), want: Result{Reason: "card_declined"}},
		{name: "402 without body", give: answer(402, ``), want: Result{Reason: ReasonPaymentDeclined}},
		{name: "402 with garbage", give: answer(402, `<html>`), want: Result{Reason: ReasonPaymentDeclined}},
		{name: "500", give: answer(500, `{"status":"succeeded","payment_id":"pay-9"}`), want: Result{Reason: ReasonGatewayUnavailable}},
		{name: "404", give: answer(404, ``), want: Result{Reason: ReasonGatewayUnavailable}},
		{name: "302", give: answer(302, ``), want: Result{Reason: ReasonGatewayUnavailable}},
		{name: "unparseable 200", give: answer(200, `ok!`), want: Result{Reason: ReasonGatewayUnavailable}},
		{name: "unknown status word", give: answer(200, `{"status":"maybe"}`), want: Result{Reason: ReasonGatewayUnavailable}},
		{name: "body too large", give: answer(200, `{"status":"succeeded","payment_id":"`+strings.Repeat("x", 2000)+`"}`), want: Result{Reason: ReasonGatewayUnavailable}},
		{name: "reason truncated", give: answer(402, `{"reason":"`+strings.Repeat("r", 300)+`"}`), want: Result{Reason: strings.Repeat("r", reasonLengthMax)}},
		{name: "timeout", give: func(w http.ResponseWriter) {
			time.Sleep(300 * time.Millisecond)
			answer(200, `{"status":"succeeded","payment_id":"late"}`)(w)
		}, want: Result{Reason: ReasonGatewayUnavailable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tt.give(w) }))
			defer srv.Close()
			gw, err := NewWebhook(srv.URL, zap.NewNop(), WebhookOptions{Timeout: 100 * time.Millisecond, ResponseBytesMax: 1024})
			if err != nil {
				t.Fatal(err)
			}
			got, err := gw.Charge(context.Background(), testPayment())
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func answer(status int, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestWebhookSendsTheContract(t *testing.T) {
	var gotHeader http.Header
	var gotBody map[string]any
	var gotMethod string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotMethod, gotHeader = r.Method, r.Header.Clone()
		if err := json.NewDecoder(r.Body).Decode(&gotBody); err != nil {
			t.Errorf("decode body: %v", err)
		}
		answer(200, `{"status":"succeeded","payment_id":"p"}`)(w)
	}))
	defer srv.Close()
	gw, err := NewWebhook(srv.URL+"/pay", zap.NewNop(), WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Charge(context.Background(), testPayment()); err != nil {
		t.Fatal(err)
	}
	if gotMethod != http.MethodPost || gotHeader.Get("Idempotency-Key") != "tu-1" || !strings.HasPrefix(gotHeader.Get("Content-Type"), "application/json") {
		t.Errorf("method %s, headers %v", gotMethod, gotHeader)
	}
	want := map[string]any{"top_up_id": "tu-1", "account_id": "acme", "amount": "12.5", "currency": "USD", "kind": "auto", "attempt": float64(2)}
	if len(gotBody) != len(want) {
		t.Errorf("body %v, want %v", gotBody, want)
	}
	for k, v := range want {
		if gotBody[k] != v {
			t.Errorf("body[%s] = %#v, want %#v (the amount must be a JSON string)", k, gotBody[k], v)
		}
	}
}

func TestWebhookRefusedConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	gw, err := NewWebhook("http://"+addr, zap.NewNop(), WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := gw.Charge(context.Background(), testPayment())
	if err != nil || got != (Result{Reason: ReasonGatewayUnavailable}) {
		t.Errorf("got %+v, %v; want gateway_unavailable", got, err)
	}
}

func TestWebhookAbandonsWhenTheCallerStops(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	gw, err := NewWebhook(srv.URL, zap.NewNop(), WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if got, err := gw.Charge(ctx, testPayment()); err == nil {
		t.Errorf("got %+v and no error; a call cut off by the caller has no outcome", got)
	}
}

func TestNewWebhookRejectsBadURLs(t *testing.T) {
	for _, give := range []string{"", "localhost:8080", "ftp://x/y", "http://", "::"} {
		if _, err := NewWebhook(give, zap.NewNop(), WebhookOptions{}); err == nil {
			t.Errorf("NewWebhook(%q) accepted", give)
		}
	}
}

func TestSandboxApprovesWithAStablePaymentID(t *testing.T) {
	gw := NewSandbox(zap.NewNop())
	a, _ := gw.Charge(context.Background(), testPayment())
	b, _ := gw.Charge(context.Background(), testPayment())
	if !a.Succeeded || a.PaymentID == "" || a != b {
		t.Errorf("got %+v then %+v; want the same approved payment", a, b)
	}
}
