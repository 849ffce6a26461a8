package eventstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"go.uber.org/zap"
)

// memDB is an in-memory stand-in for one EventStoreDB node, faithful in what the store
// relies on: one log with strictly growing positions (commit == prepare, gaps between
// events as in a real transaction file), streams with 0-based revisions, expected-revision
// checks, EventStoreDB's idempotency rule (a retry succeeds only if all of its events are
// already there with the same ids), stream-not-found on the first Recv, inclusive reads
// and exclusive subscriptions, server-side stream-prefix filters. It is a test double for
// the store's logic, not a substitute for running the contract suite against a real node.
type memDB struct {
	mu      sync.Mutex
	log     []*esdb.RecordedEvent
	streams map[string][]*esdb.RecordedEvent
	nextPos uint64
	changed chan struct{} // closed and replaced on every write, to wake subscriptions

	// Failure injection, consumed in order.
	failAppend    []error // returned by the next appends before anything is written
	failSubscribe []error // returned by the next subscribe calls
	dropAfter     []int   // the next subscriptions drop after delivering this many events
	failReadBack  bool    // stream reads after a wrong-expected-version fail
	versionMajor  int
}

func newMemDB() *memDB {
	return &memDB{streams: map[string][]*esdb.RecordedEvent{}, nextPos: 1000, changed: make(chan struct{}), versionMajor: 24}
}

// write appends records to the log; db.mu must be held.
func (db *memDB) write(stream string, evs ...esdb.EventData) uint64 {
	for _, e := range evs {
		rec := &esdb.RecordedEvent{
			EventID: e.EventID, EventType: e.EventType, ContentType: "application/json",
			StreamID: stream, EventNumber: uint64(len(db.streams[stream])),
			Position:    esdb.Position{Commit: db.nextPos, Prepare: db.nextPos},
			CreatedDate: time.Now().UTC(), Data: e.Data, UserMetadata: e.Metadata,
		}
		db.nextPos += 100 + uint64(len(e.Data)+len(e.Metadata))
		db.log = append(db.log, rec)
		db.streams[stream] = append(db.streams[stream], rec)
	}
	close(db.changed)
	db.changed = make(chan struct{})
	return db.log[len(db.log)-1].Position.Commit
}

// validPosition tells whether a read or subscription may start at p: the position of a
// record, or the end of the log. db.mu must be held.
func (db *memDB) validPosition(p esdb.Position) bool {
	if p.Commit == db.nextPos {
		return true
	}
	for _, r := range db.log {
		if r.Position == p {
			return true
		}
	}
	return false
}

// addSystem writes an event of EventStoreDB's own, which readers of $all must skip.
func (db *memDB) addSystem(stream, typ string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.write(stream, esdb.EventData{EventType: typ, Data: []byte("{}")})
}

func pop[T any](q *[]T) (T, bool) {
	var zero T
	if len(*q) == 0 {
		return zero, false
	}
	v := (*q)[0]
	*q = (*q)[1:]
	return v, true
}

// fakeConn is one client connected to a memDB. A dead one fails every call with
// ErrorCodeConnectionClosed, like a client whose node discovery failed.
type fakeConn struct {
	db   *memDB
	dead atomic.Bool
}

var errGone = codeErr{esdb.ErrorCodeConnectionClosed}

func (c *fakeConn) appendToStream(ctx context.Context, stream string, opts esdb.AppendToStreamOptions, evs ...esdb.EventData) (*esdb.WriteResult, error) {
	if c.dead.Load() {
		return nil, errGone
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if err, _ := pop(&db.failAppend); err != nil {
		return nil, err
	}
	have := uint64(len(db.streams[stream]))
	var next uint64 // revision the first event must get
	ok := false
	switch e := opts.ExpectedRevision.(type) {
	case esdb.NoStream:
		next, ok = 0, have == 0
	case esdb.StreamRevision:
		next, ok = e.Value+1, have == e.Value+1
	case esdb.Any, nil:
		next, ok = have, true
	default:
		return nil, errors.New("fake: unsupported expected revision")
	}
	if !ok {
		// EventStoreDB's idempotency: success only if every event is already there.
		recs := db.streams[stream]
		if next+uint64(len(evs)) <= have {
			same := true
			for k, e := range evs {
				if recs[next+uint64(k)].EventID != e.EventID {
					same = false
					break
				}
			}
			if same {
				return &esdb.WriteResult{NextExpectedVersion: next + uint64(len(evs)) - 1}, nil // no position, like the server
			}
		}
		return nil, codeErr{esdb.ErrorCodeWrongExpectedVersion}
	}
	pos := db.write(stream, evs...)
	return &esdb.WriteResult{CommitPosition: pos, PreparePosition: pos, NextExpectedVersion: have + uint64(len(evs)) - 1}, nil
}

func (c *fakeConn) readStream(ctx context.Context, stream string, opts esdb.ReadStreamOptions, count uint64) (eventReader, error) {
	if c.dead.Load() {
		return nil, errGone
	}
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.failReadBack {
		return nil, codeErr{esdb.ErrorUnavailable}
	}
	recs, exists := db.streams[stream]
	if !exists {
		return &sliceReader{err: codeErr{esdb.ErrorCodeResourceNotFound}}, nil
	}
	from := uint64(0)
	if r, ok := opts.From.(esdb.StreamRevision); ok {
		from = r.Value
	}
	var out []*esdb.RecordedEvent
	for i := from; i < uint64(len(recs)) && uint64(len(out)) < count; i++ {
		out = append(out, recs[i])
	}
	return &sliceReader{recs: out}, nil
}

func (c *fakeConn) readAll(ctx context.Context, opts esdb.ReadAllOptions, count uint64) (eventReader, error) {
	if c.dead.Load() {
		return nil, errGone
	}
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if p, ok := opts.From.(esdb.Position); ok && !db.validPosition(p) {
		// What EventStoreDB does when asked to start inside a record.
		return &sliceReader{err: codeErr{esdb.ErrorCodeUnknown}}, nil
	}
	var out []*esdb.RecordedEvent
	if opts.Direction == esdb.Backwards {
		for i := len(db.log) - 1; i >= 0 && uint64(len(out)) < count; i-- {
			if p, ok := opts.From.(esdb.Position); ok && db.log[i].Position.Commit >= p.Commit {
				continue
			}
			out = append(out, db.log[i])
		}
	} else {
		for _, r := range db.log {
			if uint64(len(out)) >= count {
				break
			}
			if p, ok := opts.From.(esdb.Position); ok && r.Position.Commit < p.Commit {
				continue // a read includes the event at its start position
			}
			out = append(out, r)
		}
	}
	return &sliceReader{recs: out}, nil
}

func (c *fakeConn) subscribeToAll(ctx context.Context, opts esdb.SubscribeToAllOptions) (subscription, error) {
	if c.dead.Load() {
		return nil, errGone
	}
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if err, _ := pop(&db.failSubscribe); err != nil {
		return nil, err
	}
	if p, ok := opts.From.(esdb.Position); ok && !db.validPosition(p) {
		return nil, errors.New("failed to perform read. Reason: unexpected ReadAllResult.Error")
	}
	sub := &fakeSub{db: db, filter: opts.Filter, dropAfter: -1}
	if p, ok := opts.From.(esdb.Position); ok {
		sub.after = p.Commit
	}
	if n, ok := pop(&db.dropAfter); ok {
		sub.dropAfter = n
	}
	sub.ctx, sub.cancel = context.WithCancel(ctx)
	return sub, nil
}

func (c *fakeConn) serverVersion() (*esdb.ServerVersion, error) {
	if c.dead.Load() {
		return nil, errGone
	}
	if c.db.versionMajor == 0 {
		return &esdb.ServerVersion{}, nil // what the client reports without a server-features API
	}
	return &esdb.ServerVersion{Major: c.db.versionMajor, Minor: 10}, nil
}

func (c *fakeConn) close() error { return nil }

// sliceReader replays a snapshot, or fails on the first Recv like a missing stream.
type sliceReader struct {
	recs []*esdb.RecordedEvent
	err  error
}

func (r *sliceReader) Recv() (*esdb.ResolvedEvent, error) {
	if r.err != nil {
		return nil, r.err
	}
	if len(r.recs) == 0 {
		return nil, io.EOF
	}
	rec := r.recs[0]
	r.recs = r.recs[1:]
	commit := rec.Position.Commit
	return &esdb.ResolvedEvent{Event: rec, Commit: &commit}, nil
}

func (r *sliceReader) Close() {}

// fakeSub is a catch-up subscription: events after `after` that pass the filter, then
// live ones as they are written.
type fakeSub struct {
	db        *memDB
	filter    *esdb.SubscriptionFilter
	after     uint64
	dropAfter int // -1: never
	delivered int
	ctx       context.Context
	cancel    context.CancelFunc
}

func (s *fakeSub) passes(r *esdb.RecordedEvent) bool {
	if s.filter == nil {
		return true
	}
	for _, p := range s.filter.Prefixes {
		if strings.HasPrefix(r.StreamID, p) {
			return true
		}
	}
	return false
}

func (s *fakeSub) Recv() *esdb.SubscriptionEvent {
	for {
		if s.dropAfter >= 0 && s.delivered >= s.dropAfter {
			return &esdb.SubscriptionEvent{SubscriptionDropped: &esdb.SubscriptionDropped{Error: errors.New("fake: connection reset")}}
		}
		s.db.mu.Lock()
		for _, r := range s.db.log {
			if r.Position.Commit > s.after && s.passes(r) {
				s.after = r.Position.Commit
				s.delivered++
				s.db.mu.Unlock()
				commit := r.Position.Commit
				return &esdb.SubscriptionEvent{EventAppeared: &esdb.ResolvedEvent{Event: r, Commit: &commit}}
			}
		}
		changed := s.db.changed
		s.db.mu.Unlock()
		select {
		case <-s.ctx.Done():
			return &esdb.SubscriptionEvent{SubscriptionDropped: &esdb.SubscriptionDropped{Error: s.ctx.Err()}}
		case <-changed:
		}
	}
}

func (s *fakeSub) Close() error {
	s.cancel()
	return nil
}

// fakeBackend dials fakeConns to one memDB and remembers them, so a test can kill the
// current one and count replacements.
type fakeBackend struct {
	db    *memDB
	mu    sync.Mutex
	conns []*fakeConn
}

func (b *fakeBackend) dial() (conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &fakeConn{db: b.db}
	b.conns = append(b.conns, c)
	return c, nil
}

func (b *fakeBackend) last() *fakeConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns[len(b.conns)-1]
}

func (b *fakeBackend) dials() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// newFakeStore returns a Store over a fresh memDB, closed when the test ends.
func newFakeStore(t interface {
	Helper()
	Fatalf(string, ...any)
	Cleanup(func())
}, opts Options) (*Store, *fakeBackend) {
	t.Helper()
	b := &fakeBackend{db: newMemDB()}
	if opts.ResubscribeDelayBase == 0 {
		opts.ResubscribeDelayBase = time.Millisecond
	}
	if opts.ResubscribeDelayMax == 0 {
		opts.ResubscribeDelayMax = 5 * time.Millisecond
	}
	s, err := newStore(b.dial, zap.NewNop(), opts)
	if err != nil {
		t.Fatalf("newStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, b
}
