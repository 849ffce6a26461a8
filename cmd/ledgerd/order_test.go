package main

import (
	"fmt"
	"net/url"
	"testing"
)

// TestUsageIsChargedInPublishOrder publishes thousands of usages per account, in order
// and at full speed, so that they span many ingest batches (whose acks are settled while
// the next batch is charged), and checks that each account's movements list them in the
// order they were published: each account's usages are charged in USAGE order.
func TestUsageIsChargedInPublishOrder(t *testing.T) {
	l := startLedger(t, testConfig(t, t.TempDir()))
	const accounts, perAccount = 3, 1500
	for a := range accounts {
		l.openAccount(account(a))
	}
	l.publishInterleaved(accounts, perAccount)
	for a := range accounts {
		l.waitBalance(account(a), fmt.Sprintf("-%d.%02d", perAccount/100, perAccount%100))
		refs := l.movementReferences(account(a))
		if len(refs) != perAccount {
			t.Fatalf("%s: %d movements, want %d", account(a), len(refs), perAccount)
		}
		for i, ref := range refs {
			if want := fmt.Sprintf("u-%d", i); ref != want {
				t.Fatalf("%s: movement %d is %s, want %s (published in that order)", account(a), i, ref, want)
			}
		}
	}
}

// movementReferences is the reference of every movement of the account, in stream order,
// read page by page through the API.
func (l *ledger) movementReferences(account string) []string {
	l.t.Helper()
	var refs []string
	cursor := ""
	for {
		page := l.mustDo("GET", "/v1/accounts/"+account+"/movements?limit=1000&cursor="+url.QueryEscape(cursor), "", 200)
		for _, m := range page["movements"].([]any) {
			refs = append(refs, m.(map[string]any)["reference"].(string))
		}
		if cursor = page["next_cursor"].(string); cursor == "" {
			return refs
		}
	}
}
