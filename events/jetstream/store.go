package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/events"
)

// VersionHeader carries an event's version in its account stream next to the body. The
// store reads it to learn where an account stream ends from one direct get, without
// decoding the body.
const VersionHeader = "Ledger-Version"

// Options configure a Store. Zero values are the defaults stated per field.
type Options struct {
	// Replicas is the LEDGER stream's replication factor. Default 1 (one server); use 3
	// on a NATS cluster in production (DESIGN rule 9).
	Replicas int
	// DuplicateWindow is how long JetStream remembers event ids (Nats-Msg-Id) to drop a
	// re-published event. Default 2m. Exactly-once beyond the window is the write side's
	// durable usage index (DESIGN rule 5), not the store's.
	DuplicateWindow time.Duration
	// TipCacheSize bounds how many accounts' last (version, stream sequence) are kept in
	// memory so that an append needs no lookup. Default 100,000; negative disables it.
	TipCacheSize int
	// AckWait bounds the wait for one publish acknowledgement, and for a free slot when
	// PendingAcksMax publishes are in flight. Default 30s.
	AckWait time.Duration
	// PendingAcksMax bounds the publishes in flight on the connection (DESIGN rule 10).
	// Default 4,000.
	PendingAcksMax int
	// ReadBatchSize is how many messages ReadAll, Subscribe and ReadStream ask the server
	// for in one pull. Default 4,096: the rebuild path wants large batches.
	ReadBatchSize int
	// LookupsMax bounds the concurrent stream lookups of one Append (accounts missing
	// from the tip cache, conflicts). Default 32.
	LookupsMax int
	// Logger receives what the store recovers from on its own (consumer resets after a
	// reconnect). Default: no logging.
	Logger *zap.Logger

	// noDirect turns direct get off on a single server too, so that tests cover the
	// leader-read path a replicated stream takes.
	noDirect bool
}

// Defaults of Options.
const (
	duplicateWindowDefault = 2 * time.Minute
	tipCacheSizeDefault    = 100_000
	ackWaitDefault         = 30 * time.Second
	pendingAcksMaxDefault  = 4000
	readBatchSizeDefault   = 4096
	lookupsMaxDefault      = 32
	// lookupRetriesMax bounds how often one event goes back to publishing after a
	// wrong-last-sequence answer whose cause the store could not see; it only guards
	// against a loop on a misbehaving server.
	lookupRetriesMax = 3
)

func (o Options) withDefaults() Options {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = duplicateWindowDefault
	}
	if o.TipCacheSize == 0 {
		o.TipCacheSize = tipCacheSizeDefault
	}
	if o.AckWait <= 0 {
		o.AckWait = ackWaitDefault
	}
	if o.PendingAcksMax <= 0 {
		o.PendingAcksMax = pendingAcksMaxDefault
	}
	if o.ReadBatchSize <= 0 {
		o.ReadBatchSize = readBatchSizeDefault
	}
	if o.LookupsMax <= 0 {
		o.LookupsMax = lookupsMaxDefault
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Store is the JetStream adapter of events.Store: one stream LEDGER, one subject per
// account (Subject), the JetStream stream sequence as Position.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	opts   Options
	log    *zap.Logger
	tips   *tipCache
	closed atomic.Bool
	// life ends with Close, which ends the reads still running (Subscribe runs until
	// told to stop, and a store that is closed has nobody left to tell it).
	life    context.Context
	endLife context.CancelFunc
}

var _ events.Store = (*Store)(nil)

// errClosed is returned by every call after Close.
var errClosed = errors.New("jetstream store closed")

// New creates or updates the LEDGER stream on nc's server and returns a store on it.
// The connection stays the caller's: Close does not close it, so one connection can
// serve the store and the rest of the process.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(opts.PendingAcksMax),
		jetstream.WithPublishAsyncTimeout(opts.AckWait),
	)
	if err != nil {
		return nil, fmt.Errorf("jetstream store: %w", err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, StreamConfig(opts))
	if err != nil {
		return nil, fmt.Errorf("jetstream store: stream %s: %w", StreamName, err)
	}
	if cfg := stream.CachedInfo().Config; !cfg.DenyDelete || !cfg.DenyPurge {
		// An update cannot weaken this today; checking keeps rule 2 true if that changes.
		return nil, fmt.Errorf("jetstream store: stream %s allows delete or purge", StreamName)
	}
	life, endLife := context.WithCancel(context.Background())
	return &Store{
		js: js, stream: stream, opts: opts, log: opts.Logger,
		tips: newTipCache(opts.TipCacheSize), life: life, endLife: endLife,
	}, nil
}

// StreamConfig is the configuration of the LEDGER stream (DESIGN rule 2): immutable (no
// delete, no purge, no rollup), no limit that could ever drop an event (and DiscardNew,
// so that a limit set by an operator refuses new writes instead of dropping old
// facts), file storage.
//
// Direct get (fast one-message lookups) is on for a single replica only: on a
// replicated stream followers answer direct gets too, possibly a little behind, and the
// lookups that settle conflicts and retries must see the leader's state.
func StreamConfig(opts Options) jetstream.StreamConfig {
	opts = opts.withDefaults()
	return jetstream.StreamConfig{
		Name:              StreamName,
		Description:       "credit ledger: one immutable stream per account",
		Subjects:          []string{streamSubjects},
		Retention:         jetstream.LimitsPolicy,
		MaxConsumers:      -1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxAge:            0,
		MaxMsgsPerSubject: -1,
		MaxMsgSize:        -1,
		Discard:           jetstream.DiscardNew,
		Storage:           jetstream.FileStorage,
		Replicas:          opts.Replicas,
		Duplicates:        opts.DuplicateWindow,
		DenyDelete:        true,
		DenyPurge:         true,
		AllowRollup:       false,
		AllowDirect:       opts.Replicas == 1 && !opts.noDirect,
	}
}

// Close ends the reads in progress (ReadAll, Subscribe and ReadStream return an error)
// and makes new calls fail. Appends in progress finish. The NATS connection is the
// caller's to close.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.endLife()
	return nil
}

// Head returns the stream sequence of the last event in LEDGER (0 when empty).
func (s *Store) Head(ctx context.Context) (uint64, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("head %s: %w", StreamName, err)
	}
	return info.State.LastSeq, nil
}

// group is the events of one account in one Append call, written in version order.
type group struct {
	account string
	subject string
	idx     []int // indexes into the caller's slice, consecutive versions
	next    int   // position in idx of the event to write next
	expSeq  uint64
	known   bool // expSeq is the subject sequence the next event must follow
	retries int
	done    bool
}

func (g *group) current() int { return g.idx[g.next] }

// Append writes the events; see events.Store. Events of different accounts go out
// together as async publishes; the events of one account follow one per round, each
// round expecting the stream sequence the previous one got.
func (s *Store) Append(ctx context.Context, evs []events.Envelope) []error {
	errs := make([]error, len(evs))
	if len(evs) == 0 {
		return errs
	}
	if s.closed.Load() {
		for i := range errs {
			errs[i] = errClosed
		}
		return errs
	}
	a := appender{s: s, ctx: ctx, evs: evs, errs: errs}
	a.run(groupByAccount(evs, errs))
	return errs
}

// groupByAccount checks every event and groups the good ones by account in the order
// they were given. An account whose events are not consecutive versions is refused as a
// whole: writing a prefix of it would leave the caller's decision half applied.
func groupByAccount(evs []events.Envelope, errs []error) []*group {
	byAccount := make(map[string]*group)
	var groups []*group
	for i := range evs {
		ev := &evs[i]
		if err := checkAccountID(ev.AccountID); err != nil {
			errs[i] = fmt.Errorf("append: %w", err)
			continue
		}
		g := byAccount[ev.AccountID]
		if g == nil {
			g = &group{account: ev.AccountID, subject: Subject(ev.AccountID)}
			byAccount[ev.AccountID] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	kept := groups[:0]
	for _, g := range groups {
		if err := checkGroup(evs, g); err != nil {
			for _, i := range g.idx {
				errs[i] = err
			}
			continue
		}
		kept = append(kept, g)
	}
	return kept
}

func checkGroup(evs []events.Envelope, g *group) error {
	for k, i := range g.idx {
		ev := &evs[i]
		switch {
		case ev.ID == uuid.Nil:
			// Rule 3: ids are derived by the caller; the store never invents one.
			return fmt.Errorf("append %s v%d: event has no id", g.subject, ev.Version)
		case ev.Version == 0:
			return fmt.Errorf("append %s: version 0: versions start at 1", g.subject)
		case k > 0 && ev.Version != evs[g.idx[k-1]].Version+1:
			return fmt.Errorf("append %s: versions %d then %d in one call: not consecutive",
				g.subject, evs[g.idx[k-1]].Version, ev.Version)
		}
	}
	return nil
}

// appender is the state of one Append call.
type appender struct {
	s    *Store
	ctx  context.Context
	evs  []events.Envelope
	errs []error
}

// flight is one publish waiting for its acknowledgement.
type flight struct {
	g   *group
	paf jetstream.PubAckFuture
}

// check is a follow-up that needs the server: where the account stream ends (unknown
// expectation or wrong last sequence) or whether a duplicate ack is really ours.
type check struct {
	g      *group
	dupSeq uint64 // > 0: verify a duplicate ack pointing at this stream sequence
}

func (a *appender) run(groups []*group) {
	active := groups
	for len(active) > 0 {
		if err := a.ctx.Err(); err != nil {
			for _, g := range active {
				a.fail(g, fmt.Errorf("append %s v%d: %w", g.subject, a.evs[g.current()].Version, err))
			}
			return
		}
		// Learn where the streams end for the accounts the cache cannot tell.
		var checks []check
		for _, g := range active {
			if !g.known && !a.expectFromCache(g) {
				checks = append(checks, check{g: g})
			}
		}
		a.runChecks(checks)

		flights := a.publish(active)
		checks = a.await(flights)
		a.runChecks(checks)

		next := active[:0]
		for _, g := range active {
			if !g.done {
				next = append(next, g)
			}
		}
		active = next
	}
}

// expectFromCache sets the group's expectation without a round trip when it can: the
// first event of an account, or a cached tip right before the event.
func (a *appender) expectFromCache(g *group) bool {
	want := a.evs[g.current()].Version - 1
	if want == 0 {
		// Version 1 expects an empty subject (expected subject sequence 0). If the
		// account already exists, the server answers wrong-last-sequence and the
		// follow-up check finds out whether the event is ours.
		g.expSeq, g.known = 0, true
		return true
	}
	if t, ok := a.s.tips.get(g.account); ok && t.version == want {
		g.expSeq, g.known = t.seq, true
		return true
	}
	return false
}

// publish sends the next event of every group that knows its expectation.
func (a *appender) publish(active []*group) []flight {
	flights := make([]flight, 0, len(active))
	for _, g := range active {
		if g.done || !g.known {
			continue
		}
		ev := &a.evs[g.current()]
		// Encoding here rather than all up front lets the server store the first
		// events of a batch while the rest are still being encoded.
		body, err := encodeEnvelope(*ev)
		if err != nil {
			a.fail(g, fmt.Errorf("append %s v%d: %w", g.subject, ev.Version, err))
			continue
		}
		m := &nats.Msg{
			Subject: g.subject,
			Data:    body,
			Header: nats.Header{
				jetstream.MsgIDHeader:               []string{ev.ID.String()},
				jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(g.expSeq, 10)},
				VersionHeader:                       []string{strconv.FormatUint(ev.Version, 10)},
			},
		}
		paf, err := a.s.js.PublishMsgAsync(m, jetstream.WithStallWait(a.s.opts.AckWait))
		if err != nil {
			a.fail(g, fmt.Errorf("append %s v%d: %w", g.subject, ev.Version, err))
			continue
		}
		flights = append(flights, flight{g: g, paf: paf})
	}
	return flights
}

// await collects the acknowledgements of one round and returns what needs a look at
// the server.
func (a *appender) await(flights []flight) []check {
	var checks []check
	done := a.ctx.Done()
	for _, f := range flights {
		g := f.g
		ev := &a.evs[g.current()]
		select {
		case ack := <-f.paf.Ok():
			if ack.Duplicate {
				// The server skipped the write because it saw this id within the
				// window. Trust it only after seeing the id at this very place.
				checks = append(checks, check{g: g, dupSeq: ack.Sequence})
				continue
			}
			a.succeed(g, ack.Sequence)
		case err := <-f.paf.Err():
			if isWrongLastSequence(err) {
				// Rule 4: on one server this is also how a retry of an append that
				// did land comes back. The check tells the two apart.
				g.known = false
				checks = append(checks, check{g: g})
				continue
			}
			a.fail(g, fmt.Errorf("append %s v%d: %w", g.subject, ev.Version, err))
		case <-done:
			// The event may still land; a retry of the same event then succeeds.
			a.fail(g, fmt.Errorf("append %s v%d: %w", g.subject, ev.Version, a.ctx.Err()))
		}
	}
	return checks
}

// runChecks runs the follow-ups concurrently, at most LookupsMax at a time.
func (a *appender) runChecks(checks []check) {
	if len(checks) == 0 {
		return
	}
	sem := make(chan struct{}, a.s.opts.LookupsMax)
	var wg sync.WaitGroup
	for _, c := range checks {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if c.dupSeq > 0 {
				a.checkDuplicate(c.g, c.dupSeq)
			} else {
				a.checkTip(c.g)
			}
		}()
	}
	wg.Wait()
}

// checkTip looks up where the group's account stream ends and decides: publish after
// it, done already (our event is there), or conflict.
func (a *appender) checkTip(g *group) {
	ev := &a.evs[g.current()]
	last, found, err := a.s.lastOf(a.ctx, g.subject)
	if err != nil {
		a.fail(g, fmt.Errorf("append %s v%d: %w", g.subject, ev.Version, err))
		return
	}
	if !found {
		last = record{}
	} else {
		a.s.tips.put(g.account, tip{version: last.version, seq: last.seq})
	}
	switch {
	case last.version == ev.Version-1:
		if g.retries++; g.retries > lookupRetriesMax {
			a.fail(g, fmt.Errorf("append %s v%d: stream at v%d (seq %d) keeps refusing the append",
				g.subject, ev.Version, last.version, last.seq))
			return
		}
		g.expSeq, g.known = last.seq, true
	case last.version >= ev.Version:
		at := last
		if last.version > ev.Version {
			at, found, err = a.s.atVersion(a.ctx, g.subject, ev.Version, last)
			if err != nil {
				a.fail(g, fmt.Errorf("append %s v%d: %w", g.subject, ev.Version, err))
				return
			}
			if !found {
				a.fail(g, fmt.Errorf("append %s v%d: stream at v%d but v%d not found", g.subject, ev.Version, last.version, ev.Version))
				return
			}
		}
		if at.id != ev.ID {
			a.fail(g, fmt.Errorf("append %s v%d: %w: v%d is taken by event %s (stream at v%d)",
				g.subject, ev.Version, events.ErrConflict, ev.Version, at.id, last.version))
			return
		}
		if err := a.samePayload(ev, at.seq); err != nil {
			a.fail(g, fmt.Errorf("append %s v%d: %w", g.subject, ev.Version, err))
			return
		}
		a.succeed(g, at.seq) // rule 4: the first attempt landed
	default:
		a.fail(g, fmt.Errorf("append %s v%d: %w: stream is at v%d", g.subject, ev.Version, events.ErrConflict, last.version))
	}
}

// samePayload confirms that the stored event with our id says what ours says. Ids come
// from business keys (a usage id), so another writer may have stored the same id with
// other content: a platform resending a usage with a changed amount to a second ledger
// process. Taking that for our own retry would leave the caller believing its content
// was written; as a conflict, the caller reloads and sees what was.
func (a *appender) samePayload(ev *events.Envelope, seq uint64) error {
	m, err := a.s.stream.GetMsg(a.ctx, seq)
	if err != nil {
		return fmt.Errorf("read back seq %d: %w", seq, err)
	}
	stored, err := decodeEnvelope(m.Data)
	if err != nil {
		return fmt.Errorf("read back seq %d: %w", seq, err)
	}
	ours, errOurs := events.MarshalData(ev.Data)
	theirs, errTheirs := events.MarshalData(stored.Data)
	if errOurs != nil || errTheirs != nil || !bytes.Equal(ours, theirs) {
		return fmt.Errorf("%w: event %s is stored with other content", events.ErrConflict, ev.ID)
	}
	return nil
}

// checkDuplicate confirms that the message a duplicate ack points at is this event at
// this version of this account. Anything else means the caller reused an id, and a
// silent success would hide an event that was never written.
func (a *appender) checkDuplicate(g *group, seq uint64) {
	ev := &a.evs[g.current()]
	m, err := a.s.stream.GetMsg(a.ctx, seq)
	if err != nil {
		a.fail(g, fmt.Errorf("append %s v%d: confirm duplicate at seq %d: %w", g.subject, ev.Version, seq, err))
		return
	}
	rec, err := parseRecord(m)
	if err != nil {
		a.fail(g, fmt.Errorf("append %s v%d: confirm duplicate at seq %d: %w", g.subject, ev.Version, seq, err))
		return
	}
	if m.Subject != g.subject || rec.id != ev.ID || rec.version != ev.Version {
		a.fail(g, fmt.Errorf("append %s v%d: event id %s is already stored at seq %d as %s v%d",
			g.subject, ev.Version, ev.ID, seq, m.Subject, rec.version))
		return
	}
	a.succeed(g, seq)
}

// succeed records the current event of g as stored at seq and moves to the next one.
// Groups are only touched by one goroutine at a time (rounds are sequential, checks are
// one per group), so no lock is needed.
func (a *appender) succeed(g *group, seq uint64) {
	i := g.current()
	a.evs[i].Position = seq
	a.errs[i] = nil
	a.s.tips.put(g.account, tip{version: a.evs[i].Version, seq: seq})
	g.next++
	g.retries = 0
	g.expSeq, g.known = seq, true
	if g.next == len(g.idx) {
		g.done = true
	}
}

// fail records err for the current event of g and refuses the ones after it: they
// were decided on top of it.
func (a *appender) fail(g *group, err error) {
	i := g.current()
	a.errs[i] = err
	for _, j := range g.idx[g.next+1:] {
		a.errs[j] = fmt.Errorf("append %s v%d: not written, v%d before it failed: %w",
			g.subject, a.evs[j].Version, a.evs[i].Version, err)
	}
	g.done = true
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// record is what the store needs to know about one stored event without decoding it.
type record struct {
	seq     uint64
	version uint64
	id      uuid.UUID
	// prev is the stream sequence of the account's previous event: the expected last
	// subject sequence the event was written with, which JetStream keeps among its
	// headers. It links an account's events backwards (0 for version 1).
	prev    uint64
	hasPrev bool
	msg     *jetstream.RawStreamMsg
}

// parseRecord reads version and id from the headers the store writes, falling back to
// the body for a message that lacks them.
func parseRecord(m *jetstream.RawStreamMsg) (record, error) {
	rec := record{seq: m.Sequence, msg: m}
	if prev, err := strconv.ParseUint(m.Header.Get(jetstream.ExpectedLastSubjSeqHeader), 10, 64); err == nil {
		rec.prev, rec.hasPrev = prev, true
	}
	v, errV := strconv.ParseUint(m.Header.Get(VersionHeader), 10, 64)
	id, errID := uuid.Parse(m.Header.Get(jetstream.MsgIDHeader))
	if errV == nil && errID == nil {
		rec.version, rec.id = v, id
		return rec, nil
	}
	env, err := decodeEnvelope(m.Data)
	if err != nil {
		return record{}, fmt.Errorf("seq %d: %w", m.Sequence, err)
	}
	rec.version, rec.id = env.Version, env.ID
	return rec, nil
}

// lastOf returns the last event of a subject (found false for an unknown account).
func (s *Store) lastOf(ctx context.Context, subject string) (record, bool, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("last of %s: %w", subject, err)
	}
	rec, err := parseRecord(m)
	if err != nil {
		return record{}, false, fmt.Errorf("last of %s: %w", subject, err)
	}
	return rec, true, nil
}

// walkBackMax is the longest distance atVersion and ReadStream cover by following the
// previous-sequence links, one direct get per event, before they switch to the binary
// search (about log2 of the stream length in direct gets).
const walkBackMax = 16

// atVersion finds the event with the given version of the account stream that ends at
// last (last.version > version).
func (s *Store) atVersion(ctx context.Context, subject string, version uint64, last record) (record, bool, error) {
	if last.version-version <= walkBackMax {
		recs, ok, err := s.walkBack(ctx, subject, last, version)
		if err != nil || ok {
			if !ok {
				return record{}, false, err
			}
			return recs[0], true, nil
		}
	}
	return s.search(ctx, subject, version, last.seq-1)
}

// walkBack follows the previous-sequence links from last down to the given version
// and returns the events from version to last in order. ok is false when a link is
// missing or does not lead to the account's previous version (a message not written by
// this store); the caller then searches instead.
func (s *Store) walkBack(ctx context.Context, subject string, last record, version uint64) ([]record, bool, error) {
	recs := []record{last}
	for cur := last; cur.version > version; {
		if !cur.hasPrev || cur.prev == 0 || cur.prev >= cur.seq {
			return nil, false, nil
		}
		m, err := s.stream.GetMsg(ctx, cur.prev)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read %s at seq %d: %w", subject, cur.prev, err)
		}
		prev, err := parseRecord(m)
		if err != nil || m.Subject != subject || prev.version != cur.version-1 {
			return nil, false, nil
		}
		recs = append(recs, prev)
		cur = prev
	}
	slices.Reverse(recs)
	return recs, true, nil
}

// search finds the event with the given version of a subject whose events all sit at
// stream sequences <= hi. Versions grow with stream sequence, so a binary search over
// sequences with direct gets ("first message of the subject at or after seq") needs
// about log2(hi) round trips, however long the account stream is.
func (s *Store) search(ctx context.Context, subject string, version, hi uint64) (record, bool, error) {
	lo := uint64(1)
	for lo <= hi {
		mid := lo + (hi-lo)/2
		m, err := s.stream.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid - 1
			continue
		}
		if err != nil {
			return record{}, false, fmt.Errorf("find %s v%d: %w", subject, version, err)
		}
		rec, err := parseRecord(m)
		if err != nil {
			return record{}, false, fmt.Errorf("find %s v%d: %w", subject, version, err)
		}
		switch {
		case rec.version == version:
			return rec, true, nil
		case rec.version < version:
			lo = rec.seq + 1
		default:
			hi = mid - 1
		}
	}
	return record{}, false, nil
}
