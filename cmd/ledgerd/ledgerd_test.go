package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAccounts(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	got := l.mustDo("PUT", "/v1/accounts/acme", `{"currency":"USD","low_balance_threshold":"25"}`, http.StatusCreated)
	want := map[string]any{"account_id": "acme", "currency": "USD", "balance": "0", "alert": "depleted", "low_balance_threshold": "25", "version": float64(1)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	auto := got["auto_top_up"].(map[string]any)
	if auto["enabled"] != false || auto["state"] != "idle" {
		t.Errorf("auto_top_up = %v", auto)
	}
	for _, f := range []string{"alert_since", "updated_at"} {
		if _, err := time.Parse(time.RFC3339, got[f].(string)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	l.mustDo("PUT", "/v1/accounts/acme", `{"currency":"USD"}`, http.StatusOK)
	l.mustDo("PUT", "/v1/accounts/acme", `{"currency":"EUR"}`, http.StatusConflict)
	l.mustDo("GET", "/v1/accounts/nobody", "", http.StatusNotFound)

	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantCode                 string
	}{
		{"bad id", "PUT", "/v1/accounts/a%20b", `{"currency":"USD"}`, 400, "invalid_account_id"},
		{"no currency", "PUT", "/v1/accounts/x", `{}`, 400, "missing_field"},
		{"bad currency", "PUT", "/v1/accounts/x", `{"currency":"dollars"}`, 400, "invalid_currency"},
		{"number threshold", "PUT", "/v1/accounts/x", `{"currency":"USD","low_balance_threshold":10}`, 400, "malformed_json"},
		{"unknown field", "PUT", "/v1/accounts/x", `{"currency":"USD","colour":"red"}`, 400, "malformed_json"},
		{"not json", "PUT", "/v1/accounts/x", `{`, 400, "malformed_json"},
		{"five decimals", "PUT", "/v1/accounts/x", `{"currency":"USD","low_balance_threshold":"1.00001"}`, 400, "invalid_amount"},
		{"unknown endpoint", "GET", "/v1/nothing", ``, 404, "not_found"},
		{"adjustment on unknown account", "POST", "/v1/accounts/nobody/adjustments", `{"adjustment_id":"a1","amount":"1","reason":"r"}`, 404, "account_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.do(tt.method, tt.path, tt.body)
			var e struct {
				Error struct{ Code, Message string }
			}
			_ = json.Unmarshal(r.Body, &e)
			if r.Status != tt.wantStatus || e.Error.Code != tt.wantCode || e.Error.Message == "" {
				t.Fatalf("status %d body %s; want %d %s", r.Status, r.Body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	l.mustDo("GET", "/v1/accounts/x", "", http.StatusNotFound) // none of the bad requests opened it
}

func TestUsageOverNATSIsChargedExactlyOnce(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	l.openAccount("acme")
	l.credit("acme", "adj-1", "100")
	for i := 0; i < 3; i++ { // the platform redelivers; no message id, so only the ledger can tell
		l.publishUsage("acme", usageJSON("acme", "call-1", "0.42"))
	}
	l.publishUsage("acme", usageJSON("acme", "call-2", "1.5"))
	l.publishUsage("acme", strings.Replace(usageJSON("acme", "call-2", "1.5"), `"1.5"`, `"1.5000"`, 1)) // same content
	l.waitBalance("acme", "98.08")

	l.publishUsage("acme", usageJSON("acme", "call-1", "9.99")) // same id, other content
	rej := l.waitRejection("acme", "conflicting_duplicate")
	if !strings.Contains(rej["payload"].(string), `"9.99"`) {
		t.Errorf("rejection lost the payload: %v", rej)
	}
	if got := l.balance("acme"); !got.Equal(decimalOf("98.08")) {
		t.Errorf("balance %s after a conflicting duplicate, want 98.08", got)
	}
	acct := l.mustDo("GET", "/v1/accounts/acme", "", 200)
	if acct["version"] != float64(4) { // opened, credited, two usages
		t.Errorf("version %v, want 4", acct["version"])
	}
}

func TestBadUsageBecomesRejectionAndCanBeRetried(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	l.openAccount("acme")
	cases := []struct{ subject, body, reason string }{
		{"acme", `not json at all`, "malformed_json"},
		{"acme", `{"usage_id":"x"}`, "missing_field"},
		{"acme", strings.Replace(usageJSON("acme", "u1", "1"), `"call"`, `"telegram"`, 1), "unknown_type"},
		{"acme", usageJSON("acme", "u2", "-1"), "invalid_amount"},
		{"acme", usageJSON("acme", "u3", "0.00001"), "invalid_amount"},
		{"acme", strings.Replace(usageJSON("acme", "u4", "1"), "USD", "EUR", 1), "currency_mismatch"},
		{"acme", usageJSON("acme", "u7", "1") + "}", "malformed_json"}, // a stray brace once passed
		{"other", usageJSON("acme", "u5", "1"), "subject_mismatch"},
		{"later", usageJSON("later", "u6", "2.5"), "account_not_found"},
	}
	for _, c := range cases {
		l.publishUsage(c.subject, c.body)
	}
	eventually(t, 10*time.Second, func() string {
		rs := l.mustDo("GET", "/v1/rejections?limit=50", "", 200)["rejections"].([]any)
		if len(rs) != len(cases) {
			return fmt.Sprintf("%d rejections, want %d", len(rs), len(cases))
		}
		return ""
	})
	rs := l.mustDo("GET", "/v1/rejections", "", 200)["rejections"].([]any)
	for i, c := range cases { // newest first
		r := rs[len(rs)-1-i].(map[string]any)
		if r["reason"] != c.reason || r["payload"] != c.body || r["subject"] != "usage."+c.subject || r["message"] == "" {
			t.Errorf("rejection %d = %v; want reason %s and the raw payload", i, r, c.reason)
		}
	}
	if !l.balance("acme").IsZero() {
		t.Fatal("a rejected usage moved money")
	}

	// The account opens later; the rejection is retried and charged once.
	later := rs[0].(map[string]any)
	if later["reason"] != "account_not_found" {
		t.Fatalf("newest rejection is %v", later)
	}
	retry := "/v1/rejections/" + later["rejection_id"].(string) + "/retry"
	if r := l.mustDo("POST", retry, "", 200); r["status"] != "open" {
		t.Fatalf("retry before the account exists: %v", r)
	}
	l.openAccount("later")
	if r := l.mustDo("POST", retry, "", 200); r["status"] != "resolved" {
		t.Fatalf("retry after opening: %v", r)
	}
	l.mustDo("POST", retry, "", 200)
	l.waitBalance("later", "-2.5")
	l.mustDo("POST", "/v1/rejections/rej-999999/retry", "", 404)
	wantAcme := 0 // a rejection belongs to the account of its subject
	for _, c := range cases {
		if c.subject == "acme" {
			wantAcme++
		}
	}
	if n := len(l.mustDo("GET", "/v1/rejections?account_id=acme", "", 200)["rejections"].([]any)); n != wantAcme {
		t.Errorf("%d rejections for acme, want %d", n, wantAcme)
	}
	l.mustDo("GET", "/v1/rejections?limit=0", "", 400)
}

func TestPostUsage(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	l.openAccount("acme")
	l.mustDo("POST", "/v1/usage", usageJSON("acme", "u1", "1"), http.StatusAccepted)
	batch := "[" + usageJSON("acme", "u2", "2") + "," + usageJSON("acme", "u3", "3") + "," + usageJSON("acme", "u1", "1") + "]"
	if r := l.mustDo("POST", "/v1/usage", batch, http.StatusAccepted); r["accepted"] != float64(3) {
		t.Fatalf("accepted %v", r)
	}
	l.waitBalance("acme", "-6")

	bad := "[" + usageJSON("acme", "u4", "4") + `,{"usage_id":"u5"}]`
	r := l.do("POST", "/v1/usage", bad)
	if r.Status != 400 || !strings.Contains(string(r.Body), `"index":1`) {
		t.Fatalf("invalid batch: %d %s", r.Status, r.Body)
	}
	l.mustDo("POST", "/v1/usage", `[]`, 400)
	l.mustDo("POST", "/v1/usage", `garbage`, 400)
	time.Sleep(200 * time.Millisecond)
	l.waitBalance("acme", "-6") // nothing of the refused batch was accepted
}

func TestAuthorize(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	l.openAccount("empty")
	l.openAccount("funded")
	l.credit("funded", "a1", "5")
	l.openAccount("negative")
	l.publishUsage("negative", usageJSON("negative", "u1", "3"))
	l.waitBalance("negative", "-3")

	tests := []struct {
		account, direction, numberType string
		wantAllowed                    bool
		wantReason                     string
	}{
		{"funded", "outbound", "standard", true, ""},
		{"funded", "inbound", "toll_free", true, ""},
		{"empty", "outbound", "standard", false, "credit_depleted"},
		{"empty", "inbound", "toll_free", false, "credit_depleted"},
		{"empty", "inbound", "standard", true, ""},
		{"negative", "outbound", "toll_free", false, "credit_depleted"},
		{"negative", "inbound", "standard", true, ""},
		{"ghost", "inbound", "standard", false, "account_not_found"},
	}
	for _, tt := range tests {
		name := tt.account + "/" + tt.direction + "/" + tt.numberType
		h := l.mustDo("GET", fmt.Sprintf("/v1/accounts/%s/authorize?direction=%s&number_type=%s", tt.account, tt.direction, tt.numberType), "", 200)
		req, _ := json.Marshal(map[string]string{"account_id": tt.account, "direction": tt.direction, "number_type": tt.numberType})
		msg, err := l.nc.Request("ledger.authorize", req, 2*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var n map[string]any
		if err := json.Unmarshal(msg.Data, &n); err != nil {
			t.Fatal(err)
		}
		for via, got := range map[string]map[string]any{"http": h, "nats": n} {
			reason, _ := got["reason"].(string)
			if got["allowed"] != tt.wantAllowed || reason != tt.wantReason {
				t.Errorf("%s over %s: %v", name, via, got)
			}
		}
	}
	h := l.mustDo("GET", "/v1/accounts/empty/authorize?direction=outbound&number_type=standard", "", 200)
	if h["balance"] != "0" || h["alert"] != "depleted" {
		t.Errorf("denied answer lacks balance/alert: %v", h)
	}
	l.mustDo("GET", "/v1/accounts/funded/authorize?direction=sideways&number_type=standard", "", 400)
	for _, bad := range []string{`nope`, `{"account_id":"funded","direction":"outbound"}`, `{"account_id":"bad id","direction":"outbound","number_type":"standard"}`} {
		msg, err := l.nc.Request("ledger.authorize", []byte(bad), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(msg.Data), `"allowed":false`) || !strings.Contains(string(msg.Data), `"error"`) {
			t.Errorf("malformed request %s answered %s", bad, msg.Data)
		}
	}
}

func TestAdjustmentsAreIdempotent(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	l.openAccount("acme")
	body := `{"adjustment_id":"adj-1","amount":"12.50","reason":"welcome credit"}`
	l.mustDo("POST", "/v1/accounts/acme/adjustments", body, http.StatusCreated)
	l.mustDo("POST", "/v1/accounts/acme/adjustments", body, http.StatusOK)
	l.mustDo("POST", "/v1/accounts/acme/adjustments", `{"adjustment_id":"adj-1","amount":"13","reason":"welcome credit"}`, http.StatusConflict)
	l.mustDo("POST", "/v1/accounts/acme/adjustments", `{"adjustment_id":"adj-2","amount":"0","reason":"nothing"}`, http.StatusBadRequest)
	if got := l.balance("acme"); !got.Equal(decimalOf("12.5")) {
		t.Fatalf("balance %s", got)
	}
}

func TestExactlyOnceSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	l := startLedger(t, cfg)
	l.openAccount("acme")
	l.publishUsage("acme", usageJSON("acme", "call-1", "2"))
	l.waitBalance("acme", "-2")
	l.Stop()

	l = startLedger(t, cfg) // same data dir: a new process knows nothing but the disk
	l.publishUsage("acme", usageJSON("acme", "call-1", "2"))
	l.publishUsage("acme", usageJSON("acme", "call-2", "1"))
	l.waitBalance("acme", "-3")
	l.publishUsage("acme", usageJSON("acme", "call-1", "5"))
	l.waitRejection("acme", "conflicting_duplicate")
}

func (l *ledger) waitRejection(account, reason string) map[string]any {
	l.t.Helper()
	var found map[string]any
	eventually(l.t, 10*time.Second, func() string {
		for _, r := range l.mustDo("GET", "/v1/rejections?account_id="+account, "", 200)["rejections"].([]any) {
			if m := r.(map[string]any); m["reason"] == reason {
				found = m
				return ""
			}
		}
		return "no rejection " + reason + " for " + account
	})
	return found
}
