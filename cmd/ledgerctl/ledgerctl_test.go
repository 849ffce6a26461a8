package main

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLedgerctl drives a real ledgerd (child process) through a mixed history with the
// operator commands and NATS usage, then audits it with the auditor commands.
func TestLedgerctl(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ledgerd as a child process")
	}
	d := newDaemon(t)
	d.start()
	history(t, d)

	t.Run("replay", func(t *testing.T) { testReplay(t, d) })
	t.Run("replay json and until", func(t *testing.T) { testReplayJSONUntil(t, d) })
	t.Run("explain", func(t *testing.T) { testExplain(t, d) })
	t.Run("operator", func(t *testing.T) { testOperator(t, d) })
	t.Run("api errors", func(t *testing.T) { testAPIErrors(t, d) })
	t.Run("movements", func(t *testing.T) { testMovements(t, d) })
	t.Run("verify after a restart", func(t *testing.T) { testVerifyAfterRestart(t, d) })
	t.Run("verify finds a tampered balance", func(t *testing.T) { testVerifyTampered(t, d) })
	t.Run("rebuild repairs a tampered read model", func(t *testing.T) { testRebuild(t, d) })
}

// history writes the mixed history the tests read back. Account acme, in stream order:
//
//	v1 opened USD                      0
//	v2 adjustment welcome   +50       50
//	v3 usage call-1         -0.42     49.58
//	v4 usage sms-1          -0.05     49.53
//	v5 adjustment refund-1  +0.2      49.73   (refunds call-1)
//	v6 top-up tu-1 requested          49.73
//	v7 top-up tu-1 succeeded +25      74.73   (sandbox gateway)
//	v8 auto top-up enabled            74.73
//	v9 auto top-up disabled           74.73
//
// and account beta: opened, usage b-1 -3.5, adjustment fee -1: balance -4.5.
func history(t *testing.T, d *daemon) {
	t.Helper()
	d.mustCtl("open", "acme", "--currency", "USD")
	d.mustCtl("adjust", "acme", "50", "--reason", "welcome credit", "--id", "welcome")
	d.publishUsage("acme", "call-1", "call", "fup_exceeded", "0.42", "u-7")
	d.waitVersion("acme", 3)
	d.publishUsage("acme", "sms-1", "sms", "", "0.05", "u-8")
	d.waitVersion("acme", 4)
	d.mustCtl("adjust", "acme", "0.2", "--usage-id", "call-1", "--reason", "refund of disputed call", "--id", "refund-1")
	r := d.mustCtl("top-up", "acme", "25", "--id", "tu-1", "--wait", "10s")
	wantContains(t, "top-up output", r.stdout, "top-up tu-1 of 25 for acme requested: ", "succeeded")
	d.mustCtl("auto-top-up", "acme", "--enabled=true", "--threshold", "5", "--amount", "20")
	r = d.mustCtl("auto-top-up", "acme", "--enabled=false")
	wantContains(t, "auto-top-up output", r.stdout, "auto top-up of acme: disabled (idle)")
	if a := d.account("acme"); a.AutoTopUp.Enabled || a.AutoTopUp.Threshold != "5" || a.AutoTopUp.Amount != "20" {
		t.Errorf("--enabled=false did not keep the saved threshold and amount: %+v", a.AutoTopUp)
	}

	d.mustCtl("--currency", "USD", "open", "beta") // a flag before the command
	d.publishUsage("beta", "b-1", "voice_agent", "", "3.5", "")
	d.waitVersion("beta", 2)
	d.mustCtl("adjust", "beta", "-1", "--reason", "monthly fee") // a negative amount is an argument, not a flag
	d.waitVersion("acme", 9)
}

func testReplay(t *testing.T, d *daemon) {
	r := d.mustCtl("replay", "acme")
	lines := r.lines()
	if len(lines) != 11 { // header, 9 events, balance
		t.Fatalf("replay printed %d lines, want 11:\n%s", len(lines), r.stdout)
	}
	if got := r.lastLine(); got != "balance acme 74.73" {
		t.Errorf("last line %q, want %q", got, "balance acme 74.73")
	}
	wantFields := map[int][]string{ // line index -> version, type, amount, balance
		1: {"1", "account_opened", "0", "0"},
		3: {"3", "usage_charged", "-0.42", "49.58"},
		5: {"5", "adjustment_applied", "+0.2", "49.73"},
		6: {"6", "top_up_requested", "0", "49.73"},
		7: {"7", "top_up_succeeded", "+25", "74.73"},
	}
	for i, want := range wantFields {
		f := strings.Fields(lines[i])
		if got := []string{f[0], f[3], f[4], f[5]}; !slices.Equal(got, want) {
			t.Errorf("line %d: version, type, amount, balance = %v, want %v\n%s", i, got, want, lines[i])
		}
	}
	wantContains(t, "replay", r.stdout, "usage call-1: call fup_exceeded -> fair_usage_exceeded, user u-7", "(usage call-1)")

	if got := d.mustCtl("replay", "beta").lastLine(); got != "balance beta -4.5" {
		t.Errorf("beta: last line %q", got)
	}
}

func testReplayJSONUntil(t *testing.T, d *daemon) {
	r := d.mustCtl("replay", "--json", "acme")
	var evs []replayEvent
	lines := r.lines()
	for _, l := range lines[:len(lines)-1] {
		var e replayEvent
		// Data is an interface in replayEvent: decode it loosely beside the rest.
		loose := struct {
			*replayEvent
			Data any `json:"data"`
		}{replayEvent: &e}
		if err := json.Unmarshal([]byte(l), &loose); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		evs = append(evs, e)
	}
	if len(evs) != 9 || evs[2].Type != "usage_charged.v1" || evs[2].Amount.String() != "-0.42" || evs[2].Position == 0 {
		t.Fatalf("unexpected JSON events: %+v", evs)
	}
	var end replayEnd
	if err := json.Unmarshal([]byte(r.lastLine()), &end); err != nil || end.Balance.String() != "74.73" || end.Events != 9 {
		t.Errorf("last JSON line %s (%v)", r.lastLine(), err)
	}

	until := evs[3].RecordedAt.Format("2006-01-02T15:04:05.999999999Z07:00") // the second usage
	r = d.mustCtl("replay", "acme", "--until", until)
	if got := r.lastLine(); got != "balance acme 49.53" {
		t.Errorf("--until %s: last line %q, want balance acme 49.53\n%s", until, got, r.stdout)
	}
	if n := len(r.lines()); n != 6 {
		t.Errorf("--until: %d lines, want 6 (header, 4 events, balance)", n)
	}
	before := d.mustCtl("replay", "acme", "--until", "2000-01-01T00:00:00Z")
	if got := before.lastLine(); got != "balance acme 0" {
		t.Errorf("--until before the account: %q", got)
	}
}

func testExplain(t *testing.T, d *daemon) {
	r := d.mustCtl("explain", "acme", "call-1")
	wantContains(t, "explain", r.stdout,
		"usage call-1 of account acme",
		"version 3 of 9, store position",
		"type             call (reason fup_exceeded)",
		"cause            fair_usage_exceeded",
		"user             u-7",
		"destination      +447911123456",
		"quantity         21 minute",
		"charged          0.42 USD",
		"balance before   50\n",
		"balance after    49.58\n",
		"adjustments referencing it: 1",
		`refund-1  +0.2  "refund of disputed call"`,
		"refunded         0.2\n",
		"refundable       0.22\n")

	var x explanation
	if err := json.Unmarshal([]byte(d.mustCtl("explain", "acme", "sms-1", "--json").stdout), &x); err != nil {
		t.Fatal(err)
	}
	if x.Version != 4 || len(x.Adjustments) != 0 || !x.Refundable.Equal(x.Amount) || x.BalanceAfter.String() != "49.53" {
		t.Errorf("explain sms-1 --json: %+v", x)
	}

	r = d.ctl("explain", "acme", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, `ledgerctl: usage "nope" was never charged to account "acme"`) {
		t.Errorf("unknown usage: exit %d, stderr %q", r.code, r.stderr)
	}
	r = d.ctl("explain", "ghost", "call-1")
	if r.code != 1 || !strings.Contains(r.stderr, `account "ghost" has no events`) {
		t.Errorf("unknown account: exit %d, stderr %q", r.code, r.stderr)
	}
}

func testOperator(t *testing.T, d *daemon) {
	r := d.mustCtl("balance", "acme")
	wantContains(t, "balance", r.stdout, "balance                74.73 USD", "alert                  ok", "version                9")
	r = d.mustCtl("balance", "beta")
	wantContains(t, "balance", r.stdout, "balance                -4.5 USD", "alert                  depleted")

	r = d.mustCtl("open", "acme", "--currency", "USD")
	wantContains(t, "open again", r.stdout, "account acme already open: USD, balance 74.73")

	r = d.mustCtl("top-up", "acme", "25", "--id", "tu-1")
	wantContains(t, "repeated top-up", r.stdout, "top-up tu-1 of 25 for acme already requested: succeeded")
	r = d.mustCtl("adjust", "acme", "0.2", "--usage-id", "call-1", "--reason", "refund of disputed call", "--id", "refund-1")
	wantContains(t, "repeated adjustment", r.stdout, "adjustment refund-1 was already applied to acme: 0.2 (usage call-1)")
}

func testAPIErrors(t *testing.T, d *daemon) {
	for _, tt := range []struct {
		name string
		give []string
		want string
	}{
		{"unknown account", []string{"top-up", "ghost", "10"}, "ledgerctl: account_not_found: "},
		{"refund above the charge", []string{"adjust", "acme", "0.3", "--usage-id", "call-1", "--reason", "too much"}, "ledgerctl: refund_exceeds_charge: "},
		{"bad amount", []string{"top-up", "acme", "1.23456"}, "ledgerctl: invalid_amount: "},
		{"other currency", []string{"open", "acme", "--currency", "EUR"}, "ledgerctl: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := d.ctl(tt.give...)
			if r.code != 1 || !strings.HasPrefix(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
	r := ctl("balance", "acme", "--api-url", "http://"+d.httpAddr, "--token", "wrong")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "ledgerctl: unauthorized: ") {
		t.Errorf("wrong token: exit %d, stderr %q", r.code, r.stderr)
	}
}

func testMovements(t *testing.T, d *daemon) {
	r := d.mustCtl("movements", "acme")
	lines := r.lines()
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "occurred_at,event_id,type,cause") {
		t.Fatalf("csv: %d lines, want header and 5 movements:\n%s", len(lines), r.stdout)
	}
	r = d.mustCtl("movements", "acme", "--format", "json")
	var ms []map[string]any
	for _, l := range r.lines() {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("json line %q: %v", l, err)
		}
		ms = append(ms, m)
	}
	if len(ms) != 5 || ms[1]["reference"] != "call-1" || ms[1]["amount"] != "-0.42" || ms[4]["balance_after"] != "74.73" {
		t.Errorf("json movements: %v", ms)
	}
	r = d.mustCtl("movements", "acme", "--format", "json", "--type", "usage", "--user-id", "u-8")
	if n := len(r.lines()); n != 1 || !strings.Contains(r.stdout, `"reference":"sms-1"`) {
		t.Errorf("filtered: %d lines:\n%s", n, r.stdout)
	}
}

// tamper changes a balance in the live read models behind ledgerd's back, as a bug or a
// hand-edit would.
func tamper(t *testing.T, d *daemon, account, balance string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(d.dataDir, "readmodels.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec("UPDATE accounts SET balance = ? WHERE account_id = ?", balance, account)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tamper: %d rows updated", n)
	}
}

func testVerifyAfterRestart(t *testing.T, d *daemon) {
	d.stop()
	d.start()
	r := d.mustCtl("verify")
	if r.stdout != "ok: 2 accounts, 12 events verified\n" {
		t.Errorf("verify: %q", r.stdout)
	}
}

func testVerifyTampered(t *testing.T, d *daemon) {
	tamper(t, d, "acme", "999")
	r := d.ctl("verify")
	if r.code != 1 {
		t.Errorf("verify of tampered read models: exit %d, want 1", r.code)
	}
	if r.stdout != "account acme: balance live 999 rebuilt 74.73\n" {
		t.Errorf("verify listed %q", r.stdout)
	}
	wantContains(t, "verify stderr", r.stderr, "ledgerctl: verify: the read models at "+filepath.Join(d.dataDir, "readmodels.db")+" differ from the event store")
}

func testRebuild(t *testing.T, d *daemon) {
	tamper(t, d, "acme", "999")
	if got := d.account("acme").Balance; got != "999" {
		t.Fatalf("tampered balance not visible: %s", got)
	}
	r := d.mustCtl("rebuild")
	wantContains(t, "rebuild stdout", r.stdout, "rebuilt "+filepath.Join(d.dataDir, "readmodels.db")+" up to store position ")
	wantContains(t, "rebuild progress", r.stderr, "rebuild: 100% ")
	if got := d.account("acme").Balance; got != "74.73" {
		t.Errorf("balance after rebuild %s, want 74.73", got)
	}
	if got := d.account("beta").Balance; got != "-4.5" {
		t.Errorf("beta balance after rebuild %s, want -4.5", got)
	}
	// ledgerd keeps projecting into the swapped-in read models.
	d.publishUsage("beta", "b-2", "sms", "", "0.5", "")
	d.waitVersion("beta", 4)
	if got := d.account("beta").Balance; got != "-5" {
		t.Errorf("beta balance after a usage following the rebuild %s, want -5", got)
	}
	if r := d.mustCtl("verify"); r.stdout != "ok: 2 accounts, 13 events verified\n" {
		t.Errorf("verify after rebuild: %q", r.stdout)
	}
}
