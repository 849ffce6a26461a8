package jetstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/storetest"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestStore(t *testing.T, nc *nats.Conn, opts Options) *Store {
	t.Helper()
	s, err := New(testCtx(t), nc, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	srv, nc := RunTestServer(t)
	// The suite must cope with a server that already holds other accounts.
	seed := newTestStore(t, nc, Options{})
	var other []events.Envelope
	for i := range 50 {
		other = append(other, opening(fmt.Sprintf("seed-%d", i)))
	}
	mustAppend(t, seed, other)

	t.Run("cached", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) events.Store { return newTestStore(t, nc, Options{}) })
	})
	t.Run("uncached", func(t *testing.T) {
		// Every append looks the account up: the path a fresh process takes.
		storetest.Run(t, func(t *testing.T) events.Store { return newTestStore(t, nc, Options{TipCacheSize: -1}) })
	})
	t.Run("leader reads", func(t *testing.T) {
		// A replicated stream has no direct get; every lookup goes to the leader.
		srv, _ := RunTestServer(t)
		storetest.Run(t, func(t *testing.T) events.Store {
			s := newTestStore(t, ConnectTestServer(t, srv), Options{noDirect: true})
			if s.stream.CachedInfo().Config.AllowDirect {
				t.Fatal("direct get still on")
			}
			return s
		})
	})
	t.Run("connection per store", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) events.Store {
			return newTestStore(t, ConnectTestServer(t, srv), Options{TipCacheSize: 4})
		})
	})
}

func opening(account string) events.Envelope {
	data := events.AccountOpened{Currency: "USD", LowBalanceThreshold: decimal.RequireFromString("10")}
	return events.Envelope{
		ID: events.NewID(account, 1, data), AccountID: account, Version: 1,
		OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC(), Data: data,
	}
}

func charge(account string, version uint64, usageID string) events.Envelope {
	data := events.UsageCharged{
		UsageID: usageID, UsageType: "sms", Cause: "messaging", UsedAt: time.Now().UTC(),
		Amount: decimal.RequireFromString("0.05"), Currency: "USD", ContentHash: "h-" + usageID,
	}
	return events.Envelope{
		ID: events.NewID(account, version, data), AccountID: account, Version: version,
		OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC(), Data: data,
	}
}

func mustAppend(t *testing.T, s events.Store, evs []events.Envelope) {
	t.Helper()
	for i, err := range s.Append(testCtx(t), evs) {
		if err != nil {
			t.Fatalf("append %s v%d: %v", evs[i].AccountID, evs[i].Version, err)
		}
	}
}

// publishByHand writes ev exactly as Append's first attempt would, so that the test can
// play the writer whose ack was lost.
func publishByHand(t *testing.T, js jetstream.JetStream, ev events.Envelope, expSeq uint64) *jetstream.PubAck {
	t.Helper()
	body, err := events.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	m := &nats.Msg{Subject: Subject(ev.AccountID), Data: body, Header: nats.Header{}}
	m.Header.Set(VersionHeader, strconv.FormatUint(ev.Version, 10))
	ack, err := js.PublishMsg(testCtx(t), m,
		jetstream.WithMsgID(ev.ID.String()), jetstream.WithExpectLastSequencePerSubject(expSeq))
	if err != nil {
		t.Fatalf("publish by hand: %v", err)
	}
	return ack
}

func subjectCount(t *testing.T, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	st, err := js.Stream(testCtx(t), StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(testCtx(t), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// TestRetryOfLandedAppend is DESIGN rule 4 against the real server: the first attempt
// landed but its ack was lost; the retry must succeed without a second message.
func TestRetryOfLandedAppend(t *testing.T) {
	_, nc := RunTestServer(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"cached", Options{}},
		{"uncached", Options{TipCacheSize: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, nc, tc.opts)
			acct := "rule4-" + tc.name
			v1 := opening(acct)
			mustAppend(t, s, []events.Envelope{v1})

			v2 := charge(acct, 2, "u-1")
			ack := publishByHand(t, js, v2, v1Position(t, s, acct))

			// What the server does with the retry on its own: the expected-sequence check
			// comes before de-duplication, so it is an error, not a duplicate ack.
			_, err := js.PublishMsg(testCtx(t), &nats.Msg{Subject: Subject(acct), Data: []byte("{}")},
				jetstream.WithMsgID(v2.ID.String()), jetstream.WithExpectLastSequencePerSubject(v1Position(t, s, acct)))
			if !isWrongLastSequence(err) {
				t.Fatalf("raw retry: %v, want wrong last sequence (rule 4 premise)", err)
			}

			evs := []events.Envelope{v2}
			if err := s.Append(testCtx(t), evs)[0]; err != nil {
				t.Fatalf("retry through the store: %v, want success", err)
			}
			if evs[0].Position != ack.Sequence {
				t.Fatalf("retry Position %d, want the first attempt's %d", evs[0].Position, ack.Sequence)
			}
			if n := subjectCount(t, js, Subject(acct)); n != 2 {
				t.Fatalf("subject holds %d messages, want 2", n)
			}
			// The same id with other content (another writer's version of the usage) is a
			// conflict too: the caller must not believe its content was written.
			changed := v2
			d := changed.Data.(events.UsageCharged)
			d.Amount, d.ContentHash = decimal.RequireFromString("9.99"), "h-changed"
			changed.Data = d
			if err := s.Append(testCtx(t), []events.Envelope{changed})[0]; !errors.Is(err, events.ErrConflict) {
				t.Fatalf("same id, other content at v2: %v, want ErrConflict", err)
			}
			// The same version with another event is a conflict, not a success.
			if err := s.Append(testCtx(t), []events.Envelope{charge(acct, 2, "u-other")})[0]; !errors.Is(err, events.ErrConflict) {
				t.Fatalf("other event at v2: %v, want ErrConflict", err)
			}
			// And the chain goes on from the landed event.
			mustAppend(t, s, []events.Envelope{charge(acct, 3, "u-2")})
		})
	}
}

func v1Position(t *testing.T, s *Store, acct string) uint64 {
	t.Helper()
	evs, err := s.ReadStream(testCtx(t), acct, 0)
	if err != nil || len(evs) == 0 {
		t.Fatalf("read %s: %d events, %v", acct, len(evs), err)
	}
	return evs[0].Position
}

// TestDuplicateAckIsVerified: a duplicate ack for an id stored elsewhere (a caller bug)
// must not be taken for a successful append.
func TestDuplicateAckIsVerified(t *testing.T) {
	_, nc := RunTestServer(t)
	s := newTestStore(t, nc, Options{})
	a := opening("dup-a")
	mustAppend(t, s, []events.Envelope{a})

	reused := opening("dup-b")
	reused.ID = a.ID // same id, another account
	err := s.Append(testCtx(t), []events.Envelope{reused})[0]
	if err == nil {
		t.Fatal("append of a reused id at another account succeeded")
	}
	if errors.Is(err, events.ErrConflict) {
		t.Fatalf("reused id reported as a conflict (the caller would reload and retry forever): %v", err)
	}
	if got, _ := s.ReadStream(testCtx(t), "dup-b", 0); len(got) != 0 {
		t.Fatalf("dup-b holds %d events", len(got))
	}

	// A duplicate ack for our own event at our own place is a success (this is what a
	// clustered stream, which de-duplicates first, answers to a retry).
	js, _ := jetstream.New(nc)
	c := opening("dup-c")
	ack := publishByHand(t, js, c, 0)
	body, _ := events.Marshal(c)
	m := &nats.Msg{Subject: Subject("dup-c"), Data: body, Header: nats.Header{}}
	m.Header.Set(VersionHeader, "1")
	dup, err := js.PublishMsg(testCtx(t), m, jetstream.WithMsgID(c.ID.String()))
	if err != nil || !dup.Duplicate || dup.Sequence != ack.Sequence {
		t.Fatalf("raw duplicate publish: %+v, %v", dup, err)
	}
	g := &group{account: "dup-c", subject: Subject("dup-c"), idx: []int{0}}
	evs := []events.Envelope{c}
	ap := appender{s: s, ctx: testCtx(t), evs: evs, errs: make([]error, 1)}
	ap.checkDuplicate(g, dup.Sequence)
	if ap.errs[0] != nil || evs[0].Position != ack.Sequence {
		t.Fatalf("duplicate ack of our own event: err %v position %d, want nil %d", ap.errs[0], evs[0].Position, ack.Sequence)
	}
}

// TestStreamIsImmutable checks DESIGN rule 2 on the server itself.
func TestStreamIsImmutable(t *testing.T) {
	_, nc := RunTestServer(t)
	s := newTestStore(t, nc, Options{})
	evs := []events.Envelope{opening("immutable")}
	mustAppend(t, s, evs)

	cfg := s.stream.CachedInfo().Config
	if !cfg.DenyDelete || !cfg.DenyPurge || cfg.AllowRollup {
		t.Fatalf("stream config DenyDelete=%v DenyPurge=%v AllowRollup=%v", cfg.DenyDelete, cfg.DenyPurge, cfg.AllowRollup)
	}
	if cfg.MaxMsgs != -1 || cfg.MaxBytes != -1 || cfg.MaxAge != 0 || cfg.MaxMsgsPerSubject != -1 || cfg.Discard != jetstream.DiscardNew {
		t.Fatalf("stream has limits that could drop events: %+v", cfg)
	}
	if cfg.Storage != jetstream.FileStorage || cfg.Duplicates != duplicateWindowDefault {
		t.Fatalf("storage %v duplicates %v", cfg.Storage, cfg.Duplicates)
	}
	if err := s.stream.DeleteMsg(testCtx(t), evs[0].Position); err == nil {
		t.Fatal("deleting an event was allowed")
	}
	if err := s.stream.SecureDeleteMsg(testCtx(t), evs[0].Position); err == nil {
		t.Fatal("secure-deleting an event was allowed")
	}
	if err := s.stream.Purge(testCtx(t)); err == nil {
		t.Fatal("purging the stream was allowed")
	}
	if got, _ := s.ReadStream(testCtx(t), "immutable", 0); len(got) != 1 {
		t.Fatalf("stream holds %d events after delete attempts", len(got))
	}
	if !cfg.AllowDirect || StreamConfig(Options{Replicas: 3}).AllowDirect {
		t.Fatal("direct get must be on for one replica and off for a replicated stream")
	}
	// Re-opening with other options keeps the stream immutable.
	s2 := newTestStore(t, nc, Options{DuplicateWindow: time.Minute})
	if cfg := s2.stream.CachedInfo().Config; !cfg.DenyDelete || !cfg.DenyPurge || cfg.Duplicates != time.Minute {
		t.Fatalf("updated stream config %+v", cfg)
	}
}

func TestSubject(t *testing.T) {
	tests := []struct{ give, want string }{
		{"acme", "ledger.account.acme"},
		{"acme.eu", "ledger.account.acme.eu"},
		{"a:b_c-d", "ledger.account.a:b_c-d"},
		{".acme", "ledger.account.~.acme"},
		{"acme.", "ledger.account.acme.~"},
		{"a..b", "ledger.account.a.~.b"},
		{".", "ledger.account.~.~"},
	}
	seen := make(map[string]string)
	for _, tt := range tests {
		got := Subject(tt.give)
		if got != tt.want {
			t.Errorf("Subject(%q) = %q, want %q", tt.give, got, tt.want)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("Subject(%q) = Subject(%q)", tt.give, other)
		}
		seen[got] = tt.give
	}
}

// TestDottedAccountsAreIsolated: "." in an id makes more subject tokens; an account whose
// id is a prefix of another must still see only its own events and versions.
func TestDottedAccountsAreIsolated(t *testing.T) {
	_, nc := RunTestServer(t)
	s := newTestStore(t, nc, Options{TipCacheSize: -1})
	accounts := []string{"acme", "acme.eu", "acme.eu.x", "acme.", ".acme", "acme..eu", "acme.eu2"}
	var batch []events.Envelope
	for i, a := range accounts {
		batch = append(batch, opening(a))
		for v := 2; v <= 2+i; v++ {
			batch = append(batch, charge(a, uint64(v), fmt.Sprintf("u-%d", v)))
		}
	}
	mustAppend(t, s, batch)
	for i, a := range accounts {
		got, err := s.ReadStream(testCtx(t), a, 0)
		if err != nil {
			t.Fatalf("read %q: %v", a, err)
		}
		if len(got) != 2+i {
			t.Fatalf("%q holds %d events, want %d", a, len(got), 2+i)
		}
		for _, e := range got {
			if e.AccountID != a {
				t.Fatalf("%q reads an event of %q", a, e.AccountID)
			}
		}
		// Each account's versions are its own: the next version of each goes in.
		mustAppend(t, s, []events.Envelope{charge(a, uint64(3+i), "next")})
	}
	for _, bad := range []string{"", "a b", "a*", "a.>", "acme/eu", string(make([]byte, 65))} {
		if err := s.Append(testCtx(t), []events.Envelope{opening(bad)})[0]; err == nil {
			t.Errorf("append to invalid account id %q accepted", bad)
		}
		if _, err := s.ReadStream(testCtx(t), bad, 0); err == nil {
			t.Errorf("read of invalid account id %q accepted", bad)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startAt(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	srv, err := StartServer(ServerConfig{Port: port, StoreDir: dir})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

func stop(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

// TestSurvivesRestart: events are on disk, and a subscriber and a writer on a
// reconnecting connection carry on after the server comes back.
func TestSurvivesRestart(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	srv := startAt(t, dir, port)
	nc := ConnectTestServer(t, srv)
	s := newTestStore(t, nc, Options{})
	evs := []events.Envelope{opening("restart"), charge("restart", 2, "u-1")}
	mustAppend(t, s, evs)
	headBefore, err := s.Head(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}

	got := make(chan events.Envelope, 16)
	subCtx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	subDone := make(chan error, 1)
	go func() {
		subDone <- s.Subscribe(subCtx, 0, func(e events.Envelope) error { got <- e; return nil })
	}()
	for range evs {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("subscriber did not get the existing events")
		}
	}

	stop(srv)
	srv = startAt(t, dir, port)
	_ = srv

	// The old connection reconnects; the store on it keeps working.
	deadline := time.Now().Add(15 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("client did not reconnect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	read, err := s.ReadStream(testCtx(t), "restart", 0)
	if err != nil || len(read) != 2 || read[1].Position != evs[1].Position {
		t.Fatalf("after restart: %d events, %v", len(read), err)
	}
	if h, err := s.Head(testCtx(t)); err != nil || h != headBefore {
		t.Fatalf("head after restart %d, %v; want %d", h, err, headBefore)
	}
	next := []events.Envelope{charge("restart", 3, "u-2")}
	mustAppend(t, s, next)
	select {
	case e := <-got:
		if e.ID != next[0].ID || e.Position != next[0].Position {
			t.Fatalf("subscriber after restart got %s v%d at %d", e.AccountID, e.Version, e.Position)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("subscriber did not resume after the server restart")
	}
	cancel()
	if err := <-subDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe: %v", err)
	}

	// A fresh process on the same directory sees everything.
	nc2 := ConnectTestServer(t, srv)
	s2 := newTestStore(t, nc2, Options{})
	read, err = s2.ReadStream(testCtx(t), "restart", 0)
	if err != nil || len(read) != 3 {
		t.Fatalf("fresh store after restart: %d events, %v", len(read), err)
	}
}

func TestServerAuth(t *testing.T) {
	srv, err := StartServer(ServerConfig{Port: -1, StoreDir: t.TempDir(), Username: "ledger", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(srv)
	if nc, err := nats.Connect(srv.ClientURL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("ledger", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s := newTestStore(t, nc, Options{})
	mustAppend(t, s, []events.Envelope{opening("auth")})
}

func TestStartServerNeedsStoreDir(t *testing.T) {
	if _, err := StartServer(ServerConfig{Port: -1}); err == nil {
		t.Fatal("server started without a store directory")
	}
}

func TestAckInfo(t *testing.T) {
	tests := []struct {
		give             string
		wantSeq, wantPen uint64
		wantOK           bool
	}{
		{"$JS.ACK.LEDGER.c_1.1.42.7.1700000000000000000.3", 42, 3, true},
		{"$JS.ACK.dom.ACCHASH.LEDGER.c_1.1.42.7.1700000000000000000.0.rnd", 42, 0, true},
		{"$JS.ACK.dom.ACCHASH.LEDGER.c_1.1.42.7.1700000000000000000.9", 42, 9, true},
		{"$JS.ACK.LEDGER.c_1.1.x.7.17.3", 0, 0, false},
		{"_INBOX.abc", 0, 0, false},
		{"$JS.ACK.LEDGER.c_1.1.42.7.17.3.extra", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		seq, pen, ok := ackInfo(tt.give)
		if ok != tt.wantOK || (ok && (seq != tt.wantSeq || pen != tt.wantPen)) {
			t.Errorf("ackInfo(%q) = %d, %d, %v; want %d, %d, %v", tt.give, seq, pen, ok, tt.wantSeq, tt.wantPen, tt.wantOK)
		}
	}
}

func TestTipCacheIsBounded(t *testing.T) {
	c := newTipCache(640)
	for i := range 10_000 {
		c.put(fmt.Sprintf("acct-%d", i), tip{version: 1, seq: uint64(i + 1)})
	}
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].m)
	}
	if n > 640 {
		t.Fatalf("cache holds %d entries, limit 640", n)
	}
	c.put("x", tip{version: 5, seq: 50})
	c.put("x", tip{version: 4, seq: 40}) // a late ack of an earlier version
	if got, _ := c.get("x"); got.version != 5 {
		t.Fatalf("cache went back to version %d", got.version)
	}
	off := newTipCache(-1)
	off.put("x", tip{version: 1, seq: 1})
	if _, ok := off.get("x"); ok {
		t.Fatal("disabled cache returned an entry")
	}
}

// TestCloseEndsReads: a Subscribe runs until told to stop; closing the store tells it.
func TestCloseEndsReads(t *testing.T) {
	_, nc := RunTestServer(t)
	s := newTestStore(t, nc, Options{})
	mustAppend(t, s, []events.Envelope{opening("close")})
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(context.Background(), 0, func(events.Envelope) error { return nil }) }()
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errClosed) {
			t.Fatalf("Subscribe after Close: %v, want errClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe still running after Close")
	}
	if _, err := s.ReadStream(testCtx(t), "close", 0); err == nil {
		t.Fatal("ReadStream after Close succeeded")
	}
	if err := s.Append(testCtx(t), []events.Envelope{charge("close", 2, "u")})[0]; err == nil {
		t.Fatal("Append after Close succeeded")
	}
}

func TestSubscribeBeyondHeadFails(t *testing.T) {
	_, nc := RunTestServer(t)
	s := newTestStore(t, nc, Options{})
	mustAppend(t, s, []events.Envelope{opening("beyond")})
	h, _ := s.Head(testCtx(t))
	if err := s.Subscribe(testCtx(t), h+5, func(events.Envelope) error { return nil }); err == nil {
		t.Fatal("Subscribe from beyond the head did not fail")
	}
}

// TestReadsWithoutLinks: events written by something other than this store (no expected
// sequence header, so no link to the previous event) are still found, by the search.
func TestReadsWithoutLinks(t *testing.T) {
	_, nc := RunTestServer(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, nc, Options{TipCacheSize: -1})
	const n = 40
	var evs []events.Envelope
	for v := uint64(1); v <= n; v++ {
		ev := charge("nolinks", v, fmt.Sprintf("u-%d", v))
		if v == 1 {
			ev = opening("nolinks")
		}
		body, err := events.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.PublishMsg(testCtx(t), &nats.Msg{Subject: Subject("nolinks"), Data: body},
			jetstream.WithMsgID(ev.ID.String()))
		if err != nil {
			t.Fatal(err)
		}
		ev.Position = ack.Sequence
		evs = append(evs, ev)
		mustAppend(t, s, []events.Envelope{charge("other", v, fmt.Sprintf("o-%d", v))})
	}
	for _, after := range []uint64{0, 1, 20, 30, 38, 39, 40} {
		got, err := s.ReadStream(testCtx(t), "nolinks", after)
		if err != nil {
			t.Fatalf("after %d: %v", after, err)
		}
		if len(got) != n-int(after) {
			t.Fatalf("after %d: %d events, want %d", after, len(got), n-int(after))
		}
		for i, e := range got {
			if want := evs[int(after)+i]; e.ID != want.ID || e.Version != want.Version || e.Position != want.Position {
				t.Fatalf("after %d: event %d is %s v%d at %d, want %s v%d at %d", after, i, e.ID, e.Version, e.Position, want.ID, want.Version, want.Position)
			}
		}
	}
	// A retry of an old event finds it by the search too.
	retry := []events.Envelope{evs[34]} // the very event: a retry carries the same content
	retry[0].Position = 0
	if err := s.Append(testCtx(t), retry)[0]; err != nil || retry[0].Position != evs[34].Position {
		t.Fatalf("retry of v35: %v at %d, want success at %d", err, retry[0].Position, evs[34].Position)
	}
	mustAppend(t, s, []events.Envelope{charge("nolinks", n+1, "next")})
}
