package main

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestMovementsSummaryAndDisputes(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	l.openAccount("acme")
	l.credit("acme", "welcome", "100")
	usages := []string{
		usageJSON("acme", "call-1", "0.42"),
		strings.NewReplacer(`"call"`, `"sms"`, `"reason":"fup_exceeded",`, ``, `"u-7"`, `"u-8"`).Replace(usageJSON("acme", "sms-1", "0.05")),
		strings.NewReplacer(`"fup_exceeded"`, `"international"`).Replace(usageJSON("acme", "call-2", "3")),
		strings.NewReplacer(`"call"`, `"voice_agent"`, `"reason":"fup_exceeded",`, ``, `"u-7"`, `"u-9"`).Replace(usageJSON("acme", "va-1", "0")),
	}
	for _, u := range usages {
		l.publishUsage("acme", u)
	}
	l.waitBalance("acme", "96.53")

	// Disputes: refunds are capped at what the usage was charged.
	l.mustDo("POST", "/v1/accounts/acme/adjustments", `{"adjustment_id":"adj-1","amount":"0.40","reason":"refund of disputed call","usage_id":"call-1"}`, http.StatusCreated)
	r := l.do("POST", "/v1/accounts/acme/adjustments", `{"adjustment_id":"adj-2","amount":"0.03","reason":"more","usage_id":"call-1"}`)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "refund_exceeds_charge") {
		t.Fatalf("over-refund: %d %s", r.Status, r.Body)
	}
	l.mustDo("POST", "/v1/accounts/acme/adjustments", `{"adjustment_id":"adj-3","amount":"1","reason":"x","usage_id":"never"}`, http.StatusNotFound)
	l.waitBalance("acme", "96.93")

	ms := l.mustDo("GET", "/v1/accounts/acme/movements", "", 200)["movements"].([]any)
	if len(ms) != 6 { // credit, 4 usages (one of amount 0), refund; the opening is no movement
		t.Fatalf("%d movements: %v", len(ms), ms)
	}
	first, call := ms[0].(map[string]any), ms[1].(map[string]any)
	if first["type"] != "adjustment" || first["amount"] != "100" || first["balance_after"] != "100" {
		t.Errorf("first movement %v", first)
	}
	if call["type"] != "usage" || call["cause"] != "fair_usage_exceeded" || call["amount"] != "-0.42" || call["balance_after"] != "99.58" ||
		call["reference"] != "call-1" || call["user_id"] != "u-7" || call["occurred_at"] != "2026-11-24T10:15:00Z" || call["description"] == "" {
		t.Errorf("usage movement %v", call)
	}
	if zero := ms[4].(map[string]any); zero["amount"] != "0" || zero["cause"] != "advanced_features" {
		t.Errorf("zero usage movement %v", zero)
	}

	// Pagination: no gaps, no duplicates.
	var refs []string
	cursor := ""
	for page := 0; page < 10; page++ {
		p := l.mustDo("GET", "/v1/accounts/acme/movements?limit=4&cursor="+cursor, "", 200)
		for _, m := range p["movements"].([]any) {
			refs = append(refs, m.(map[string]any)["reference"].(string))
		}
		if cursor = p["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if fmt.Sprint(refs) != "[welcome call-1 sms-1 call-2 va-1 adj-1]" {
		t.Errorf("pages gave %v", refs)
	}
	if n := len(l.mustDo("GET", "/v1/accounts/acme/movements?cause=messaging", "", 200)["movements"].([]any)); n != 1 {
		t.Errorf("cause filter: %d", n)
	}
	if n := len(l.mustDo("GET", "/v1/accounts/acme/movements?user_id=u-7&type=usage", "", 200)["movements"].([]any)); n != 2 {
		t.Errorf("user filter: %d", n)
	}
	// Time filters are on occurred_at, the usage's own time: [from, to).
	day := "from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z"
	if n := len(l.mustDo("GET", "/v1/accounts/acme/movements?"+day, "", 200)["movements"].([]any)); n != 4 {
		t.Errorf("movements of 2026-11-24: %d, want the 4 usages", n)
	}
	if s := l.mustDo("GET", "/v1/accounts/acme/usage-summary?from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z", "", 200); s["total_charged"] != "0" {
		t.Errorf("summary of a day without usage: %v", s)
	}
	for _, bad := range []string{"limit=0", "limit=1001", "cause=weather", "type=gift", "from=yesterday", "cursor=garbage"} {
		l.mustDo("GET", "/v1/accounts/acme/movements?"+bad, "", 400)
	}
	l.mustDo("GET", "/v1/accounts/nobody/movements", "", 404)

	// The export file.
	resp := l.do("GET", "/v1/accounts/acme/movements.csv", "")
	rows, err := csv.NewReader(strings.NewReader(string(resp.Body))).ReadAll()
	if err != nil || resp.Status != 200 {
		t.Fatalf("csv: %d %v", resp.Status, err)
	}
	if strings.Join(rows[0], ",") != "occurred_at,event_id,type,cause,user_id,reference,description,amount,balance_after,currency" || len(rows) != 7 {
		t.Fatalf("csv header/rows: %v", rows)
	}
	if rows[2][5] != "call-1" || rows[2][7] != "-0.42" || rows[2][8] != "99.58" || rows[2][9] != "USD" {
		t.Errorf("csv row %v", rows[2])
	}

	// What used the credit: by cause, and the user who drains the account first.
	s := l.mustDo("GET", "/v1/accounts/acme/usage-summary", "", 200)
	byCause := s["by_cause"].(map[string]any)
	if s["total_charged"] != "3.47" || byCause["outside_package"] != "3" || byCause["messaging"] != "0.05" || byCause["forwarding"] != "0" {
		t.Errorf("summary %v", s)
	}
	users := s["by_user"].([]any)
	if top := users[0].(map[string]any); top["user_id"] != "u-7" || top["amount"] != "3.42" || top["count"] != float64(2) {
		t.Errorf("by_user %v", users)
	}
}
