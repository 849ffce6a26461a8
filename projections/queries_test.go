package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

func TestPaginationWhileAppending(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	ctx := context.Background()
	mustApply(t, db, h.open("a", "10"))
	appendUsage := func(n int) {
		evs := make([]events.Envelope, n)
		for i := range evs {
			evs[i] = h.usage("a", fmt.Sprintf("u-%d", h.versions["a"]+1), "0.01")
		}
		mustApply(t, db, evs...)
	}
	appendUsage(250)
	var seen []uint64
	cursor := ""
	for page := 0; ; page++ {
		ms, next, err := db.Movements(ctx, "a", MovementFilter{Limit: 40, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			seen = append(seen, m.Version)
		}
		if next == "" {
			break
		}
		if page < 5 {
			appendUsage(17) // new usage lands while the dashboard pages
		}
		cursor = next
	}
	want := int(h.versions["a"]) - 1 // every usage; the opening event is no movement
	if len(seen) != want {
		t.Fatalf("paged %d movements, want %d", len(seen), want)
	}
	for i, v := range seen {
		if v != uint64(i+2) {
			t.Fatalf("movement %d has version %d, want %d (gap or duplicate)", i, v, i+2)
		}
	}
}

func TestMovementsPageSize(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	ctx := context.Background()
	evs := []events.Envelope{h.open("a", "10")}
	for i := 0; i < pageSizeMax+5; i++ {
		evs = append(evs, h.usage("a", fmt.Sprintf("u-%d", i), "0"))
	}
	mustApply(t, db, evs...)
	tests := []struct {
		give     int
		want     int
		wantNext bool
	}{
		{give: 0, want: pageSizeDefault, wantNext: true},
		{give: 7, want: 7, wantNext: true},
		{give: pageSizeMax + 5, want: pageSizeMax, wantNext: true},
		{give: pageSizeMax + 500, want: pageSizeMax, wantNext: true},
	}
	for _, tt := range tests {
		ms, next, err := db.Movements(ctx, "a", MovementFilter{Limit: tt.give})
		if err != nil || len(ms) != tt.want || (next != "") != tt.wantNext {
			t.Errorf("limit %d: %d movements, next %q, %v; want %d", tt.give, len(ms), next, err, tt.want)
		}
	}
	// Exactly the rest: the last page says there is no next one.
	ms, next, err := db.Movements(ctx, "a", MovementFilter{Limit: 5, Cursor: encodeCursor(uint64(pageSizeMax + 1))})
	if err != nil || len(ms) != 5 || next != "" {
		t.Errorf("last page: %d movements, next %q, %v; want 5 and no cursor", len(ms), next, err)
	}
}

func TestMovementsInvalidInput(t *testing.T) {
	db := openTest(t)
	tests := []struct {
		name string
		give MovementFilter
	}{
		{"cursor not base64", MovementFilter{Cursor: "!!"}},
		{"cursor of another format", MovementFilter{Cursor: "MTIz"}},
		{"cursor with a negative version", MovementFilter{Cursor: "djE6LTE"}},
		{"negative limit", MovementFilter{Limit: -1}},
		{"unknown cause", MovementFilter{Cause: "roaming"}},
		{"unknown type", MovementFilter{Type: "refund"}},
		{"to before from", MovementFilter{From: t0, To: t0.Add(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := db.Movements(context.Background(), "a", tt.give)
			if ledger.ErrorCode(err) != ledger.EINVALID {
				t.Errorf("Movements = %v, want an EINVALID error", err)
			}
		})
	}
}

func TestMovementFilters(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	mk := func(id, typ, reason, amount, user string, at time.Time) events.Envelope {
		u := usageOf(id, typ, reason, amount, user)
		u.UsedAt = at
		return h.ev("a", u)
	}
	day := 24 * time.Hour
	evs := flat([]events.Envelope{h.open("a", "10"),
		mk("c1", "call", "fup_exceeded", "1", "u-1", t0),
		mk("c2", "call", "international", "2", "u-2", t0.Add(day)),
		mk("s1", "sms", "", "0.1", "u-1", t0.Add(2*day)),
		mk("v1", "voice_agent", "", "3", "", t0.Add(3*day)),
		// Reported late: occurred before the others, recorded after.
		mk("f1", "forwarded_call", "", "0.5", "u-2", t0.Add(-day))},
		h.topUp("a", "tu-1", events.TopUpOneTime, "20"),
		[]events.Envelope{h.adjust("a", "adj-1", "1")})
	mustApply(t, db, evs...)
	tests := []struct {
		name string
		give MovementFilter
		want []string
	}{
		{"all", MovementFilter{}, []string{"c1", "c2", "s1", "v1", "f1", "tu-1", "adj-1"}},
		{"cause", MovementFilter{Cause: ledger.CauseOutsidePackage}, []string{"c2"}},
		{"type usage", MovementFilter{Type: MovementUsage}, []string{"c1", "c2", "s1", "v1", "f1"}},
		{"type top_up", MovementFilter{Type: MovementTopUp}, []string{"tu-1"}},
		{"user", MovementFilter{UserID: "u-1"}, []string{"c1", "s1"}},
		{"from inclusive", MovementFilter{From: t0.Add(day), Type: MovementUsage}, []string{"c2", "s1", "v1"}},
		{"to exclusive", MovementFilter{To: t0.Add(day), Type: MovementUsage}, []string{"c1", "f1"}},
		{"range and user", MovementFilter{From: t0.Add(-day), To: t0.Add(3 * day), UserID: "u-2"}, []string{"c2", "f1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, m := range allMovements(t, db, "a", tt.give) {
				got = append(got, m.Reference)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			page, _, err := db.Movements(context.Background(), "a", tt.give)
			if err != nil || len(page) != len(tt.want) {
				t.Errorf("Movements: %d rows, %v; want %d", len(page), err, len(tt.want))
			}
		})
	}
}

func TestWriteMovementsCSV(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	call := usageOf("call-8f2c", "call", "fup_exceeded", "0.4200", "u-7")
	call.UsedAt, call.Quantity, call.Unit, call.Destination = t0.Add(90*time.Second+5*time.Millisecond), "21", "minute", "+447911123456"
	evs := flat([]events.Envelope{h.open("acme", "10")},
		h.topUp("acme", "tu-1", events.TopUpOneTime, "50"),
		[]events.Envelope{h.ev("acme", call),
			h.ev("acme", events.AdjustmentApplied{AdjustmentID: "adj-1", Amount: dec("0.42"), Reason: `refund of "disputed", call`, UsageID: "call-8f2c"})})
	mustApply(t, db, evs...)
	var buf bytes.Buffer
	if err := db.WriteMovementsCSV(context.Background(), &buf, "acme", MovementFilter{}); err != nil {
		t.Fatal(err)
	}
	want := "occurred_at,event_id,type,cause,user_id,reference,description,amount,balance_after,currency\n" +
		"2026-11-24T10:00:02Z," + evs[2].ID.String() + ",top_up,top_up,,tu-1,Top-up,50,50,USD\n" +
		"2026-11-24T10:01:30.005Z," + evs[3].ID.String() + ",usage,fair_usage_exceeded,u-7,call-8f2c,\"Call to +447911123456, 21 minute, fair usage exceeded, by u-7\",-0.42,49.58,USD\n" +
		"2026-11-24T10:00:04Z," + evs[4].ID.String() + ",adjustment,adjustment,,adj-1,\"Adjustment: refund of \"\"disputed\"\", call (usage call-8f2c)\",0.42,50,USD\n"
	if buf.String() != want {
		t.Errorf("csv =\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := db.WriteMovementsCSV(context.Background(), &buf, "nobody", MovementFilter{}); err != nil || buf.String() != strings.SplitAfter(want, "\n")[0] {
		t.Errorf("csv of unknown account = %q, %v; want the header only", buf.String(), err)
	}
}

func TestDescriptions(t *testing.T) {
	tests := []struct {
		give events.UsageCharged
		want string
	}{
		{usage("call", "fup_exceeded", "+447911123456", "21", "minute", "u-7"), "Call to +447911123456, 21 minute, fair usage exceeded, by u-7"},
		{usage("call", "international", "+12025550123", "3", "minute", ""), "Call to +12025550123, 3 minute, international"},
		{usage("call", "premium", "+449098790000", "", "", ""), "Call to +449098790000, premium number"},
		{usage("call", "unsupported_destination", "", "1", "minute", "u-1"), "Call, 1 minute, destination outside package, by u-1"},
		{usage("forwarded_call", "", "+447700900123", "4", "minute", "u-2"), "Forwarded call to +447700900123, 4 minute, call forwarding, by u-2"},
		{usage("sms", "", "+447700900123", "1", "message", ""), "SMS to +447700900123, 1 message, messaging"},
		{usage("whatsapp", "", "+447700900123", "2", "", "u-3"), "WhatsApp message to +447700900123, 2, messaging, by u-3"},
		{usage("conversation_intelligence", "", "", "12", "minute", ""), "Conversation intelligence, 12 minute, advanced features"},
		{usage("voice_agent", "", "", "", "", "u-9"), "Voice agent, advanced features, by u-9"},
	}
	for _, tt := range tests {
		if got := describeUsage(tt.give); got != tt.want {
			t.Errorf("describeUsage(%s/%s) = %q, want %q", tt.give.UsageType, tt.give.Reason, got, tt.want)
		}
	}
	adj := []struct {
		give events.AdjustmentApplied
		want string
	}{
		{events.AdjustmentApplied{Reason: "refund of disputed call", UsageID: "call-8f2c"}, "Adjustment: refund of disputed call (usage call-8f2c)"},
		{events.AdjustmentApplied{Reason: "goodwill"}, "Adjustment: goodwill"},
		{events.AdjustmentApplied{}, "Adjustment"},
	}
	for _, tt := range adj {
		if got := describeAdjustment(tt.give); got != tt.want {
			t.Errorf("describeAdjustment(%+v) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func usage(typ, reason, dest, qty, unit, user string) events.UsageCharged {
	u := usageOf("x", typ, reason, "1", user)
	u.Destination, u.Quantity, u.Unit = dest, qty, unit
	return u
}

func TestUsageSummary(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	ctx := context.Background()
	mk := func(id, typ, reason, amount, user string, at time.Time) events.Envelope {
		u := usageOf(id, typ, reason, amount, user)
		u.UsedAt = at
		return h.ev("a", u)
	}
	mustApply(t, db, flat([]events.Envelope{h.open("a", "10"),
		mk("1", "call", "fup_exceeded", "1.5", "u-1", t0),
		mk("2", "sms", "", "0.25", "u-2", t0.Add(time.Hour)),
		mk("3", "sms", "", "1.25", "u-2", t0.Add(2*time.Hour)),
		mk("4", "call", "premium", "0.0001", "", t0.Add(3*time.Hour)),
		mk("5", "voice_agent", "", "0", "u-3", t0.Add(4*time.Hour)),
		mk("6", "call", "fup_exceeded", "1.5", "u-0", t0.Add(5*time.Hour))},
		h.topUp("a", "tu-1", events.TopUpOneTime, "100"),
		[]events.Envelope{h.adjust("a", "adj-1", "1")})...)
	tests := []struct {
		name      string
		from, to  time.Time
		wantTotal string
		wantCause map[string]string
		wantUsers string
	}{
		{"all time", time.Time{}, time.Time{}, "4.5001",
			map[string]string{"fair_usage_exceeded": "3", "messaging": "1.5", "outside_package": "0.0001", "advanced_features": "0", "forwarding": "0"},
			"u-0 1.5 1|u-1 1.5 1|u-2 1.5 2| 0.0001 1|u-3 0 1"},
		{"one hour window", t0.Add(time.Hour), t0.Add(2 * time.Hour), "0.25",
			map[string]string{"fair_usage_exceeded": "0", "messaging": "0.25", "outside_package": "0", "advanced_features": "0", "forwarding": "0"},
			"u-2 0.25 1"},
		{"empty window", t0.Add(-time.Hour), t0, "0",
			map[string]string{"fair_usage_exceeded": "0", "messaging": "0", "outside_package": "0", "advanced_features": "0", "forwarding": "0"},
			""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := db.UsageSummary(ctx, "a", tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if s.TotalCharged.String() != tt.wantTotal {
				t.Errorf("total %s, want %s", s.TotalCharged, tt.wantTotal)
			}
			if len(s.ByCause) != len(ledger.Causes) {
				t.Errorf("by_cause has %d causes, want %d", len(s.ByCause), len(ledger.Causes))
			}
			for c, w := range tt.wantCause {
				if s.ByCause[c].String() != w {
					t.Errorf("by_cause[%s] = %s, want %s", c, s.ByCause[c], w)
				}
			}
			var users []string
			for _, u := range s.ByUser {
				users = append(users, fmt.Sprintf("%s %s %d", u.UserID, u.Amount, u.Count))
			}
			if got := strings.Join(users, "|"); got != tt.wantUsers {
				t.Errorf("by_user %q, want %q", got, tt.wantUsers)
			}
		})
	}
	b, err := json.Marshal(mustSummary(t, db, "nobody"))
	if err != nil || !strings.Contains(string(b), `"total_charged":"0"`) || !strings.Contains(string(b), `"by_user":[]`) {
		t.Errorf("summary JSON of an unknown account = %s, %v", b, err)
	}
}

func mustSummary(t *testing.T, db *DB, id string) Summary {
	t.Helper()
	s, err := db.UsageSummary(context.Background(), id, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUsageSummaryExactBeyondUnits covers amounts the integer units cannot hold: the
// summary falls back to decimal sums instead of rounding.
func TestUsageSummaryExactBeyondUnits(t *testing.T) {
	tests := []struct {
		name    string
		amounts []string
		want    string
	}{
		{"more than 4 decimals", []string{"0.00001", "1"}, "1.00001"},
		{"units beyond int64", []string{"999999999999999.9999", "1"}, "1000000000000000.9999"},
		{"sum beyond int64", []string{"900000000000000", "900000000000000"}, "1800000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory()
			db := openTest(t)
			evs := []events.Envelope{h.open("a", "10")}
			for i, a := range tt.amounts {
				evs = append(evs, h.usage("a", fmt.Sprint(i), a))
			}
			mustApply(t, db, evs...)
			s := mustSummary(t, db, "a")
			if s.TotalCharged.String() != tt.want || s.ByCause[ledger.CauseMessaging].String() != tt.want || s.ByUser[0].Amount.String() != tt.want {
				t.Errorf("summary %+v, want total %s", s, tt.want)
			}
		})
	}
}

func TestTopUps(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	ctx := context.Background()
	steps := []struct {
		give      events.Event
		wantID    string
		wantState string
		wantTries int
		wantWhy   string
		wantDone  bool
	}{
		{events.TopUpRequested{TopUpID: "tu-1", Kind: events.TopUpOneTime, Amount: dec("50")}, "tu-1", TopUpPending, 0, "", false},
		{events.TopUpAttemptFailed{TopUpID: "tu-1", Attempt: 1, Reason: "gateway_unavailable", NextAttemptAt: t0}, "tu-1", TopUpPending, 1, "gateway_unavailable", false},
		{events.TopUpAttemptFailed{TopUpID: "tu-1", Attempt: 2, Reason: "card_declined", NextAttemptAt: t0}, "tu-1", TopUpPending, 2, "card_declined", false},
		{events.TopUpSucceeded{TopUpID: "tu-1", Amount: dec("50"), Attempt: 3, PaymentID: "p-1"}, "tu-1", TopUpSucceeded, 3, "card_declined", true},
		{events.AutoTopUpConfigured{Enabled: true, Threshold: dec("60"), Amount: dec("25")}, "tu-1", TopUpSucceeded, 3, "card_declined", true},
		{events.TopUpRequested{TopUpID: "auto-6", Kind: events.TopUpAuto, Amount: dec("25")}, "auto-6", TopUpPending, 0, "", false},
		{events.TopUpAttemptFailed{TopUpID: "auto-6", Attempt: 1, Reason: "card_declined", NextAttemptAt: t0}, "auto-6", TopUpPending, 1, "card_declined", false},
		{events.TopUpFailed{TopUpID: "auto-6", Attempts: 2, Reason: "insufficient_funds", Suspended: true}, "auto-6", TopUpFailed, 2, "insufficient_funds", true},
	}
	mustApply(t, db, h.open("a", "10"))
	for i, s := range steps {
		e := h.ev("a", s.give)
		mustApply(t, db, e)
		got, ok, err := db.TopUp(ctx, "a", s.wantID)
		if err != nil || !ok {
			t.Fatalf("step %d: TopUp = %v, %v", i, ok, err)
		}
		if got.State != s.wantState || got.Attempts != s.wantTries || got.FailureReason != s.wantWhy || (got.CompletedAt != nil) != s.wantDone {
			t.Errorf("step %d: %+v, want %s attempts %d reason %q done %v", i, got, s.wantState, s.wantTries, s.wantWhy, s.wantDone)
		}
		if s.wantDone && got.CompletedAt != nil && got.State != TopUpSucceeded && !got.CompletedAt.Equal(e.RecordedAt) {
			t.Errorf("step %d: completed_at %s, want %s", i, got.CompletedAt, e.RecordedAt)
		}
	}
	a := mustAccount(t, db, "a")
	if a.AutoTopUp.State != AutoTopUpSuspended || a.AutoTopUp.LastFailure != "insufficient_funds" || !a.Balance.Equal(dec("50")) {
		t.Errorf("account after failed auto top-up: %+v", a)
	}
	list, err := db.TopUps(ctx, "a")
	if err != nil || len(list) != 2 || list[0].TopUpID != "auto-6" || list[1].TopUpID != "tu-1" ||
		list[0].Kind != events.TopUpAuto || list[1].Kind != events.TopUpOneTime || !list[1].RequestedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("TopUps = %+v, %v; want auto-6 then tu-1", list, err)
	}
	if _, ok, err := db.TopUp(ctx, "a", "nope"); ok || err != nil {
		t.Errorf("unknown top-up: %v, %v", ok, err)
	}
	// A failed top-up moves no money: the only top-up movement is tu-1.
	if ms := allMovements(t, db, "a", MovementFilter{Type: MovementTopUp}); len(ms) != 1 || ms[0].Reference != "tu-1" {
		t.Errorf("top-up movements %+v, want only tu-1", ms)
	}
}

func TestAccountJSON(t *testing.T) {
	h := newHistory()
	db := openTest(t)
	mustApply(t, db, h.open("acme", "10"), h.adjust("acme", "adj-1", "42.50"))
	b, err := json.Marshal(mustAccount(t, db, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"account_id":"acme","currency":"USD","balance":"42.5","alert":"ok","alert_since":"2026-11-24T10:00:01Z",` +
		`"low_balance_threshold":"10","auto_top_up":{"enabled":false,"threshold":"0","amount":"0","state":"idle","last_failure":""},` +
		`"version":2,"updated_at":"2026-11-24T10:00:01Z"}`
	if string(b) != want {
		t.Errorf("json =\n%s\nwant\n%s", b, want)
	}
	if _, ok, err := db.Account(context.Background(), "nobody"); ok || err != nil {
		t.Errorf("unknown account: %v, %v", ok, err)
	}
}
