package projections

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

func TestApplyAccount(t *testing.T) {
	tests := []struct {
		name string
		give func(h *history) []events.Envelope
		want Account // AccountID, Currency, Alert, AutoTopUp.State, Version compared; decimals as decimals
	}{
		{
			name: "new account is depleted",
			give: func(h *history) []events.Envelope { return []events.Envelope{h.open("a", "10")} },
			want: Account{Balance: dec("0"), Alert: ledger.AlertDepleted, LowBalanceThreshold: dec("10"),
				AutoTopUp: AutoTopUp{State: AutoTopUpIdle}, Version: 1},
		},
		{
			name: "top-up, usage and adjustment",
			give: func(h *history) []events.Envelope {
				return flat([]events.Envelope{h.open("a", "10")}, h.topUp("a", "tu-1", events.TopUpOneTime, "50"),
					[]events.Envelope{h.usage("a", "u-1", "0.42"), h.adjust("a", "adj-1", "0.0200")})
			},
			want: Account{Balance: dec("49.6"), Alert: ledger.AlertOK, LowBalanceThreshold: dec("10"),
				AutoTopUp: AutoTopUp{State: AutoTopUpIdle}, Version: 5},
		},
		{
			name: "usage below zero is still charged",
			give: func(h *history) []events.Envelope {
				return []events.Envelope{h.open("a", "10"), h.usage("a", "u-1", "3.5")}
			},
			want: Account{Balance: dec("-3.5"), Alert: ledger.AlertDepleted, LowBalanceThreshold: dec("10"),
				AutoTopUp: AutoTopUp{State: AutoTopUpIdle}, Version: 2},
		},
		{
			name: "threshold change makes it low",
			give: func(h *history) []events.Envelope {
				return flat([]events.Envelope{h.open("a", "10")}, h.topUp("a", "tu-1", events.TopUpOneTime, "20"),
					[]events.Envelope{h.ev("a", events.AlertSettingsChanged{LowBalanceThreshold: dec("25")})})
			},
			want: Account{Balance: dec("20"), Alert: ledger.AlertLow, LowBalanceThreshold: dec("25"),
				AutoTopUp: AutoTopUp{State: AutoTopUpIdle}, Version: 4},
		},
		{
			name: "auto top-up being paid is pending",
			give: func(h *history) []events.Envelope {
				return []events.Envelope{h.open("a", "10"),
					h.ev("a", events.AutoTopUpConfigured{Enabled: true, Threshold: dec("20"), Amount: dec("100")}),
					h.ev("a", events.TopUpRequested{TopUpID: "auto-3", Kind: events.TopUpAuto, Amount: dec("100")})}
			},
			want: Account{Balance: dec("0"), Alert: ledger.AlertDepleted, LowBalanceThreshold: dec("10"),
				AutoTopUp: AutoTopUp{Enabled: true, Threshold: dec("20"), Amount: dec("100"), State: AutoTopUpPending}, Version: 3},
		},
		{
			name: "one-time top-up without auto top-up leaves it idle",
			give: func(h *history) []events.Envelope {
				return []events.Envelope{h.open("a", "10"),
					h.ev("a", events.TopUpRequested{TopUpID: "tu-1", Kind: events.TopUpOneTime, Amount: dec("5")})}
			},
			want: Account{Balance: dec("0"), Alert: ledger.AlertDepleted, LowBalanceThreshold: dec("10"),
				AutoTopUp: AutoTopUp{State: AutoTopUpIdle}, Version: 2},
		},
		{
			name: "failed auto top-up suspends",
			give: func(h *history) []events.Envelope {
				return []events.Envelope{h.open("a", "10"),
					h.ev("a", events.AutoTopUpConfigured{Enabled: true, Threshold: dec("20"), Amount: dec("100")}),
					h.ev("a", events.TopUpRequested{TopUpID: "auto-3", Kind: events.TopUpAuto, Amount: dec("100")}),
					h.ev("a", events.TopUpFailed{TopUpID: "auto-3", Attempts: 3, Reason: "card_declined", Suspended: true})}
			},
			want: Account{Balance: dec("0"), Alert: ledger.AlertDepleted, LowBalanceThreshold: dec("10"),
				AutoTopUp: AutoTopUp{Enabled: true, Threshold: dec("20"), Amount: dec("100"), State: AutoTopUpSuspended, LastFailure: "card_declined"}, Version: 4},
		},
		{
			name: "saving the settings lifts the suspension",
			give: func(h *history) []events.Envelope {
				return []events.Envelope{h.open("a", "10"),
					h.ev("a", events.AutoTopUpConfigured{Enabled: true, Threshold: dec("20"), Amount: dec("100")}),
					h.ev("a", events.TopUpRequested{TopUpID: "auto-3", Kind: events.TopUpAuto, Amount: dec("100")}),
					h.ev("a", events.TopUpFailed{TopUpID: "auto-3", Attempts: 3, Reason: "card_declined", Suspended: true}),
					h.ev("a", events.AutoTopUpConfigured{Enabled: true, Threshold: dec("20"), Amount: dec("50")})}
			},
			want: Account{Balance: dec("0"), Alert: ledger.AlertDepleted, LowBalanceThreshold: dec("10"),
				AutoTopUp: AutoTopUp{Enabled: true, Threshold: dec("20"), Amount: dec("50"), State: AutoTopUpIdle}, Version: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			evs := tt.give(newHistory())
			mustApply(t, db, evs...)
			got := mustAccount(t, db, "a")
			assertAccount(t, got, tt.want)
			if !got.UpdatedAt.Equal(evs[len(evs)-1].RecordedAt) {
				t.Errorf("updated_at = %s, want %s", got.UpdatedAt, evs[len(evs)-1].RecordedAt)
			}
		})
	}
}

func assertAccount(t *testing.T, got, want Account) {
	t.Helper()
	if got.Currency != "USD" || got.Alert != want.Alert || got.Version != want.Version ||
		!got.Balance.Equal(want.Balance) || !got.LowBalanceThreshold.Equal(want.LowBalanceThreshold) ||
		got.AutoTopUp.Enabled != want.AutoTopUp.Enabled || got.AutoTopUp.State != want.AutoTopUp.State ||
		got.AutoTopUp.LastFailure != want.AutoTopUp.LastFailure ||
		!got.AutoTopUp.Threshold.Equal(want.AutoTopUp.Threshold) || !got.AutoTopUp.Amount.Equal(want.AutoTopUp.Amount) {
		t.Errorf("account =\n%+v\nwant\n%+v", got, want)
	}
}

func TestAlertSince(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	steps := []struct {
		give      events.Envelope
		wantAlert string
		// wantSince is the index of the step whose event moved the account into its level.
		wantSince int
	}{
		{give: h.open("a", "10"), wantAlert: ledger.AlertDepleted, wantSince: 0},
		{give: h.ev("a", events.AlertSettingsChanged{LowBalanceThreshold: dec("20")}), wantAlert: ledger.AlertDepleted, wantSince: 0},
		{give: h.adjust("a", "adj-1", "5"), wantAlert: ledger.AlertLow, wantSince: 2},
		{give: h.adjust("a", "adj-2", "5"), wantAlert: ledger.AlertLow, wantSince: 2},
		{give: h.adjust("a", "adj-3", "10"), wantAlert: ledger.AlertOK, wantSince: 4},
		{give: h.usage("a", "u-1", "0.0001"), wantAlert: ledger.AlertLow, wantSince: 5},
		{give: h.ev("a", events.AlertSettingsChanged{LowBalanceThreshold: dec("19")}), wantAlert: ledger.AlertOK, wantSince: 6},
		{give: h.usage("a", "u-2", "19.9999"), wantAlert: ledger.AlertDepleted, wantSince: 7},
		{give: h.usage("a", "u-3", "1"), wantAlert: ledger.AlertDepleted, wantSince: 7},
	}
	for i, s := range steps {
		mustApply(t, db, s.give)
		a := mustAccount(t, db, "a")
		if a.Alert != s.wantAlert || !a.AlertSince.Equal(steps[s.wantSince].give.RecordedAt) {
			t.Errorf("step %d: alert %s since %s, want %s since %s", i, a.Alert, a.AlertSince, s.wantAlert, steps[s.wantSince].give.RecordedAt)
		}
	}
}

// TestAlertSinceWithinOneBatch checks that the level transitions are followed event by event
// even when one batch holds them all.
func TestAlertSinceWithinOneBatch(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	evs := []events.Envelope{h.open("a", "10"), h.adjust("a", "adj-1", "5"), h.adjust("a", "adj-2", "10"), h.usage("a", "u-1", "1")}
	mustApply(t, db, evs...)
	a := mustAccount(t, db, "a")
	if a.Alert != ledger.AlertOK || !a.AlertSince.Equal(evs[2].RecordedAt) {
		t.Errorf("alert %s since %s, want ok since %s", a.Alert, a.AlertSince, evs[2].RecordedAt)
	}
}

func TestRunningBalance(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	evs := flat([]events.Envelope{h.open("a", "10")},
		h.topUp("a", "tu-1", events.TopUpOneTime, "10"),
		[]events.Envelope{h.usage("a", "u-1", "0.42"), h.usage("a", "u-2", "0"), h.usage("a", "u-3", "12.3333"),
			h.adjust("a", "adj-1", "0.42"), h.ev("a", events.AlertSettingsChanged{LowBalanceThreshold: dec("1")}),
			h.adjust("a", "adj-2", "-0.0001")},
		h.topUp("a", "auto-9", events.TopUpAuto, "100"))
	mustApply(t, db, evs...)
	want := []struct {
		version     uint64
		typ, cause  string
		amount, bal string
		ref         string
	}{
		{3, MovementTopUp, CauseTopUp, "10", "10", "tu-1"},
		{4, MovementUsage, ledger.CauseMessaging, "-0.42", "9.58", "u-1"},
		{5, MovementUsage, ledger.CauseMessaging, "0", "9.58", "u-2"},
		{6, MovementUsage, ledger.CauseMessaging, "-12.3333", "-2.7533", "u-3"},
		{7, MovementAdjustment, CauseAdjustment, "0.42", "-2.3333", "adj-1"},
		{9, MovementAdjustment, CauseAdjustment, "-0.0001", "-2.3334", "adj-2"},
		{11, MovementTopUp, CauseAutoTopUp, "100", "97.6666", "auto-9"},
	}
	got := allMovements(t, db, "a", MovementFilter{})
	if len(got) != len(want) {
		t.Fatalf("%d movements, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Version != w.version || g.Type != w.typ || g.Cause != w.cause || g.Amount.String() != w.amount ||
			g.BalanceAfter.String() != w.bal || g.Reference != w.ref || g.Currency != "USD" {
			t.Errorf("movement %d = %+v, want %+v", i, g, w)
		}
		if e := evs[g.Version-1]; g.EventID != e.ID || !g.RecordedAt.Equal(e.RecordedAt) || !g.OccurredAt.Equal(e.OccurredAt) {
			t.Errorf("movement %d ids/times %v %s %s, want %v %s %s", i, g.EventID, g.OccurredAt, g.RecordedAt, e.ID, e.OccurredAt, e.RecordedAt)
		}
	}
	if a := mustAccount(t, db, "a"); !a.Balance.Equal(dec("97.6666")) {
		t.Errorf("balance %s, want 97.6666", a.Balance)
	}
}

func TestUsageMovementKeepsUsageTimeAndUser(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	used := t0.Add(-48 * time.Hour)
	u := usageOf("call-8f2c", "call", "fup_exceeded", "0.42", "u-7")
	u.UsedAt, u.Quantity, u.Unit, u.Destination = used, "21", "minute", "+447911123456"
	mustApply(t, db, h.open("a", "10"), h.ev("a", u))
	m := allMovements(t, db, "a", MovementFilter{})[0]
	if !m.OccurredAt.Equal(used) || m.UserID != "u-7" || m.Cause != ledger.CauseFairUsageExceeded ||
		m.Description != "Call to +447911123456, 21 minute, fair usage exceeded, by u-7" {
		t.Errorf("movement = %+v", m)
	}
}

// TestReapplyIsNoOp replays what a crash between a commit and the acknowledgement of the
// events looks like: the store delivers events again, alone or mixed with new ones.
func TestReapplyIsNoOp(t *testing.T) {
	h := newHistory()
	first := flat([]events.Envelope{h.open("a", "10"), h.open("b", "5")}, h.topUp("a", "tu-1", events.TopUpOneTime, "50"),
		[]events.Envelope{h.usage("a", "u-1", "1"), h.usage("b", "u-1", "2")})
	second := []events.Envelope{h.usage("a", "u-2", "3"), h.adjust("b", "adj-1", "1"),
		h.ev("a", events.TopUpRequested{TopUpID: "tu-2", Kind: events.TopUpOneTime, Amount: dec("5")})}
	third := []events.Envelope{h.ev("a", events.TopUpAttemptFailed{TopUpID: "tu-2", Attempt: 1, Reason: "card_declined"})}

	tests := []struct {
		name    string
		batches [][]events.Envelope
	}{
		{"once", [][]events.Envelope{first, second, third}},
		{"same batch twice", [][]events.Envelope{first, first, second, second, third, third}},
		{"redelivery mixed with new events", [][]events.Envelope{first, flat(first, second), flat(second, third)}},
		{"redelivery of a tail", [][]events.Envelope{flat(first, second, third), third, second[1:]}},
		{"one event at a time", oneByOne(flat(first, second, third))},
	}
	var want snapshot
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			for _, b := range tt.batches {
				mustApply(t, db, b...)
			}
			got := takeSnapshot(t, db)
			if cp := got.checkpoint; cp != h.pos {
				t.Errorf("checkpoint %d, want %d", cp, h.pos)
			}
			if i == 0 {
				want = got
				return
			}
			if d := got.diff(want); d != "" {
				t.Error(d)
			}
		})
	}
}

func oneByOne(evs []events.Envelope) [][]events.Envelope {
	var bs [][]events.Envelope
	for _, e := range evs {
		bs = append(bs, []events.Envelope{e})
	}
	return bs
}

// snapshot is everything a read model shows, for comparing two of them.
type snapshot struct {
	checkpoint uint64
	text       string
}

func takeSnapshot(t *testing.T, db *DB) snapshot {
	t.Helper()
	ctx := context.Background()
	cp, err := db.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	err = db.Accounts(ctx, func(a Account) error {
		sb.WriteString(strings.Join([]string{a.AccountID, a.Balance.String(), a.Alert, a.AlertSince.String(), a.AutoTopUp.State, a.UpdatedAt.String()}, " "))
		sb.WriteString("\n")
		for _, m := range allMovements(t, db, a.AccountID, MovementFilter{}) {
			sb.WriteString(strings.Join([]string{"  ", m.Reference, m.Amount.String(), m.BalanceAfter.String(), m.Description}, " "))
			sb.WriteString("\n")
		}
		ts, err := db.TopUps(ctx, a.AccountID)
		for _, tu := range ts {
			sb.WriteString(strings.Join([]string{"  ", tu.TopUpID, tu.State, tu.FailureReason, tu.Amount.String()}, " "))
			sb.WriteString("\n")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{cp, sb.String()}
}

func (s snapshot) diff(want snapshot) string {
	if s.text != want.text {
		return "read model:\n" + s.text + "want:\n" + want.text
	}
	return ""
}

// TestCheckpointAtomicity checks that a batch that fails half-way leaves neither rows nor
// checkpoint behind, and that reopening the file shows exactly what was committed.
func TestCheckpointAtomicity(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	ctx := context.Background()
	committed := []events.Envelope{h.open("a", "10"), h.usage("a", "u-1", "1")}
	mustApply(t, db, committed...)
	before := takeSnapshot(t, db)

	good := []events.Envelope{h.open("b", "10"), h.usage("a", "u-2", "1"), h.adjust("b", "adj-1", "4")}
	gap := h.usage("a", "u-3", "1")
	gap.Version += 5 // a stream with a hole: the batch must fail as a whole
	err := db.Apply(ctx, append(good, gap))
	if err == nil || !strings.Contains(err.Error(), "gap") {
		t.Fatalf("Apply with a gap = %v, want a gap error", err)
	}
	if d := takeSnapshot(t, db).diff(before); d != "" {
		t.Errorf("failed batch left changes: %s", d)
	}
	if cp, _ := db.Checkpoint(ctx); cp != committed[1].Position {
		t.Errorf("checkpoint %d after failed batch, want %d", cp, committed[1].Position)
	}

	mustApply(t, db, good...)
	after := takeSnapshot(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := Open(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if d := takeSnapshot(t, reopened).diff(after); d != "" {
		t.Errorf("after reopen: %s", d)
	}
	if cp, _ := reopened.Checkpoint(ctx); cp != good[2].Position {
		t.Errorf("checkpoint after reopen %d, want %d", cp, good[2].Position)
	}
}

func TestApplyRejects(t *testing.T) {
	h := newHistory()
	open := h.open("a", "10")
	noPos := h.usage("a", "u-1", "1")
	noPos.Position = 0
	tests := []struct {
		name string
		give []events.Envelope
		want string
	}{
		{"no position", []events.Envelope{open, noPos}, "no store position"},
		{"first event not version 1", []events.Envelope{h.ev("b", events.AlertSettingsChanged{}), h.ev("b", events.AlertSettingsChanged{})}[1:], "gap"},
		{"top-up never requested", []events.Envelope{h.open("c", "1"), h.ev("c", events.TopUpSucceeded{TopUpID: "tu-x", Amount: dec("1"), Attempt: 1})}, "never requested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			err := db.Apply(context.Background(), tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Apply = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	mustApply(t, db, h.open("a", "10"))
	ro, err := OpenReadOnly(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	// The writer keeps going while the reader is open: WAL lets both work.
	mustApply(t, db, h.adjust("a", "adj-1", "3"))
	if a := mustAccount(t, ro, "a"); !a.Balance.Equal(dec("3")) {
		t.Errorf("read-only sees balance %s, want 3", a.Balance)
	}
	if err := ro.Apply(context.Background(), []events.Envelope{h.adjust("a", "adj-2", "1")}); err == nil {
		t.Error("Apply on a read-only DB succeeded")
	}
	if _, err := OpenReadOnly(db.Path() + ".missing"); err == nil {
		t.Error("OpenReadOnly of a missing file succeeded")
	}
	// Also once the writer is gone and SQLite has folded the WAL into the file.
	ro.Close()
	db.Close()
	if ro, err = OpenReadOnly(db.Path()); err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if a := mustAccount(t, ro, "a"); !a.Balance.Equal(dec("3")) {
		t.Errorf("read-only after the writer closed sees balance %s, want 3", a.Balance)
	}
}

// TestPageSize checks that a new file gets pageSizeParam's 8 KiB pages and that a file
// created earlier with SQLite's default 4 KiB pages keeps them and goes on working: the page
// size of a file with tables cannot change, so Open must not depend on it.
func TestPageSize(t *testing.T) {
	pageSize := func(db *DB) int {
		t.Helper()
		var n int
		if err := db.r.QueryRow("PRAGMA page_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := pageSize(openTest(t)); n != 8192 {
		t.Errorf("new file: page_size %d, want 8192", n)
	}

	path := filepath.Join(t.TempDir(), "readmodels.db")
	old, err := open(path, "_txlock=immediate&_journal_mode=WAL&_pragma=page_size(4096)", schema)
	if err != nil {
		t.Fatal(err)
	}
	h := newHistory()
	mustApply(t, old, h.open("acct-1", "10"), h.usage("acct-1", "u-1", "1.5"))
	old.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := pageSize(db); n != 4096 {
		t.Errorf("old file: page_size %d, want 4096 kept", n)
	}
	mustApply(t, db, h.usage("acct-1", "u-2", "2"))
	if a := mustAccount(t, db, "acct-1"); !a.Balance.Equal(dec("-3.5")) {
		t.Errorf("balance %s, want -3.5", a.Balance)
	}
	if ms := allMovements(t, db, "acct-1", MovementFilter{}); len(ms) != 2 {
		t.Errorf("%d movements, want 2", len(ms))
	}
}
