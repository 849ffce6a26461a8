package topup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"
)

// WebhookOptions tune a Webhook. Zero values are the defaults stated per field.
type WebhookOptions struct {
	// Timeout bounds one payment call, from sending the request to reading the answer. A
	// call that takes longer fails as gateway_unavailable. Default 10s.
	Timeout time.Duration
	// ResponseBytesMax bounds the answer body read; a longer one is unusable and fails as
	// gateway_unavailable. Default 64 KiB.
	ResponseBytesMax int64
	// Client sends the requests. Default: a client of its own that keeps up to
	// idleConnsPerHostMax connections to the gateway open, so parallel payments do not
	// open a connection each (the timeout is applied per call through the context, so a
	// shared client may be given).
	Client *http.Client
}

func (o WebhookOptions) withDefaults() WebhookOptions {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ResponseBytesMax <= 0 {
		o.ResponseBytesMax = 64 << 10
	}
	if o.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = idleConnsPerHostMax
		o.Client = &http.Client{Transport: t}
	}
	return o
}

// idleConnsPerHostMax is above the manager's default worker count, so that every worker
// can keep its connection to the gateway.
const idleConnsPerHostMax = 32

// Webhook is the HTTP payment gateway of API.md section 5: it POSTs each attempt to a URL
// with the top-up id as idempotency key.
type Webhook struct {
	url  string
	log  *zap.Logger
	opts WebhookOptions
}

var _ Gateway = (*Webhook)(nil)

// NewWebhook returns a gateway that POSTs to rawURL (http or https).
func NewWebhook(rawURL string, log *zap.Logger, opts WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("payment webhook url %q: want an absolute http(s) url", rawURL)
	}
	return &Webhook{url: rawURL, log: log, opts: opts.withDefaults()}, nil
}

// webhookRequest is the body of a payment call. The amount is a string, as all money.
type webhookRequest struct {
	TopUpID   string `json:"top_up_id"`
	AccountID string `json:"account_id"`
	Amount    string `json:"amount"`
	Currency  string `json:"currency"`
	Kind      string `json:"kind"`
	Attempt   int    `json:"attempt"`
}

// webhookAnswer is the body the gateway answers with.
type webhookAnswer struct {
	Status    string `json:"status"`
	PaymentID string `json:"payment_id"`
	Reason    string `json:"reason"`
}

// Charge POSTs the attempt and maps the answer: 2xx succeeded or declined as the body
// says, 402 declined, anything else (or no answer in time) gateway_unavailable.
func (w *Webhook) Charge(ctx context.Context, p Payment) (Result, error) {
	body, err := json.Marshal(webhookRequest{
		TopUpID: p.TopUpID, AccountID: p.AccountID, Amount: p.Amount.String(),
		Currency: p.Currency, Kind: p.Kind, Attempt: p.Attempt,
	})
	if err != nil {
		return Result{}, fmt.Errorf("encode payment %s: %w", p.TopUpID, err)
	}
	callCtx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(callCtx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("payment request %s: %w", p.TopUpID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", p.TopUpID)
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return w.unavailable(ctx, p, "request failed", zap.Error(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, w.opts.ResponseBytesMax+1))
	if err != nil {
		return w.unavailable(ctx, p, "reading the answer failed", zap.Int("status", resp.StatusCode), zap.Error(err))
	}
	if int64(len(raw)) > w.opts.ResponseBytesMax {
		return w.unavailable(ctx, p, "answer too large", zap.Int("status", resp.StatusCode))
	}
	return w.interpret(ctx, p, resp.StatusCode, raw)
}

// interpret maps a complete answer to a Result.
func (w *Webhook) interpret(ctx context.Context, p Payment, status int, raw []byte) (Result, error) {
	var a webhookAnswer
	parsed := json.Unmarshal(raw, &a) == nil
	switch {
	case status == http.StatusPaymentRequired:
		// A 402 is a decline whatever its body says; the reason is optional.
		return Result{Reason: declineReason(a.Reason)}, nil
	case status < 200 || status > 299:
		return w.unavailable(ctx, p, "unexpected status", zap.Int("status", status))
	case parsed && a.Status == "succeeded":
		// The gateway took the money: credit it even if it forgot the payment id, since a
		// retry would only get the same answer.
		return Result{Succeeded: true, PaymentID: truncateReason(a.PaymentID)}, nil
	case parsed && a.Status == "declined":
		return Result{Reason: declineReason(a.Reason)}, nil
	}
	return w.unavailable(ctx, p, "unusable answer", zap.Int("status", status), zap.String("body", string(raw[:min(len(raw), 200)])))
}

// unavailable is the outcome of a call without a usable answer. When the caller's ctx
// ended (shutdown), the attempt has no outcome: it is abandoned, not failed.
func (w *Webhook) unavailable(ctx context.Context, p Payment, what string, fields ...zap.Field) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("payment %s attempt %d abandoned: %w", p.TopUpID, p.Attempt, err)
	}
	w.log.Warn("payment gateway unavailable: "+what, append(fields,
		zap.String("top_up_id", p.TopUpID), zap.Int("attempt", p.Attempt))...)
	return Result{Reason: ReasonGatewayUnavailable}, nil
}

func declineReason(reason string) string {
	if reason == "" {
		return ReasonPaymentDeclined
	}
	return truncateReason(reason)
}
