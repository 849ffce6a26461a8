package eventstore

// Tests of the store's own logic over the in-memory fake of fake_test.go. What they
// cannot show is how a real EventStoreDB behaves; store_test.go runs the contract suite
// against one when LEDGER_TEST_EVENTSTORE_URL is set.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
)

func usage(accountID string, version uint64, usageID string) events.Envelope {
	data := events.UsageCharged{UsageID: usageID, UsageType: "sms", Cause: "messaging",
		UsedAt: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), Amount: decimal.RequireFromString("0.05"), Currency: "USD"}
	return events.Envelope{
		ID: events.NewID(accountID, version, data), AccountID: accountID, Version: version,
		OccurredAt: data.UsedAt, RecordedAt: data.UsedAt.Add(time.Second), Data: data,
	}
}

func opened(accountID string) events.Envelope {
	data := events.AccountOpened{Currency: "USD", LowBalanceThreshold: decimal.NewFromInt(10)}
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	return events.Envelope{ID: events.NewID(accountID, 1, data), AccountID: accountID, Version: 1, OccurredAt: at, RecordedAt: at, Data: data}
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
}

func TestGroupByAccount(t *testing.T) {
	evs := []events.Envelope{opened("a"), opened("b"), usage("a", 2, "u1"), usage("c", 5, "u2"), usage("b", 2, "u3")}
	got := groupByAccount(evs)
	want := []batch{{"a", []int{0, 2}}, {"b", []int{1, 4}}, {"c", []int{3}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groupByAccount = %v, want %v", got, want)
	}
}

func TestCheckBatch(t *testing.T) {
	tests := []struct {
		name string
		give []events.Envelope
		want string // "" for valid
	}{
		{"one", []events.Envelope{usage("a", 4, "u")}, ""},
		{"consecutive", []events.Envelope{opened("a"), usage("a", 2, "u"), usage("a", 3, "v")}, ""},
		{"gap", []events.Envelope{opened("a"), usage("a", 3, "u")}, "consecutive"},
		{"backwards", []events.Envelope{usage("a", 3, "u"), usage("a", 2, "v")}, "consecutive"},
		{"twice the same version", []events.Envelope{usage("a", 2, "u"), usage("a", 2, "v")}, "consecutive"},
		{"version 0", []events.Envelope{usage("a", 0, "u")}, "version 0"},
		{"no account", []events.Envelope{usage("", 1, "u")}, "account id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := groupByAccount(tt.give)[0]
			err := checkBatch(tt.give, b)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("checkBatch = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestResubscribeDelay(t *testing.T) {
	base, max := 100*time.Millisecond, 2*time.Second
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for failures, w := range want {
		if got := resubscribeDelay(base, max, failures); got != w*time.Millisecond {
			t.Errorf("resubscribeDelay(%d) = %v, want %v", failures, got, w*time.Millisecond)
		}
	}
	if got := resubscribeDelay(base, max, 1000); got != max {
		t.Errorf("after many failures %v, want the cap %v", got, max)
	}
}

func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	want := Options{AppendConcurrencyMax: 16, ResubscribeDelayBase: 100 * time.Millisecond, ResubscribeDelayMax: 10 * time.Second,
		CloseWaitMax: 5 * time.Second, AppendBytesMax: 512 << 10}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	if o := (Options{ResubscribeDelayBase: time.Minute}).withDefaults(); o.ResubscribeDelayMax < o.ResubscribeDelayBase {
		t.Errorf("cap %v below base %v", o.ResubscribeDelayMax, o.ResubscribeDelayBase)
	}
}

func TestVersionAtLeast(t *testing.T) {
	min := esdb.ServerVersion{Major: 22, Minor: 6}
	tests := []struct {
		give esdb.ServerVersion
		want bool
	}{
		{esdb.ServerVersion{}, false},
		{esdb.ServerVersion{Major: 21, Minor: 10, Patch: 8}, false},
		{esdb.ServerVersion{Major: 22, Minor: 5, Patch: 9}, false},
		{esdb.ServerVersion{Major: 22, Minor: 6}, true},
		{esdb.ServerVersion{Major: 22, Minor: 10, Patch: 1}, true},
		{esdb.ServerVersion{Major: 24, Minor: 10}, true},
		{esdb.ServerVersion{Major: 25}, true},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.give, min); got != tt.want {
			t.Errorf("versionAtLeast(%+v) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestCheckServerRefusesOldServers(t *testing.T) {
	s, b := newFakeStore(t, Options{})
	b.db.versionMajor = 21
	if err := s.checkServer(context.Background()); err == nil || !strings.Contains(err.Error(), "older than 22.6") {
		t.Errorf("checkServer = %v, want a refusal", err)
	}
	b.db.versionMajor = 0
	if err := s.checkServer(context.Background()); err == nil || !strings.Contains(err.Error(), "did not report its version") {
		t.Errorf("checkServer without a version = %v, want a refusal", err)
	}
	b.db.versionMajor = 24
	if err := s.checkServer(context.Background()); err != nil {
		t.Errorf("checkServer on 24.10 = %v", err)
	}
}

func TestAppendSetsPositionsAndReadsBack(t *testing.T) {
	ctx := context.Background()
	s, _ := newFakeStore(t, Options{})
	evs := []events.Envelope{opened("acme"), usage("acme", 2, "u1"), usage("acme", 3, "u2")}
	noErrors(t, s.Append(ctx, evs))
	for i := 1; i < len(evs); i++ {
		if evs[i].Position <= evs[i-1].Position || evs[i-1].Position == 0 {
			t.Fatalf("positions %d then %d: want strictly growing, non-zero", evs[i-1].Position, evs[i].Position)
		}
	}
	one := []events.Envelope{usage("acme", 4, "u3")}
	noErrors(t, s.Append(ctx, one))
	if one[0].Position <= evs[2].Position {
		t.Fatalf("single append position %d not after %d", one[0].Position, evs[2].Position)
	}

	got, err := s.ReadStream(ctx, "acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	all := append(evs, one...)
	if len(got) != len(all) {
		t.Fatalf("read %d events, want %d", len(got), len(all))
	}
	for i := range all {
		if g, w := mustMarshal(t, got[i]), mustMarshal(t, all[i]); string(g) != string(w) || got[i].Position != all[i].Position {
			t.Errorf("event %d: read %s @%d, wrote %s @%d", i, g, got[i].Position, w, all[i].Position)
		}
	}
	after2, err := s.ReadStream(ctx, "acme", 2)
	if err != nil || len(after2) != 2 || after2[0].Version != 3 {
		t.Errorf("ReadStream after 2 = %d events (%v), want versions 3 and 4", len(after2), err)
	}
	none, err := s.ReadStream(ctx, "acme", 4)
	if err != nil || len(none) != 0 {
		t.Errorf("ReadStream after the end = %v, %v", none, err)
	}
}

func TestReadStreamOfUnknownAccountIsEmpty(t *testing.T) {
	s, _ := newFakeStore(t, Options{})
	got, err := s.ReadStream(context.Background(), "nobody", 0)
	if err != nil || len(got) != 0 {
		t.Errorf("ReadStream = %v, %v; want empty, nil", got, err)
	}
}

func TestAppendConflict(t *testing.T) {
	ctx := context.Background()
	s, _ := newFakeStore(t, Options{})
	noErrors(t, s.Append(ctx, []events.Envelope{opened("acme"), usage("acme", 2, "mine")}))

	// Another decision at a taken version, and a version too far ahead.
	for _, ev := range []events.Envelope{usage("acme", 2, "theirs"), usage("acme", 5, "ahead")} {
		errs := s.Append(ctx, []events.Envelope{ev})
		if !errors.Is(errs[0], events.ErrConflict) {
			t.Errorf("append %s at version %d: %v, want ErrConflict", ev.Data.(events.UsageCharged).UsageID, ev.Version, errs[0])
		}
	}
	// A whole batch conflicts together: nothing of it is written.
	errs := s.Append(ctx, []events.Envelope{usage("acme", 2, "x"), usage("acme", 3, "y")})
	for i, err := range errs {
		if !errors.Is(err, events.ErrConflict) {
			t.Errorf("batch event %d: %v, want ErrConflict", i, err)
		}
	}
	got, _ := s.ReadStream(ctx, "acme", 0)
	if len(got) != 2 {
		t.Errorf("stream holds %d events after conflicts, want 2", len(got))
	}
}

func TestAppendIdempotentRetry(t *testing.T) {
	ctx := context.Background()
	s, _ := newFakeStore(t, Options{})
	first := []events.Envelope{opened("acme"), usage("acme", 2, "u1")}
	noErrors(t, s.Append(ctx, first))

	// The same call again (its first attempt landed but the answer was lost).
	again := []events.Envelope{opened("acme"), usage("acme", 2, "u1")}
	noErrors(t, s.Append(ctx, again))
	for i := range again {
		if again[i].Position != first[i].Position {
			t.Errorf("retry position %d, first %d", again[i].Position, first[i].Position)
		}
	}
	// A single event, for which the server answers success without a position.
	single := []events.Envelope{usage("acme", 2, "u1")}
	noErrors(t, s.Append(ctx, single))
	if single[0].Position != first[1].Position {
		t.Errorf("single retry position %d, want %d", single[0].Position, first[1].Position)
	}
	got, _ := s.ReadStream(ctx, "acme", 0)
	if len(got) != 2 {
		t.Errorf("stream holds %d events after retries, want 2", len(got))
	}
}

func TestAppendRetryAfterPartialLanding(t *testing.T) {
	ctx := context.Background()
	s, _ := newFakeStore(t, Options{})
	landed := []events.Envelope{opened("acme")}
	noErrors(t, s.Append(ctx, landed))

	// EventStoreDB refuses this (only part of it is there); the store confirms the part
	// that landed and appends the rest.
	evs := []events.Envelope{opened("acme"), usage("acme", 2, "u1"), usage("acme", 3, "u2")}
	noErrors(t, s.Append(ctx, evs))
	if evs[0].Position != landed[0].Position || evs[1].Position <= evs[0].Position || evs[2].Position <= evs[1].Position {
		t.Errorf("positions %d %d %d (first landed at %d)", evs[0].Position, evs[1].Position, evs[2].Position, landed[0].Position)
	}
	got, _ := s.ReadStream(ctx, "acme", 0)
	if len(got) != 3 {
		t.Fatalf("stream holds %d events, want 3", len(got))
	}

	// If what sits at our first version is someone else's, it is a conflict.
	errs := s.Append(ctx, []events.Envelope{usage("acme", 3, "other"), usage("acme", 4, "u3")})
	for i, err := range errs {
		if !errors.Is(err, events.ErrConflict) {
			t.Errorf("event %d: %v, want ErrConflict", i, err)
		}
	}
}

func TestAppendConflictWhenReadBackFails(t *testing.T) {
	ctx := context.Background()
	s, b := newFakeStore(t, Options{})
	noErrors(t, s.Append(ctx, []events.Envelope{opened("acme")}))
	b.db.mu.Lock()
	b.db.failReadBack = true
	b.db.mu.Unlock()
	errs := s.Append(ctx, []events.Envelope{usage("acme", 1, "u")})
	if !errors.Is(errs[0], events.ErrConflict) {
		t.Errorf("got %v, want ErrConflict (the caller reloads; never a false success)", errs[0])
	}
}

func TestAppendRefusesBadBatchesWhole(t *testing.T) {
	ctx := context.Background()
	s, _ := newFakeStore(t, Options{})
	errs := s.Append(ctx, []events.Envelope{opened("acme"), usage("acme", 3, "gap"), opened("other")})
	if errs[0] == nil || errs[1] == nil {
		t.Errorf("bad batch accepted: %v", errs)
	}
	if errors.Is(errs[0], events.ErrConflict) {
		t.Errorf("a malformed batch is not a conflict: %v", errs[0])
	}
	if errs[2] != nil {
		t.Errorf("another account's good batch failed: %v", errs[2])
	}
	if got, _ := s.ReadStream(ctx, "acme", 0); len(got) != 0 {
		t.Errorf("%d events of the bad batch written", len(got))
	}
}

func TestAppendManyAccountsConcurrently(t *testing.T) {
	ctx := context.Background()
	s, _ := newFakeStore(t, Options{AppendConcurrencyMax: 3})
	var evs []events.Envelope
	for a := 0; a < 20; a++ {
		id := fmt.Sprintf("acct-%02d", a)
		evs = append(evs, opened(id), usage(id, 2, "u1"))
	}
	noErrors(t, s.Append(ctx, evs))
	seen := map[uint64]bool{}
	for _, ev := range evs {
		if ev.Position == 0 || seen[ev.Position] {
			t.Fatalf("position %d missing or shared", ev.Position)
		}
		seen[ev.Position] = true
	}
}

func TestAppendOneFailureDoesNotFailOthers(t *testing.T) {
	ctx := context.Background()
	s, b := newFakeStore(t, Options{AppendConcurrencyMax: 1})
	b.db.mu.Lock()
	b.db.failAppend = []error{codeErr{esdb.ErrorUnavailable}}
	b.db.mu.Unlock()
	errs := s.Append(ctx, []events.Envelope{opened("a"), opened("b")})
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			if errors.Is(err, events.ErrConflict) {
				t.Errorf("unavailable reported as conflict: %v", err)
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d failures, want exactly 1: %v", failed, errs)
	}
}

func TestClientReplacedAfterItClosedItself(t *testing.T) {
	ctx := context.Background()
	s, b := newFakeStore(t, Options{})
	noErrors(t, s.Append(ctx, []events.Envelope{opened("acme")}))
	b.last().dead.Store(true) // node discovery failed: the client is closed for good

	noErrors(t, s.Append(ctx, []events.Envelope{usage("acme", 2, "u1")}))
	if b.dials() != 2 {
		t.Errorf("%d clients dialled, want 2", b.dials())
	}
	b.last().dead.Store(true)
	if got, err := s.ReadStream(ctx, "acme", 0); err != nil || len(got) != 2 {
		t.Errorf("ReadStream after replacement: %d events, %v", len(got), err)
	}
	if _, err := s.Head(ctx); err != nil {
		t.Errorf("Head: %v", err)
	}
}

// writeMixed writes account events with EventStoreDB system events around them and
// returns the account events in $all order.
func writeMixed(t *testing.T, s *Store, db *memDB) []events.Envelope {
	t.Helper()
	ctx := context.Background()
	db.addSystem("$$$stats", "$metadata")
	a := []events.Envelope{opened("a"), usage("a", 2, "u1")}
	noErrors(t, s.Append(ctx, a))
	db.addSystem("$users", "$User")
	db.addSystem("user-not-ours", "SomethingElse")
	b := []events.Envelope{opened("b")}
	noErrors(t, s.Append(ctx, b))
	c := []events.Envelope{usage("a", 3, "u2")}
	noErrors(t, s.Append(ctx, c))
	db.addSystem("$scavenges", "$scavengeStarted")
	return append(append(a, b...), c...)
}

func collect(t *testing.T, s *Store, after uint64) []events.Envelope {
	t.Helper()
	var got []events.Envelope
	if err := s.ReadAll(context.Background(), after, func(e events.Envelope) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return got
}

func TestHead(t *testing.T) {
	ctx := context.Background()
	s, b := newFakeStore(t, Options{})
	if h, err := s.Head(ctx); err != nil || h != 0 {
		t.Errorf("Head of an empty store = %d, %v", h, err)
	}
	b.db.addSystem("$users", "$User")
	if h, err := s.Head(ctx); err != nil || h != 0 {
		t.Errorf("Head with only system events = %d, %v", h, err)
	}
	want := writeMixed(t, s, b.db)
	if h, err := s.Head(ctx); err != nil || h != want[len(want)-1].Position {
		t.Errorf("Head = %d, %v; want the last account event %d", h, err, want[len(want)-1].Position)
	}
}

func TestReadAll(t *testing.T) {
	s, b := newFakeStore(t, Options{})
	if got := collect(t, s, 0); len(got) != 0 {
		t.Errorf("empty store read %d events", len(got))
	}
	want := writeMixed(t, s, b.db)
	got := collect(t, s, 0)
	if len(got) != len(want) {
		t.Fatalf("read %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Position != want[i].Position {
			t.Errorf("event %d: %s@%d, want %s@%d", i, got[i].ID, got[i].Position, want[i].ID, want[i].Position)
		}
	}
	for k := range want {
		rest := collect(t, s, want[k].Position)
		if len(rest) != len(want)-k-1 || len(rest) > 0 && rest[0].ID != want[k+1].ID {
			t.Errorf("after event %d: %d events", k, len(rest))
		}
	}
	if got := collect(t, s, want[len(want)-1].Position+1_000_000); len(got) != 0 {
		t.Errorf("after the end: %d events", len(got))
	}
}

func TestReadAllStopsAtTheHeadItStartedWith(t *testing.T) {
	ctx := context.Background()
	s, b := newFakeStore(t, Options{})
	want := writeMixed(t, s, b.db)
	var got []events.Envelope
	err := s.ReadAll(ctx, 0, func(e events.Envelope) error {
		if len(got) == 0 { // appended while ReadAll runs: not part of this read
			noErrors(t, s.Append(ctx, []events.Envelope{opened("late")}))
		}
		got = append(got, e)
		return nil
	})
	if err != nil || len(got) != len(want) {
		t.Errorf("ReadAll = %d events, %v; want %d", len(got), err, len(want))
	}
}

func TestReadAllHandlerErrors(t *testing.T) {
	ctx := context.Background()
	s, b := newFakeStore(t, Options{})
	writeMixed(t, s, b.db)
	n := 0
	if err := s.ReadAll(ctx, 0, func(events.Envelope) error { n++; return events.ErrStopped }); err != nil || n != 1 {
		t.Errorf("ErrStopped: err %v after %d events, want nil after 1", err, n)
	}
	boom := errors.New("boom")
	if err := s.ReadAll(ctx, 0, func(events.Envelope) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("handler error: got %v", err)
	}
}

func TestReadAllRefusesUndecodableAccountEvents(t *testing.T) {
	s, b := newFakeStore(t, Options{})
	b.db.mu.Lock()
	b.db.write("account-x", esdb.EventData{EventType: "surprise.v1", Data: []byte("{}"), Metadata: []byte(`{"account_id":"x","version":1}`)})
	b.db.mu.Unlock()
	err := s.ReadAll(context.Background(), 0, func(events.Envelope) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "surprise.v1") {
		t.Errorf("ReadAll = %v, want it to refuse the unknown event rather than skip money", err)
	}
}

// subscriber records what Subscribe delivers and lets a test wait for it.
type subscriber struct {
	mu   sync.Mutex
	got  []events.Envelope
	seen chan struct{}
}

func newSubscriber() *subscriber { return &subscriber{seen: make(chan struct{}, 1000)} }

func (r *subscriber) fn(e events.Envelope) error {
	r.mu.Lock()
	r.got = append(r.got, e)
	r.mu.Unlock()
	r.seen <- struct{}{}
	return nil
}

func (r *subscriber) waitFor(t *testing.T, n int) []events.Envelope {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			got := append([]events.Envelope(nil), r.got...)
			r.mu.Unlock()
			return got
		}
		r.mu.Unlock()
		select {
		case <-r.seen:
		case <-deadline:
			t.Fatalf("timed out waiting for %d events", n)
		}
	}
}

func samePositions(t *testing.T, got, want []events.Envelope) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events delivered, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Position != want[i].Position {
			t.Fatalf("event %d: %s@%d, want %s@%d", i, got[i].ID, got[i].Position, want[i].ID, want[i].Position)
		}
	}
}

func TestSubscribeCatchesUpThenFollows(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, b := newFakeStore(t, Options{})
	old := writeMixed(t, s, b.db)
	rec := newSubscriber()
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, old[0].Position, rec.fn) }()

	rec.waitFor(t, len(old)-1)
	live := []events.Envelope{opened("c"), usage("b", 2, "u9")}
	noErrors(t, s.Append(ctx, live))
	// Different accounts of one call are written concurrently: $all order is theirs.
	sort.Slice(live, func(i, j int) bool { return live[i].Position < live[j].Position })
	b.db.addSystem("$stats", "$statsCollected")
	samePositions(t, rec.waitFor(t, len(old)-1+len(live)), append(old[1:], live...))

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after cancel = %v, want context.Canceled", err)
	}
}

func TestSubscribeResubscribesWithoutDuplicatesOrGaps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, b := newFakeStore(t, Options{})
	var want []events.Envelope
	for a := 0; a < 10; a++ {
		evs := []events.Envelope{opened(fmt.Sprintf("a%d", a)), usage(fmt.Sprintf("a%d", a), 2, "u")}
		noErrors(t, s.Append(ctx, evs))
		want = append(want, evs...)
	}
	b.db.mu.Lock()
	b.db.dropAfter = []int{3, 0, 5, 1}                                // drops mid-stream, one right away
	b.db.failSubscribe = []error{nil, codeErr{esdb.ErrorUnavailable}} // the first resubscription fails
	b.db.mu.Unlock()

	rec := newSubscriber()
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, 0, rec.fn) }()
	samePositions(t, rec.waitFor(t, len(want)), want)

	more := []events.Envelope{usage("a0", 3, "v")}
	noErrors(t, s.Append(ctx, more))
	samePositions(t, rec.waitFor(t, len(want)+1), append(want, more...))
	cancel()
	<-done
}

func TestSubscribeEnds(t *testing.T) {
	ctx := context.Background()
	s, b := newFakeStore(t, Options{})
	writeMixed(t, s, b.db)

	n := 0
	if err := s.Subscribe(ctx, 0, func(events.Envelope) error { n++; return events.ErrStopped }); err != nil || n != 1 {
		t.Errorf("ErrStopped: %v after %d events", err, n)
	}
	boom := errors.New("boom")
	if err := s.Subscribe(ctx, 0, func(events.Envelope) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("handler error: %v", err)
	}
	b.db.mu.Lock()
	b.db.failSubscribe = []error{codeErr{esdb.ErrorCodeAccessDenied}}
	b.db.mu.Unlock()
	err := s.Subscribe(ctx, 0, func(events.Envelope) error { return nil })
	if err == nil || !hasCode(err, esdb.ErrorCodeAccessDenied) {
		t.Errorf("access denied: %v, want Subscribe to give up with it", err)
	}
}

func TestSubscribeSurvivesClientReplacement(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, b := newFakeStore(t, Options{})
	first := []events.Envelope{opened("a")}
	noErrors(t, s.Append(ctx, first))
	b.db.mu.Lock()
	b.db.dropAfter = []int{1}
	b.db.mu.Unlock()

	rec := newSubscriber()
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, 0, rec.fn) }()
	rec.waitFor(t, 1)
	b.last().dead.Store(true) // the drop is followed by a failed discovery
	second := []events.Envelope{usage("a", 2, "u")}
	noErrors(t, s.Append(ctx, second))
	samePositions(t, rec.waitFor(t, 2), append(first, second...))
	cancel()
	<-done
}

func TestCloseEndsOperations(t *testing.T) {
	s, b := newFakeStore(t, Options{})
	writeMixed(t, s, b.db)
	done := make(chan error, 1)
	started := make(chan struct{})
	var once sync.Once
	go func() {
		done <- s.Subscribe(context.Background(), 0, func(events.Envelope) error {
			once.Do(func() { close(started) })
			return nil
		})
	}()
	<-started
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Subscribe ended without error on Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe still running after Close")
	}
	if errs := s.Append(context.Background(), []events.Envelope{opened("z")}); !errors.Is(errs[0], errClosed) {
		t.Errorf("Append after Close = %v", errs[0])
	}
	if _, err := s.ReadStream(context.Background(), "a", 0); !errors.Is(err, errClosed) {
		t.Errorf("ReadStream after Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestReadAllAndSubscribeFromPositionsBetweenEvents(t *testing.T) {
	// EventStoreDB cannot start a read inside a record (the fake refuses it like the
	// server does); a caller may still pass any position, such as "just before event k".
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, b := newFakeStore(t, Options{})
	want := writeMixed(t, s, b.db)
	for k := range want {
		for _, after := range []uint64{want[k].Position - 1, want[k].Position + 1} {
			got := collect(t, s, after)
			var exp []events.Envelope
			for _, e := range want {
				if e.Position > after {
					exp = append(exp, e)
				}
			}
			samePositions(t, got, exp)

			rec := newSubscriber()
			subCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- s.Subscribe(subCtx, after, rec.fn) }()
			if len(exp) > 0 {
				samePositions(t, rec.waitFor(t, len(exp)), exp)
			}
			stop()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Subscribe after %d: %v", after, err)
			}
			rec.mu.Lock()
			n := len(rec.got)
			rec.mu.Unlock()
			if n != len(exp) {
				t.Fatalf("Subscribe after %d delivered %d events, want %d", after, n, len(exp))
			}
		}
	}
	// Before the first record of the log.
	samePositions(t, collect(t, s, 5), want)

	// Beyond the end of the log (a checkpoint of a database that was reset): nothing now,
	// and later events only once they pass it.
	beyond := b.db.nextPos + 10_000
	if got := collect(t, s, beyond); len(got) != 0 {
		t.Errorf("ReadAll beyond the end: %d events", len(got))
	}
	rec := newSubscriber()
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, beyond, rec.fn) }()
	noErrors(t, s.Append(ctx, []events.Envelope{opened("late1")}))
	b.db.mu.Lock()
	b.db.nextPos = beyond + 1 // the log grows past the checkpoint
	b.db.mu.Unlock()
	late := []events.Envelope{opened("late2")}
	noErrors(t, s.Append(ctx, late))
	samePositions(t, rec.waitFor(t, 1), late)
	cancel()
	<-done
}

func TestChunks(t *testing.T) {
	ev := func(n int) esdb.EventData { return esdb.EventData{Data: make([]byte, n)} }
	size := func(n int) int { return n + eventOverheadBytes }
	tests := []struct {
		name string
		give []esdb.EventData
		max  int
		want []span
	}{
		{"one", []esdb.EventData{ev(10)}, 1000, []span{{0, 1}}},
		{"all fit", []esdb.EventData{ev(10), ev(10), ev(10)}, 3 * size(10), []span{{0, 3}}},
		{"split", []esdb.EventData{ev(10), ev(10), ev(10)}, 2 * size(10), []span{{0, 2}, {2, 3}}},
		{"one per chunk", []esdb.EventData{ev(10), ev(10)}, size(10), []span{{0, 1}, {1, 2}}},
		{"oversized event alone", []esdb.EventData{ev(10), ev(5000), ev(10)}, 1000, []span{{0, 1}, {1, 2}, {2, 3}}},
	}
	for _, tt := range tests {
		if got := chunks(tt.give, tt.max); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: chunks = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAppendLargeBatchInChunks(t *testing.T) {
	ctx := context.Background()
	s, b := newFakeStore(t, Options{AppendBytesMax: 2000})
	evs := []events.Envelope{opened("big")}
	for v := uint64(2); v <= 40; v++ {
		evs = append(evs, usage("big", v, fmt.Sprintf("u%d", v)))
	}
	noErrors(t, s.Append(ctx, evs))
	got, err := s.ReadStream(ctx, "big", 0)
	if err != nil || len(got) != len(evs) {
		t.Fatalf("ReadStream: %d events, %v", len(got), err)
	}
	for i := range evs {
		if got[i].Position != evs[i].Position || got[i].ID != evs[i].ID {
			t.Fatalf("event %d: %s@%d, want %s@%d", i, got[i].ID, got[i].Position, evs[i].ID, evs[i].Position)
		}
	}

	// A failure in the middle: the chunks before it are in, the rest is reported.
	more := []events.Envelope{}
	for v := uint64(41); v <= 80; v++ {
		more = append(more, usage("big", v, fmt.Sprintf("u%d", v)))
	}
	var written int
	b.db.mu.Lock()
	b.db.failAppend = []error{nil, codeErr{esdb.ErrorUnavailable}}
	b.db.mu.Unlock()
	errs := s.Append(ctx, more)
	for i, err := range errs {
		if err == nil {
			written++
			if more[i].Position == 0 {
				t.Errorf("event %d succeeded without a position", i)
			}
			continue
		}
		if written == 0 || errors.Is(err, events.ErrConflict) {
			t.Errorf("event %d: %v (after %d successes)", i, err, written)
		}
	}
	if written == 0 || written == len(more) {
		t.Fatalf("%d of %d events succeeded, want the first chunk only", written, len(more))
	}
	got, _ = s.ReadStream(ctx, "big", 40)
	if len(got) != written {
		t.Errorf("stream grew by %d events, %d reported written", len(got), written)
	}
	// Retrying the whole call finishes the job.
	noErrors(t, s.Append(ctx, more))
}

func TestNewRefusesBadConnectionStrings(t *testing.T) {
	for _, give := range []string{"", "http://x:2113", "esdb://x:2113?tsl=false"} {
		if _, err := New(context.Background(), give, nil, Options{}); err == nil {
			t.Errorf("New(%q) succeeded", give)
		}
	}
}

func TestNewFailsWhenTheServerIsUnreachable(t *testing.T) {
	// Nothing listens on port 1: the client's discovery gives up after its attempts, and
	// New says so instead of returning a store that cannot work.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := New(ctx, "esdb://admin:secret@127.0.0.1:1?tls=false&maxDiscoverAttempts=2&discoveryInterval=10", nil, Options{})
	if err == nil {
		t.Fatal("New succeeded without a server")
	}
	if !strings.Contains(err.Error(), "connect") || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q: want it to say it could not connect, without the password", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestNewIsBoundedByItsContext(t *testing.T) {
	// A blackholed address: discovery would take maxDiscoverAttempts * gossipTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := New(ctx, "esdb://10.255.255.1:2113?tls=false&gossipTimeout=30", nil, Options{})
	if err == nil {
		t.Fatal("New succeeded without a server")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("New took %v with a 300ms context", d)
	}
}
