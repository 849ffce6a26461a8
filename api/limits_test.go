package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/ledger"
)

// TestLimits: every limit of issue 7 (payload size, amount magnitude, id length, page
// sizes, free text) answers 400 with the API.md error body and its code, and the largest
// value within each limit is accepted.
func TestLimits(t *testing.T) {
	ts := newTestServer(t, Options{})
	ts.mustServe(t, "PUT", "/v1/accounts/acme", `{"currency":"USD"}`)
	usage := func(id, account, extra string) string {
		return fmt.Sprintf(`{"usage_id":%q,"account_id":%q,"type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.05","currency":"USD"%s}`, id, account, extra)
	}
	batch := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = usage(fmt.Sprintf("b-%d", i), "acme", "")
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	id64, id65 := strings.Repeat("a", ledger.IDLengthMax), strings.Repeat("a", ledger.IDLengthMax+1)
	adjustment := func(id, amount, reason string) string {
		return fmt.Sprintf(`{"adjustment_id":%q,"amount":%q,"reason":%q}`, id, amount, reason)
	}
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantCode                 string // "" for a success
	}{
		// payload size
		{"body over 64 KiB", "PUT", "/v1/accounts/big", `{"currency":"USD"` + strings.Repeat(" ", bodyBytesMax) + `}`, 400, "payload_too_large"},
		{"body just under 64 KiB", "PUT", "/v1/accounts/fits", `{"currency":"USD"` + strings.Repeat(" ", bodyBytesMax-100) + `}`, 201, ""},
		{"usage event over 16 KiB", "POST", "/v1/usage", usage("u-big", "acme", `,"destination":"`+strings.Repeat("9", ledger.UsagePayloadMax)+`"`), 400, "invalid_usage"},
		{"usage event with a stray brace after it", "POST", "/v1/usage", usage("u-brace", "acme", "") + "}", 400, "invalid_usage"},
		{"usage event with whitespace after it", "POST", "/v1/usage", usage("u-space", "acme", "") + " \n", 202, ""},
		{"usage batch of 1001", "POST", "/v1/usage", batch(usageBatchEventsMax + 1), 400, "invalid_batch"},
		{"usage batch of 1000", "POST", "/v1/usage", batch(usageBatchEventsMax), 202, ""},
		{"empty usage batch", "POST", "/v1/usage", `[]`, 400, "invalid_batch"},
		{"usage body over 16 MiB", "POST", "/v1/usage", "[" + strings.Repeat(" ", usageBodyBytesMax) + "]", 400, "payload_too_large"},
		// amount magnitude and scale
		{"adjustment of 10^15", "POST", "/v1/accounts/acme/adjustments", adjustment("adj-1", "1000000000000000", "r"), 400, "invalid_amount"},
		{"adjustment of -10^15", "POST", "/v1/accounts/acme/adjustments", adjustment("adj-2", "-1000000000000000", "r"), 400, "invalid_amount"},
		{"largest adjustment", "POST", "/v1/accounts/acme/adjustments", adjustment("adj-3", "999999999999999.9999", "r"), 201, ""},
		{"largest debit", "POST", "/v1/accounts/acme/adjustments", adjustment("adj-4", "-999999999999999.9999", "r"), 201, ""},
		{"five decimals", "POST", "/v1/accounts/acme/adjustments", adjustment("adj-5", "0.00001", "r"), 400, "invalid_amount"},
		{"exponent", "POST", "/v1/accounts/acme/adjustments", adjustment("adj-6", "1e3", "r"), 400, "invalid_amount"},
		{"amount as a JSON number", "POST", "/v1/accounts/acme/adjustments", `{"adjustment_id":"adj-7","amount":5,"reason":"r"}`, 400, "malformed_json"},
		{"top-up of 10^15", "POST", "/v1/accounts/acme/top-ups", `{"top_up_id":"tu-1","amount":"1000000000000000"}`, 400, "invalid_amount"},
		{"threshold of 10^15", "PUT", "/v1/accounts/acme/alert-settings", `{"low_balance_threshold":"1000000000000000"}`, 400, "invalid_amount"},
		{"usage amount of 10^15", "POST", "/v1/usage", `{"usage_id":"u-huge","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"1000000000000000","currency":"USD"}`, 400, "invalid_usage"},
		// id length
		{"account id of 64", "PUT", "/v1/accounts/" + id64, `{"currency":"USD"}`, 201, ""},
		{"account id of 65", "PUT", "/v1/accounts/" + id65, `{"currency":"USD"}`, 400, "invalid_account_id"},
		{"account id of 65 in a read", "GET", "/v1/accounts/" + id65 + "/movements", "", 400, "invalid_account_id"},
		{"usage id of 65", "POST", "/v1/usage", usage(id65, "acme", ""), 400, "invalid_usage"},
		{"adjustment id of 65", "POST", "/v1/accounts/acme/adjustments", adjustment(id65, "1", "r"), 400, "invalid_adjustment_id"},
		{"top-up id of 65", "POST", "/v1/accounts/acme/top-ups", `{"top_up_id":"` + id65 + `","amount":"5"}`, 400, "invalid_top_up_id"},
		{"top-up id of 65 in a read", "GET", "/v1/accounts/acme/top-ups/" + id65, "", 400, "invalid_top_up_id"},
		{"rejection id of 81", "POST", "/v1/rejections/" + strings.Repeat("r", 81) + "/retry", "", 400, "invalid_rejection_id"},
		{"rejections of an account id of 65", "GET", "/v1/rejections?account_id=" + id65, "", 400, "invalid_account_id"},
		// page sizes
		{"movements limit 0", "GET", "/v1/accounts/acme/movements?limit=0", "", 400, "invalid_limit"},
		{"movements limit 1001", "GET", "/v1/accounts/acme/movements?limit=1001", "", 400, "invalid_limit"},
		{"movements limit -1", "GET", "/v1/accounts/acme/movements?limit=-1", "", 400, "invalid_limit"},
		{"movements limit 1e3", "GET", "/v1/accounts/acme/movements?limit=1e3", "", 400, "invalid_limit"},
		{"movements limit 1000", "GET", "/v1/accounts/acme/movements?limit=1000", "", 200, ""},
		{"rejections limit 1001", "GET", "/v1/rejections?limit=1001", "", 400, "invalid_limit"},
		{"rejections limit 1000", "GET", "/v1/rejections?limit=1000", "", 200, ""},
		{"movements cursor not ours", "GET", "/v1/accounts/acme/movements?cursor=abc", "", 400, "invalid_cursor"},
		{"csv cursor not ours", "GET", "/v1/accounts/acme/movements.csv?cursor=abc", "", 400, "invalid_cursor"},
		// free text
		{"reason of 501 bytes", "POST", "/v1/accounts/acme/adjustments", adjustment("adj-8", "1", strings.Repeat("x", adjustmentReasonMax+1)), 400, "invalid_reason"},
		{"reason of 500 bytes", "POST", "/v1/accounts/acme/adjustments", adjustment("adj-9", "1", strings.Repeat("x", adjustmentReasonMax)), 201, ""},
		{"user id of 129 bytes", "POST", "/v1/usage", usage("u-text", "acme", `,"user_id":"`+strings.Repeat("u", 129)+`"`), 400, "invalid_usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustServe(t, tt.method, tt.path, tt.body)
			checkContract(t, tt.name, r)
			code, _ := errorCode(r.body)
			if r.status != tt.wantStatus || code != tt.wantCode {
				t.Fatalf("status %d code %q, want %d %q: %.300s", r.status, code, tt.wantStatus, tt.wantCode, r.body)
			}
		})
	}
	// A refused usage batch names each bad event by its index and reason.
	r := ts.mustServe(t, "POST", "/v1/usage", "["+usage("ok-1", "acme", "")+","+usage(id65, "acme", "")+"]")
	var body struct {
		Errors []usageItemError
	}
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Index != 1 || body.Errors[0].Code != "invalid_usage_id" {
		t.Fatalf("batch errors: %s", r.body)
	}
}

// TestUsageForAnIDThatIsNoSubjectToken: an account id may start or end with "." or hold
// "..", which would make an invalid NATS subject; POST /v1/usage publishes it on the
// subject the consumer maps back (usage.~.x for ".x"), instead of failing with 503.
func TestUsageForAnIDThatIsNoSubjectToken(t *testing.T) {
	ts := newTestServer(t, Options{})
	for _, id := range []string{".lead", "trail.", "a..b", ".x.", "plain.dot"} {
		if r := ts.mustServe(t, "PUT", "/v1/accounts/"+id, `{"currency":"USD"}`); r.status != http.StatusCreated {
			t.Fatalf("open %q: %d %s", id, r.status, r.body)
		}
		body := fmt.Sprintf(`{"usage_id":"u1","account_id":%q,"type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.05","currency":"USD"}`, id)
		if r := ts.mustServe(t, "POST", "/v1/usage", body); r.status != http.StatusAccepted {
			t.Fatalf("usage of %q: %d %s", id, r.status, r.body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stream, err := ts.js.Stream(ctx, ingest.UsageStream)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		m, err := stream.GetLastMsgForSubject(ctx, ingest.Subject(id))
		cancel()
		if err != nil {
			t.Fatalf("%q: nothing on %s: %v", id, ingest.Subject(id), err)
		}
		u, err := ingest.Decode(m.Subject, m.Data)
		if err != nil || u.AccountID != id || ingest.AccountOf(m.Subject) != id {
			t.Fatalf("%q on %s: decoded %q, %v; AccountOf %q", id, m.Subject, u.AccountID, err, ingest.AccountOf(m.Subject))
		}
	}
}
