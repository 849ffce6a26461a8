package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/events"
)

// ReadStream implements events.Store. Events with Version > afterVersion are those from
// revision afterVersion on (version v is revision v-1). A stream that does not exist is
// reported by the server on the first Recv, and reads as empty.
func (s *Store) ReadStream(ctx context.Context, accountID string, afterVersion uint64) ([]events.Envelope, error) {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()

	stream := events.StreamName(accountID)
	op := "read " + stream
	var r eventReader
	err = s.call(func(c conn) error {
		var err error
		r, err = c.readStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(afterVersion)}, readCountMax)
		return err
	})
	if err != nil {
		return nil, mapError(ctx, op, err)
	}
	defer r.Close()

	var out []events.Envelope
	for {
		ev, err := r.Recv()
		if errors.Is(err, io.EOF) || hasCode(err, esdb.ErrorCodeResourceNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, mapError(ctx, op, err)
		}
		if ev == nil || ev.Event == nil || !isAccountEvent(ev.Event) {
			continue
		}
		env, err := fromRecorded(ev.Event)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, env)
	}
}

// ReadAll implements events.Store. It first takes Head, then reads $all forward from
// `after` and stops after the event at Head, so events appended meanwhile are left to the
// next call or to Subscribe. The read is not filtered server-side (the client's ReadAll
// has no filter): system events are skipped here, which costs little in a database that
// serves the ledger alone.
func (s *Store) ReadAll(ctx context.Context, after uint64, fn func(events.Envelope) error) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()

	head, err := s.head(ctx)
	if err != nil {
		return err
	}
	if head <= after {
		return nil
	}
	const op = "read $all"
	from, err := s.startAfter(ctx, after)
	if err != nil {
		return err
	}
	var r eventReader
	err = s.call(func(c conn) error {
		var err error
		r, err = c.readAll(ctx, esdb.ReadAllOptions{Direction: esdb.Forwards, From: from}, readCountMax)
		return err
	})
	if err != nil {
		return mapError(ctx, op, err)
	}
	defer r.Close()

	for {
		ev, err := r.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return mapError(ctx, op, err)
		}
		if ev == nil || !isAccountEvent(ev.Event) {
			continue
		}
		pos, ok := positionOf(ev.Event.Position)
		if !ok {
			return fmt.Errorf("%s: event %s of %s has no position", op, ev.Event.EventID, ev.Event.StreamID)
		}
		if pos <= after {
			continue // a read of $all includes the event at its start position
		}
		if pos > head {
			return nil
		}
		env, err := fromRecorded(ev.Event)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := fn(env); err != nil {
			if errors.Is(err, events.ErrStopped) {
				return nil
			}
			return err
		}
	}
}

// startAfter returns where a read or a subscription of $all must start to see every event
// with position > after. EventStoreDB can only start at the position of a record: a read
// from inside one fails ("log record ... has too large length"). The positions callers
// keep are those of delivered events, so the fast path checks that `after` is one (one
// small read). Otherwise (a position between events, or beyond the end of a log that was
// reset) it scans $all back from the end to the last record at or before `after`; that
// costs a read of the events after it, which is what the caller is about to read anyway.
// The start found may lie before `after`: callers skip positions <= after.
func (s *Store) startAfter(ctx context.Context, after uint64) (esdb.AllPosition, error) {
	if after == 0 {
		return esdb.Start{}, nil
	}
	exact := esdb.Position{Commit: after, Prepare: after}
	var probe eventReader
	err := s.call(func(c conn) error {
		var err error
		probe, err = c.readAll(ctx, esdb.ReadAllOptions{Direction: esdb.Forwards, From: exact}, 1)
		return err
	})
	if err == nil {
		ev, rerr := probe.Recv()
		probe.Close()
		if rerr == nil && ev != nil && ev.Event != nil && ev.Event.Position == exact {
			return exact, nil
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("read $all: %w", ctx.Err())
	}

	const op = "locate position in $all"
	// Before the first record (cheap to check, and the whole log to scan back otherwise).
	var first eventReader
	err = s.call(func(c conn) error {
		var err error
		first, err = c.readAll(ctx, esdb.ReadAllOptions{Direction: esdb.Forwards, From: esdb.Start{}}, 1)
		return err
	})
	if err != nil {
		return nil, mapError(ctx, op, err)
	}
	ev, err := first.Recv()
	first.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, mapError(ctx, op, err)
	}
	if ev == nil || ev.Event == nil || after < ev.Event.Position.Commit {
		return esdb.Start{}, nil
	}

	var r eventReader
	err = s.call(func(c conn) error {
		var err error
		r, err = c.readAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, readCountMax)
		return err
	})
	if err != nil {
		return nil, mapError(ctx, op, err)
	}
	defer r.Close()
	for {
		ev, err := r.Recv()
		if errors.Is(err, io.EOF) {
			return esdb.Start{}, nil // `after` lies before the first record
		}
		if err != nil {
			return nil, mapError(ctx, op, err)
		}
		if ev == nil || ev.Event == nil {
			continue
		}
		if p := ev.Event.Position; p.Commit <= after {
			s.log.Debug("eventstore: start position is not an event position; starting at the record before it",
				zap.Uint64("after", after), zap.Uint64("start", p.Commit))
			return p, nil
		}
	}
}
