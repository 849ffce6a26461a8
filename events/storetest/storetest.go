package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
)

// subtestTimeout bounds one subtest so that a hanging store fails instead of stalling CI.
const subtestTimeout = 60 * time.Second

// Run runs the contract suite against the stores that newStore builds. newStore is called
// once or more per subtest (the race tests want several writers); it registers its own
// clean-up with t.Cleanup. The stores of one Run may share a server and its data.
func Run(t *testing.T, newStore func(t *testing.T) events.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, newStore func(t *testing.T) events.Store)
	}{
		{"AppendToNewStream", testAppendToNewStream},
		{"AppendEmpty", testAppendEmpty},
		{"WrongVersionConflicts", testWrongVersionConflicts},
		{"IdempotentRetry", testIdempotentRetry},
		{"SameIDOtherContentConflicts", testSameIDOtherContentConflicts},
		{"StaleWriterConflicts", testStaleWriterConflicts},
		{"ReadStreamOrderAndAfter", testReadStreamOrderAndAfter},
		{"UnknownAccountIsEmpty", testUnknownAccountIsEmpty},
		{"ReadAllFromCheckpoint", testReadAllFromCheckpoint},
		{"ReadAllStopsAtHead", testReadAllStopsAtHead},
		{"ReadAllHandlerError", testReadAllHandlerError},
		{"SubscribeExistingThenLive", testSubscribeExistingThenLive},
		{"SubscribeStops", testSubscribeStops},
		{"ConcurrentAppendersOneWins", testConcurrentAppendersOneWins},
		{"BatchAcrossAccounts", testBatchAcrossAccounts},
		{"BatchPartialFailure", testBatchPartialFailure},
		{"LargeStream", testLargeStream},
		{"PayloadRoundTrip", testPayloadRoundTrip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newStore) })
	}
}

// --- helpers -------------------------------------------------------------------------

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), subtestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newPrefix makes account ids that no other subtest, run or writer uses.
func newPrefix() string {
	return "st-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20] + "-"
}

// recordedAt is a fixed time so that equality checks are exact.
var recordedAt = time.Date(2026, 11, 24, 10, 15, 2, 123456789, time.UTC)

// newEvent builds the envelope of data at version of account, with the deterministic id
// the ledger would give it.
func newEvent(account string, version uint64, data events.Event) events.Envelope {
	return events.Envelope{
		ID:         events.NewID(account, version, data),
		AccountID:  account,
		Version:    version,
		OccurredAt: recordedAt.Add(-time.Duration(version) * time.Second),
		RecordedAt: recordedAt,
		Data:       data,
	}
}

func opened() events.Event {
	return events.AccountOpened{Currency: "USD", LowBalanceThreshold: decimal.RequireFromString("10")}
}

// usage is a usage charge whose id (and so event id) depends on n.
func usage(n int) events.Event {
	return events.UsageCharged{
		UsageID: fmt.Sprintf("call-%d", n), UsageType: "call", Reason: "fup_exceeded",
		Cause: "fair_usage_exceeded", UsedAt: recordedAt, Amount: decimal.RequireFromString("0.42"),
		Currency: "USD", ContentHash: fmt.Sprintf("h%d", n),
	}
}

// adjustment is an event whose id depends on id, for racing writers.
func adjustment(id string) events.Event {
	return events.AdjustmentApplied{AdjustmentID: id, Amount: decimal.RequireFromString("1"), Reason: "race"}
}

// history is an account stream of n events: opened, then usages.
func history(account string, n int) []events.Envelope {
	evs := make([]events.Envelope, n)
	for i := range evs {
		if i == 0 {
			evs[i] = newEvent(account, 1, opened())
			continue
		}
		evs[i] = newEvent(account, uint64(i+1), usage(i))
	}
	return evs
}

// mustAppend appends and fails the test on any per-event error.
func mustAppend(t *testing.T, ctx context.Context, s events.Store, evs []events.Envelope) {
	t.Helper()
	errs := s.Append(ctx, evs)
	if len(errs) != len(evs) {
		t.Fatalf("Append returned %d errors for %d events", len(errs), len(evs))
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Append event %d (%s v%d): %v", i, evs[i].AccountID, evs[i].Version, err)
		}
		if evs[i].Position == 0 {
			t.Fatalf("Append event %d (%s v%d): Position not set", i, evs[i].AccountID, evs[i].Version)
		}
	}
}

func appendOne(ctx context.Context, s events.Store, ev events.Envelope) (events.Envelope, error) {
	evs := []events.Envelope{ev}
	errs := s.Append(ctx, evs)
	if len(errs) != 1 {
		return ev, fmt.Errorf("append returned %d errors for 1 event", len(errs))
	}
	return evs[0], errs[0]
}

func head(t *testing.T, ctx context.Context, s events.Store) uint64 {
	t.Helper()
	h, err := s.Head(ctx)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return h
}

func readStream(t *testing.T, ctx context.Context, s events.Store, account string, after uint64) []events.Envelope {
	t.Helper()
	evs, err := s.ReadStream(ctx, account, after)
	if err != nil {
		t.Fatalf("ReadStream(%s, %d): %v", account, after, err)
	}
	return evs
}

// sameEvents compares two runs of events field by field, including Position.
func sameEvents(t *testing.T, what string, got, want []events.Envelope) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		if diff := envelopeDiff(got[i], want[i]); diff != "" {
			t.Fatalf("%s: event %d: %s", what, i, diff)
		}
	}
}

// envelopeDiff describes how got differs from want ("" when equal). Decimals and times
// compare as values (Equal), not as representations.
func envelopeDiff(got, want events.Envelope) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("ID %s, want %s", got.ID, want.ID)
	case got.AccountID != want.AccountID:
		return fmt.Sprintf("AccountID %q, want %q", got.AccountID, want.AccountID)
	case got.Version != want.Version:
		return fmt.Sprintf("Version %d, want %d", got.Version, want.Version)
	case want.Position != 0 && got.Position != want.Position:
		return fmt.Sprintf("Position %d, want %d", got.Position, want.Position)
	case got.Position == 0:
		return "Position not set"
	case !got.OccurredAt.Equal(want.OccurredAt):
		return fmt.Sprintf("OccurredAt %s, want %s", got.OccurredAt, want.OccurredAt)
	case !got.RecordedAt.Equal(want.RecordedAt):
		return fmt.Sprintf("RecordedAt %s, want %s", got.RecordedAt, want.RecordedAt)
	}
	if got.Data == nil || want.Data == nil {
		if got.Data != want.Data {
			return fmt.Sprintf("Data %#v, want %#v", got.Data, want.Data)
		}
		return ""
	}
	if d := valueDiff(reflect.ValueOf(got.Data), reflect.ValueOf(want.Data), got.Data.EventType()); d != "" {
		return d
	}
	return ""
}

var (
	decimalType = reflect.TypeOf(decimal.Decimal{})
	timeType    = reflect.TypeOf(time.Time{})
)

func valueDiff(got, want reflect.Value, path string) string {
	if got.Type() != want.Type() {
		return fmt.Sprintf("%s: type %s, want %s", path, got.Type(), want.Type())
	}
	switch {
	case got.Type() == decimalType:
		g, w := got.Interface().(decimal.Decimal), want.Interface().(decimal.Decimal)
		if !g.Equal(w) {
			return fmt.Sprintf("%s: %s, want %s", path, g, w)
		}
	case got.Type() == timeType:
		g, w := got.Interface().(time.Time), want.Interface().(time.Time)
		if !g.Equal(w) {
			return fmt.Sprintf("%s: %s, want %s", path, g, w)
		}
	case got.Kind() == reflect.Struct:
		for i := 0; i < got.NumField(); i++ {
			if d := valueDiff(got.Field(i), want.Field(i), path+"."+got.Type().Field(i).Name); d != "" {
				return d
			}
		}
	default:
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			return fmt.Sprintf("%s: %#v, want %#v", path, got.Interface(), want.Interface())
		}
	}
	return ""
}

// collector gathers the events of one account prefix that a ReadAll or Subscribe
// delivers, and checks the store-wide order of everything it sees.
type collector struct {
	t      *testing.T
	prefix string

	mu      sync.Mutex
	lastPos uint64
	mine    []events.Envelope
	orderOK error
	arrived chan struct{} // gets a token per event of the prefix
}

func newCollector(t *testing.T, prefix string, after uint64) *collector {
	return &collector{t: t, prefix: prefix, lastPos: after, arrived: make(chan struct{}, 1<<16)}
}

func (c *collector) handle(e events.Envelope) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Position <= c.lastPos && c.orderOK == nil {
		c.orderOK = fmt.Errorf("position %d after %d: not increasing", e.Position, c.lastPos)
	}
	c.lastPos = e.Position
	if strings.HasPrefix(e.AccountID, c.prefix) {
		c.mine = append(c.mine, e)
		c.arrived <- struct{}{}
	}
	return nil
}

// wait blocks until n events of the prefix have arrived in total.
func (c *collector) wait(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		got := len(c.mine)
		c.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-c.arrived:
		case <-ctx.Done():
			return fmt.Errorf("waited for %d events, got %d: %w", n, got, ctx.Err())
		}
	}
}

func (c *collector) events() []events.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.orderOK != nil {
		c.t.Fatalf("store order: %v", c.orderOK)
	}
	return append([]events.Envelope(nil), c.mine...)
}

// --- the contract --------------------------------------------------------------------

func testAppendToNewStream(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	acct := newPrefix() + "a"
	before := head(t, ctx, s)

	ev, err := appendOne(ctx, s, newEvent(acct, 1, opened()))
	if err != nil {
		t.Fatalf("append v1 to a new stream: %v", err)
	}
	if ev.Position <= before {
		t.Fatalf("Position %d, want > head before append %d", ev.Position, before)
	}
	if h := head(t, ctx, s); h < ev.Position {
		t.Fatalf("Head %d after append at position %d", h, ev.Position)
	}
	got := readStream(t, ctx, s, acct, 0)
	sameEvents(t, "ReadStream", got, []events.Envelope{ev})
	if got[0].Version != 1 {
		t.Fatalf("first event has version %d, want 1", got[0].Version)
	}
}

func testAppendEmpty(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	if errs := s.Append(ctx, nil); len(errs) != 0 {
		t.Fatalf("Append(nil) = %v, want no errors", errs)
	}
}

func testWrongVersionConflicts(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	p := newPrefix()
	acct := p + "a"
	mustAppend(t, ctx, s, history(acct, 2))

	tests := []struct {
		name string
		give events.Envelope
	}{
		{"other event at a taken version", newEvent(acct, 2, usage(99))},
		{"other event at version 1", newEvent(acct, 1, adjustment("x"))},
		{"version beyond the end", newEvent(acct, 4, usage(98))},
		{"version 2 of an unknown account", newEvent(p+"unknown", 2, usage(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := appendOne(ctx, s, tt.give)
			if !errors.Is(err, events.ErrConflict) {
				t.Fatalf("Append: %v, want ErrConflict", err)
			}
		})
	}
	if got := readStream(t, ctx, s, acct, 0); len(got) != 2 {
		t.Fatalf("stream has %d events after refused appends, want 2", len(got))
	}
	if got := readStream(t, ctx, s, p+"unknown", 0); len(got) != 0 {
		t.Fatalf("unknown account has %d events after a refused append, want 0", len(got))
	}
	// The right version still goes in after conflicts.
	if _, err := appendOne(ctx, s, newEvent(acct, 3, usage(3))); err != nil {
		t.Fatalf("append at the right version after conflicts: %v", err)
	}
}

func testIdempotentRetry(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	acct := newPrefix() + "a"

	first, err := appendOne(ctx, s, newEvent(acct, 1, opened()))
	if err != nil {
		t.Fatalf("first append: %v", err)
	}
	// The same event again, from the same store and from a fresh one (a restarted
	// writer that lost the ack).
	for _, st := range []events.Store{s, newStore(t)} {
		again, err := appendOne(ctx, st, newEvent(acct, 1, opened()))
		if err != nil {
			t.Fatalf("retry of a landed append: %v, want success", err)
		}
		if again.Position != first.Position {
			t.Fatalf("retry Position %d, want %d (the first attempt's)", again.Position, first.Position)
		}
	}
	// A retried batch whose first attempt landed.
	batch := history(acct, 3)[1:]
	mustAppend(t, ctx, s, batch)
	retry := history(acct, 3)[1:]
	mustAppend(t, ctx, newStore(t), retry)
	for i := range batch {
		if retry[i].Position != batch[i].Position {
			t.Fatalf("batch retry event %d at %d, want %d", i, retry[i].Position, batch[i].Position)
		}
	}
	// Our event at a version that is no longer the last is still ours.
	old, err := appendOne(ctx, newStore(t), newEvent(acct, 2, usage(1)))
	if err != nil {
		t.Fatalf("retry of v2 while the stream is at v3: %v, want success", err)
	}
	if old.Position != batch[0].Position {
		t.Fatalf("retry of v2 Position %d, want %d", old.Position, batch[0].Position)
	}
	got := readStream(t, ctx, s, acct, 0)
	want := append([]events.Envelope{first}, batch...)
	sameEvents(t, "stream after retries", got, want)
}

// testSameIDOtherContentConflicts: event ids come from business keys, so a second
// writer can append the same usage id with other content at the same version. That is
// not a retry of the first append: the store must answer a conflict, so the caller
// reloads and finds out what was written, instead of believing it was its content.
func testSameIDOtherContentConflicts(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	acct := newPrefix() + "a"
	mustAppend(t, ctx, s, history(acct, 2))
	changed := usage(1).(events.UsageCharged)
	changed.Amount, changed.ContentHash = decimal.RequireFromString("9.99"), "other"
	for _, st := range []events.Store{s, newStore(t)} {
		if _, err := appendOne(ctx, st, newEvent(acct, 2, changed)); !errors.Is(err, events.ErrConflict) {
			t.Fatalf("same id, other content at a taken version: %v, want ErrConflict", err)
		}
	}
	got := readStream(t, ctx, s, acct, 0)
	if len(got) != 2 || !got[1].Data.(events.UsageCharged).Amount.Equal(decimal.RequireFromString("0.42")) {
		t.Fatalf("stream after the refused append: %+v", got)
	}
}

func testStaleWriterConflicts(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx := testContext(t)
	a, b := newStore(t), newStore(t)
	acct := newPrefix() + "a"
	mustAppend(t, ctx, a, history(acct, 2)) // a knows v2

	if _, err := appendOne(ctx, b, newEvent(acct, 2, usage(50))); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("b appends at taken v2: %v, want ErrConflict", err)
	}
	if _, err := appendOne(ctx, b, newEvent(acct, 3, usage(51))); err != nil {
		t.Fatalf("b appends v3: %v", err)
	}
	// a still believes the stream ends at v2.
	if _, err := appendOne(ctx, a, newEvent(acct, 3, usage(52))); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("a appends v3 taken by b: %v, want ErrConflict", err)
	}
	if _, err := appendOne(ctx, a, newEvent(acct, 4, usage(53))); err != nil {
		t.Fatalf("a appends v4 after reloading: %v", err)
	}
	got := readStream(t, ctx, b, acct, 0)
	if len(got) != 4 || got[2].Data.(events.UsageCharged).UsageID != "call-51" || got[3].Data.(events.UsageCharged).UsageID != "call-53" {
		t.Fatalf("stream after two writers: %d events %+v", len(got), got)
	}
}

func testReadStreamOrderAndAfter(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	p := newPrefix()
	acct, other := p+"a", p+"b"
	evs := history(acct, 40)
	// Interleave another account so the stream's positions are not consecutive.
	var batch []events.Envelope
	for i, e := range evs {
		batch = append(batch, e)
		if i < 10 {
			batch = append(batch, history(other, 10)[i])
		}
	}
	mustAppend(t, ctx, s, batch)
	var mine, others []events.Envelope
	for _, e := range batch {
		if e.AccountID == acct {
			mine = append(mine, e)
		} else {
			others = append(others, e)
		}
	}
	for i := 1; i < len(mine); i++ {
		if mine[i].Position <= mine[i-1].Position {
			t.Fatalf("v%d at %d not after v%d at %d", mine[i].Version, mine[i].Position, mine[i-1].Version, mine[i-1].Position)
		}
	}
	for _, after := range []uint64{0, 1, 2, 15, 24, 38, 39, 40, 41, 1000} {
		t.Run(fmt.Sprintf("after=%d", after), func(t *testing.T) {
			got := readStream(t, ctx, s, acct, after)
			var want []events.Envelope
			if after < uint64(len(mine)) {
				want = mine[after:]
			}
			sameEvents(t, "ReadStream", got, want)
		})
	}
	sameEvents(t, "other account", readStream(t, ctx, s, other, 0), others)
}

func testUnknownAccountIsEmpty(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	for _, after := range []uint64{0, 5} {
		got, err := s.ReadStream(ctx, newPrefix()+"nobody", after)
		if err != nil || len(got) != 0 {
			t.Fatalf("ReadStream(unknown, %d) = %d events, %v; want none, nil", after, len(got), err)
		}
	}
}

func testReadAllFromCheckpoint(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	p := newPrefix()
	early := history(p+"early", 5)
	mustAppend(t, ctx, s, early)
	checkpoint := head(t, ctx, s)

	var later []events.Envelope
	for _, acct := range []string{p + "a", p + "b", p + "c"} {
		later = append(later, history(acct, 7)...)
	}
	mustAppend(t, ctx, s, later)
	later = append(later, history(p+"early", 6)[5]) // one more on an old account
	mustAppend(t, ctx, s, later[len(later)-1:])

	c := newCollector(t, p, checkpoint)
	if err := s.ReadAll(ctx, checkpoint, c.handle); err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	got := c.events()
	wantByPos := append([]events.Envelope(nil), later...)
	sortByPosition(wantByPos)
	sameEvents(t, "ReadAll from checkpoint", got, wantByPos)

	// From before the early events, everything of ours; from the head, nothing.
	c = newCollector(t, p, 0)
	if err := s.ReadAll(ctx, early[0].Position-1, c.handle); err != nil {
		t.Fatalf("ReadAll from before: %v", err)
	}
	if got := c.events(); len(got) != len(early)+len(later) {
		t.Fatalf("ReadAll from before the first event: %d events of ours, want %d", len(got), len(early)+len(later))
	}
	c = newCollector(t, p, 0)
	h := head(t, ctx, s)
	if err := s.ReadAll(ctx, h, c.handle); err != nil {
		t.Fatalf("ReadAll from head: %v", err)
	}
	if got := c.events(); len(got) != 0 {
		t.Fatalf("ReadAll from head delivered %d events of ours", len(got))
	}
}

func sortByPosition(evs []events.Envelope) {
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].Position < evs[j-1].Position; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
}

func testReadAllStopsAtHead(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	p := newPrefix()
	acct := p + "a"
	start := head(t, ctx, s)
	evs := history(acct, 3)
	mustAppend(t, ctx, s, evs)
	h := head(t, ctx, s)

	// An event appended while ReadAll runs is after the end it started with.
	appended := false
	c := newCollector(t, p, start)
	err := s.ReadAll(ctx, start, func(e events.Envelope) error {
		if !appended {
			appended = true
			if _, err := appendOne(ctx, s, newEvent(acct, 4, usage(4))); err != nil {
				return fmt.Errorf("append during ReadAll: %w", err)
			}
		}
		if e.Position > h {
			return fmt.Errorf("ReadAll delivered position %d beyond the head %d at its start", e.Position, h)
		}
		return c.handle(e)
	})
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	sameEvents(t, "ReadAll", c.events(), evs)
}

func testReadAllHandlerError(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	start := head(t, ctx, s)
	mustAppend(t, ctx, s, history(newPrefix()+"a", 5))

	boom := errors.New("boom")
	calls := 0
	err := s.ReadAll(ctx, start, func(events.Envelope) error {
		calls++
		if calls == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls != 2 {
		t.Fatalf("ReadAll with a failing handler: err %v after %d calls, want boom after 2", err, calls)
	}
	calls = 0
	err = s.ReadAll(ctx, start, func(events.Envelope) error {
		calls++
		return events.ErrStopped
	})
	if err != nil || calls != 1 {
		t.Fatalf("ReadAll stopped by ErrStopped: err %v after %d calls, want nil after 1", err, calls)
	}
}

func testSubscribeExistingThenLive(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	p := newPrefix()
	start := head(t, ctx, s)
	existing := history(p+"a", 3)
	mustAppend(t, ctx, s, existing)

	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := newCollector(t, p, start)
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(subCtx, start, c.handle) }()

	if err := c.wait(ctx, len(existing)); err != nil {
		t.Fatalf("existing events: %v", err)
	}
	live := history(p+"a", 5)[3:]
	live = append(live, history(p+"b", 2)...)
	// Live events one call at a time, so the subscriber sees them arrive over time.
	for i := range live {
		mustAppend(t, ctx, s, live[i:i+1])
		time.Sleep(time.Millisecond)
	}
	if err := c.wait(ctx, len(existing)+len(live)); err != nil {
		t.Fatalf("live events: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe after cancel: %v, want nil or context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not end after its context was cancelled")
	}
	sameEvents(t, "Subscribe", c.events(), append(existing, live...))
}

func testSubscribeStops(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	p := newPrefix()
	start := head(t, ctx, s)
	mustAppend(t, ctx, s, history(p+"a", 3))

	t.Run("ErrStopped", func(t *testing.T) {
		var got []events.Envelope
		err := s.Subscribe(ctx, start, func(e events.Envelope) error {
			if !strings.HasPrefix(e.AccountID, p) {
				return nil
			}
			got = append(got, e)
			if len(got) == 2 {
				return events.ErrStopped
			}
			return nil
		})
		if err != nil || len(got) != 2 {
			t.Fatalf("Subscribe stopped by ErrStopped: %v after %d events, want nil after 2", err, len(got))
		}
	})
	t.Run("handler error", func(t *testing.T) {
		boom := errors.New("boom")
		err := s.Subscribe(ctx, start, func(events.Envelope) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("Subscribe with a failing handler: %v, want boom", err)
		}
	})
	t.Run("cancel while idle", func(t *testing.T) {
		subCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		h := head(t, ctx, s)
		go func() { done <- s.Subscribe(subCtx, h, func(events.Envelope) error { return nil }) }()
		time.Sleep(50 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("Subscribe after cancel: %v, want nil or context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("idle Subscribe did not end after its context was cancelled")
		}
	})
}

func testConcurrentAppendersOneWins(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx := testContext(t)
	const writers, stores, rounds = 24, 3, 5
	pool := make([]events.Store, stores)
	for i := range pool {
		pool[i] = newStore(t)
	}
	acct := newPrefix() + "race"
	mustAppend(t, ctx, pool[0], history(acct, 1))

	for version := uint64(2); version < 2+rounds; version++ {
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			errs    = make([]error, writers)
			winners []string
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[w] = appendOne(ctx, pool[w%stores], newEvent(acct, version, adjustment(fmt.Sprintf("v%d-w%d", version, w))))
			}()
		}
		close(start)
		wg.Wait()
		for w, err := range errs {
			switch {
			case err == nil:
				winners = append(winners, fmt.Sprintf("v%d-w%d", version, w))
			case !errors.Is(err, events.ErrConflict):
				t.Fatalf("v%d writer %d: %v, want nil or ErrConflict", version, w, err)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("v%d: %d winners %v, want exactly 1", version, len(winners), winners)
		}
		got := readStream(t, ctx, pool[0], acct, version-1)
		if len(got) != 1 || got[0].Data.(events.AdjustmentApplied).AdjustmentID != winners[0] {
			t.Fatalf("v%d: stream holds %+v, want the winner %s", version, got, winners[0])
		}
	}
}

func testBatchAcrossAccounts(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	p := newPrefix()
	const accounts = 300
	// Account i has 1 + i%4 events, interleaved round by round as an ingest batch would.
	var batch []events.Envelope
	perAccount := make(map[string][]events.Envelope)
	for v := 1; v <= 4; v++ {
		for i := range accounts {
			n := 1 + i%4
			if v > n {
				continue
			}
			acct := fmt.Sprintf("%sacct-%d", p, i)
			batch = append(batch, history(acct, n)[v-1])
		}
	}
	mustAppend(t, ctx, s, batch)
	seen := make(map[uint64]bool, len(batch))
	for _, e := range batch {
		if seen[e.Position] {
			t.Fatalf("position %d given twice", e.Position)
		}
		seen[e.Position] = true
		perAccount[e.AccountID] = append(perAccount[e.AccountID], e)
	}
	if len(perAccount) != accounts {
		t.Fatalf("%d accounts written, want %d", len(perAccount), accounts)
	}
	for acct, want := range perAccount {
		sameEvents(t, "ReadStream "+acct, readStream(t, ctx, s, acct, 0), want)
	}
	// The next batch continues each account where it ends.
	var next []events.Envelope
	for acct, evs := range perAccount {
		next = append(next, newEvent(acct, uint64(len(evs))+1, usage(1000)))
	}
	mustAppend(t, ctx, s, next)
}

func testBatchPartialFailure(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	p := newPrefix()
	good, bad := p+"good", p+"bad"
	mustAppend(t, ctx, s, history(bad, 2))

	batch := []events.Envelope{
		history(good, 3)[0],
		newEvent(bad, 2, usage(77)), // v2 is taken: conflict
		history(good, 3)[1],
		newEvent(bad, 3, usage(78)), // decided on top of the refused v2
		history(good, 3)[2],
	}
	errs := s.Append(ctx, batch)
	for _, i := range []int{0, 2, 4} {
		if errs[i] != nil {
			t.Fatalf("event %d of the good account: %v", i, errs[i])
		}
	}
	for _, i := range []int{1, 3} {
		if !errors.Is(errs[i], events.ErrConflict) {
			t.Fatalf("event %d of the conflicting account: %v, want ErrConflict", i, errs[i])
		}
	}
	if got := readStream(t, ctx, s, bad, 0); len(got) != 2 {
		t.Fatalf("conflicting account has %d events, want 2", len(got))
	}
	if got := readStream(t, ctx, s, good, 0); len(got) != 3 {
		t.Fatalf("good account has %d events, want 3", len(got))
	}

	// Versions that do not follow each other in one call are refused as a whole.
	gap := []events.Envelope{history(p+"gap", 3)[0], history(p+"gap", 3)[2]}
	for i, err := range s.Append(ctx, gap) {
		if err == nil {
			t.Fatalf("event %d of a call with a version gap was accepted", i)
		}
	}
	if got := readStream(t, ctx, s, p+"gap", 0); len(got) != 0 {
		t.Fatalf("account with a version gap has %d events, want 0", len(got))
	}
}

func testLargeStream(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	acct := newPrefix() + "large"
	const n, perCall = 5000, 1000
	all := history(acct, n)
	for i := 0; i < n; i += perCall {
		mustAppend(t, ctx, s, all[i:i+perCall])
	}
	sameEvents(t, "ReadStream all", readStream(t, ctx, s, acct, 0), all)
	for _, after := range []uint64{1, 2500, 4990, 4999, 5000} {
		sameEvents(t, fmt.Sprintf("ReadStream after %d", after), readStream(t, ctx, s, acct, after), all[after:])
	}
}

func testPayloadRoundTrip(t *testing.T, newStore func(t *testing.T) events.Store) {
	ctx, s := testContext(t), newStore(t)
	acct := newPrefix() + "types"
	at := time.Date(2026, 11, 24, 10, 15, 0, 987654321, time.UTC)
	dec := decimal.RequireFromString
	payloads := []events.Event{
		events.AccountOpened{Currency: "EUR", LowBalanceThreshold: dec("10.5000")},
		events.UsageCharged{
			UsageID: "call-8f2c", UsageType: "call", Reason: "fup_exceeded", Cause: "fair_usage_exceeded",
			UsedAt: at, Amount: dec("0.4200"), Currency: "EUR", UserID: "u-7", Quantity: "21",
			Unit: "minute", Destination: "+447911123456", ContentHash: "sha256:abc",
		},
		events.UsageCharged{UsageID: "sms-1", UsageType: "sms", Cause: "messaging", UsedAt: at, Amount: dec("0"), Currency: "EUR", ContentHash: "h"},
		events.AdjustmentApplied{AdjustmentID: "adj-1", Amount: dec("-0.0001"), Reason: "refund of disputed call", UsageID: "call-8f2c"},
		events.AlertSettingsChanged{LowBalanceThreshold: dec("25")},
		events.AutoTopUpConfigured{Enabled: true, Threshold: dec("20"), Amount: dec("100.00")},
		events.TopUpRequested{TopUpID: "tu-1", Kind: events.TopUpAuto, Amount: dec("100")},
		events.TopUpAttemptFailed{TopUpID: "tu-1", Attempt: 1, Reason: "card_declined", NextAttemptAt: at.Add(time.Minute)},
		events.TopUpSucceeded{TopUpID: "tu-1", Amount: dec("100"), Attempt: 2, PaymentID: "pay-9"},
		events.TopUpRequested{TopUpID: "tu-2", Kind: events.TopUpOneTime, Amount: dec("12345678901234.5678")},
		events.TopUpFailed{TopUpID: "tu-2", Attempts: 3, Reason: "gateway_unavailable", Suspended: true},
	}
	evs := make([]events.Envelope, len(payloads))
	types := make(map[string]bool)
	for i, d := range payloads {
		evs[i] = newEvent(acct, uint64(i+1), d)
		evs[i].OccurredAt = at.In(time.FixedZone("CET", 3600)) // any zone in, same instant out
		types[d.EventType()] = true
	}
	for _, typ := range []string{
		events.TypeAccountOpened, events.TypeUsageCharged, events.TypeAdjustmentApplied,
		events.TypeAlertSettingsChanged, events.TypeAutoTopUpConfigured, events.TypeTopUpRequested,
		events.TypeTopUpAttemptFailed, events.TypeTopUpSucceeded, events.TypeTopUpFailed,
	} {
		if !types[typ] {
			t.Fatalf("suite does not cover %s", typ)
		}
	}
	start := head(t, ctx, s)
	mustAppend(t, ctx, s, evs)
	sameEvents(t, "ReadStream", readStream(t, ctx, s, acct, 0), evs)

	c := newCollector(t, acct, start)
	if err := s.ReadAll(ctx, start, c.handle); err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	sameEvents(t, "ReadAll", c.events(), evs)
}
