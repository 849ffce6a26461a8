package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/telephony/creditledger/events"
)

// batch is the events of one account within an Append call: indexes into the call's
// slice, in the order given.
type batch struct {
	accountID string
	idx       []int
}

// groupByAccount splits an Append call into one batch per account, keeping the order of
// first appearance and, within an account, the order given.
func groupByAccount(evs []events.Envelope) []batch {
	var batches []batch
	at := make(map[string]int)
	for i, ev := range evs {
		b, ok := at[ev.AccountID]
		if !ok {
			b = len(batches)
			at[ev.AccountID] = b
			batches = append(batches, batch{accountID: ev.AccountID})
		}
		batches[b].idx = append(batches[b].idx, i)
	}
	return batches
}

// checkBatch verifies what the port promises about the events of one account: an
// account id, versions from 1 on, and consecutive versions in the order given. A batch
// that breaks this is refused whole, before anything is written.
func checkBatch(evs []events.Envelope, b batch) error {
	if b.accountID == "" {
		return errors.New("event without account id")
	}
	for k, i := range b.idx {
		v := evs[i].Version
		if v == 0 {
			return fmt.Errorf("event %s: version 0 (versions start at 1)", evs[i].ID)
		}
		if k > 0 {
			if prev := evs[b.idx[k-1]].Version; v != prev+1 {
				return fmt.Errorf("event %s: version %d follows version %d in the same call; versions of one account must be consecutive", evs[i].ID, v, prev)
			}
		}
	}
	return nil
}

// Append implements events.Store. The events of one account are one atomic
// AppendToStream with the expected revision of the first (several consecutive ones, each
// atomic, when they exceed Options.AppendBytesMax; an event after a failed one then fails
// too, wrapping that error); different accounts are written concurrently, at most
// Options.AppendConcurrencyMax at a time.
func (s *Store) Append(ctx context.Context, evs []events.Envelope) []error {
	errs := make([]error, len(evs))
	if len(evs) == 0 {
		return errs
	}
	ctx, end, err := s.begin(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer end()

	batches := groupByAccount(evs)
	if len(batches) == 1 {
		s.appendBatch(ctx, evs, batches[0], errs)
		return errs
	}
	// Each goroutine writes only the errs and evs entries of its own batch.
	sem := make(chan struct{}, s.opts.AppendConcurrencyMax)
	var wg sync.WaitGroup
	for _, b := range batches {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.appendBatch(ctx, evs, b, errs)
		}()
	}
	wg.Wait()
	return errs
}

// appendBatch writes the events of one account and records, for each, its position or
// its error.
func (s *Store) appendBatch(ctx context.Context, evs []events.Envelope, b batch, errs []error) {
	stream := events.StreamName(b.accountID)
	fail := func(idx []int, err error) {
		for _, i := range idx {
			errs[i] = err
		}
	}
	if err := checkBatch(evs, b); err != nil {
		fail(b.idx, fmt.Errorf("append %s: %w", stream, err))
		return
	}
	data := make([]esdb.EventData, len(b.idx))
	for k, i := range b.idx {
		d, err := toEventData(evs[i])
		if err != nil {
			fail(b.idx, fmt.Errorf("append %s: %w", stream, err))
			return
		}
		data[k] = d
	}
	// One AppendToStream per chunk; a batch is one chunk unless it is larger than the
	// server takes in one append.
	for _, c := range chunks(data, s.opts.AppendBytesMax) {
		idx := b.idx[c.from:c.to]
		if err := s.appendRun(ctx, stream, evs, idx, data[c.from:c.to], errs); err != nil {
			rest := b.idx[c.to:]
			if len(rest) > 0 {
				fail(rest, fmt.Errorf("append %s from version %d: not attempted because version %d failed: %w",
					stream, evs[rest[0]].Version, evs[idx[0]].Version, err))
			}
			return
		}
	}
}

// span is a chunk of a batch: data[from:to].
type span struct{ from, to int }

// eventOverheadBytes estimates what an event adds to an append request besides its data
// and metadata (id, type, content type, framing), so chunks stay below the server's
// limit with a margin.
const eventOverheadBytes = 256

// chunks splits the events of one account into runs of at most bytesMax estimated bytes
// (at least one event each). EventStoreDB refuses an append larger than its
// MaxAppendSize (1 MiB by default) as a whole, so a large ingest batch is written as
// several consecutive appends, each checked against the revision the previous one left.
func chunks(data []esdb.EventData, bytesMax int) []span {
	var out []span
	from, size := 0, 0
	for i, d := range data {
		n := len(d.Data) + len(d.Metadata) + len(d.EventType) + eventOverheadBytes
		if i > from && size+n > bytesMax {
			out = append(out, span{from, i})
			from, size = i, 0
		}
		size += n
	}
	return append(out, span{from, len(data)})
}

// appendRun writes consecutive events of one stream in one atomic append and records,
// for each, its position or its error. It returns the error of the run, nil when every
// event of it is in the stream.
func (s *Store) appendRun(ctx context.Context, stream string, evs []events.Envelope, idx []int, data []esdb.EventData, errs []error) error {
	fail := func(idx []int, err error) error {
		for _, i := range idx {
			errs[i] = err
		}
		return err
	}
	// pending are the events not yet known to be in the stream. Each round either ends
	// or confirms at least one of them, so the loop ends.
	pending, pendingData := idx, data
	for len(pending) > 0 {
		first := evs[pending[0]].Version
		op := fmt.Sprintf("append %s version %d", stream, first)
		expected, err := expectedRevision(first)
		if err != nil {
			return fail(pending, fmt.Errorf("%s: %w", op, err))
		}
		var res *esdb.WriteResult
		err = s.call(func(c conn) error {
			var err error
			res, err = c.appendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: expected}, pendingData...)
			return err
		})
		if err == nil {
			if len(pending) == 1 {
				if pos, ok := positionOf(esdb.Position{Commit: res.CommitPosition}); ok {
					evs[pending[0]].Position = pos
					errs[pending[0]] = nil
					return nil
				}
			}
			// Several events (the result holds only the last one's position) or an
			// idempotent success (no position at all): read the positions back.
			if err := s.fillPositions(ctx, stream, evs, pending); err != nil {
				return fail(pending, fmt.Errorf("%s: written, but reading back its positions failed (retrying the append is safe): %w", op, err))
			}
			return nil
		}
		if !hasCode(err, esdb.ErrorCodeWrongExpectedVersion) {
			return fail(pending, mapError(ctx, op, err))
		}
		// The stream is not where we expected. EventStoreDB answers a retry whose events
		// are all already there with success, but not one that only partly landed (an
		// earlier call with fewer events): look at what sits at our positions.
		landed, rerr := s.confirm(ctx, stream, evs, pending)
		if rerr != nil || landed == 0 {
			// Another writer got there first (or we cannot tell): a conflict is the safe
			// answer, since the caller reloads the stream and sees whatever is there.
			return fail(pending, mapError(ctx, op, err))
		}
		for _, i := range pending[:landed] {
			errs[i] = nil
		}
		pending, pendingData = pending[landed:], pendingData[landed:]
	}
	return nil
}

// fillPositions reads the events at the versions of idx (all of them known to be in the
// stream) and sets their positions.
func (s *Store) fillPositions(ctx context.Context, stream string, evs []events.Envelope, idx []int) error {
	recs, err := s.readRevisions(ctx, stream, revisionOf(evs[idx[0]].Version), len(idx))
	if err != nil {
		return err
	}
	if len(recs) != len(idx) {
		return fmt.Errorf("read back %d of %d events", len(recs), len(idx))
	}
	for k, i := range idx {
		if recs[k].EventID != evs[i].ID {
			return fmt.Errorf("version %d holds event %s, not %s", evs[i].Version, recs[k].EventID, evs[i].ID)
		}
		if !sameContent(recs[k], evs[i]) {
			// EventStoreDB takes a repeat of known event ids as an idempotent success
			// without looking at the content: another writer's version of the same usage.
			return fmt.Errorf("%w: event %s is stored with other content", events.ErrConflict, evs[i].ID)
		}
		pos, ok := positionOf(recs[k].Position)
		if !ok {
			return fmt.Errorf("the server reported no position for event %s", evs[i].ID)
		}
		evs[i].Position = pos
	}
	return nil
}

// sameContent reports whether a stored event says what ours says. Event ids come from
// business keys, so the same id can arrive with other content (a usage resent with a
// changed amount to a second ledger process); that is a conflict, not our retry.
func sameContent(rec *esdb.RecordedEvent, ev events.Envelope) bool {
	ours, err := events.MarshalData(ev.Data)
	return err == nil && bytes.Equal(rec.Data, ours)
}

// confirm counts how many of the events of idx, from the first on, are already in the
// stream at their versions with their ids, and sets their positions.
func (s *Store) confirm(ctx context.Context, stream string, evs []events.Envelope, idx []int) (int, error) {
	recs, err := s.readRevisions(ctx, stream, revisionOf(evs[idx[0]].Version), len(idx))
	if err != nil {
		return 0, err
	}
	n := 0
	for k, i := range idx {
		if k >= len(recs) || recs[k].EventID != evs[i].ID || recs[k].EventNumber != revisionOf(evs[i].Version) || !sameContent(recs[k], evs[i]) {
			break
		}
		pos, ok := positionOf(recs[k].Position)
		if !ok {
			return 0, fmt.Errorf("the server reported no position for event %s", evs[i].ID)
		}
		evs[i].Position = pos
		n++
	}
	return n, nil
}

// readRevisions reads up to n events of stream from revision rev on. A stream that does
// not exist reads as empty.
func (s *Store) readRevisions(ctx context.Context, stream string, rev uint64, n int) ([]*esdb.RecordedEvent, error) {
	var r eventReader
	err := s.call(func(c conn) error {
		var err error
		r, err = c.readStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(rev)}, uint64(n))
		return err
	})
	if err != nil {
		return nil, mapError(ctx, "read "+stream, err)
	}
	defer r.Close()
	var recs []*esdb.RecordedEvent
	for {
		ev, err := r.Recv()
		if errors.Is(err, io.EOF) || hasCode(err, esdb.ErrorCodeResourceNotFound) {
			return recs, nil
		}
		if err != nil {
			return nil, mapError(ctx, "read "+stream, err)
		}
		if ev != nil && ev.Event != nil {
			recs = append(recs, ev.Event)
		}
	}
}
