package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/events"
)

// accountFilter makes EventStoreDB send a subscription only the events of account
// streams, so a busy $all costs the ledger nothing for events that are not its own.
func accountFilter() *esdb.SubscriptionFilter {
	return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{streamPrefix}}
}

// Subscribe implements events.Store with a catch-up subscription to $all, filtered
// server-side to account streams, that starts after `after`.
//
// The client does not resubscribe when a subscription drops (server restart, leader
// change, network), so Subscribe does: it subscribes again from the position of the last
// event it delivered (subscriptions start exclusively, so that event is not delivered
// again and none after it is skipped), waiting ResubscribeDelayBase, doubling per failure
// in a row up to ResubscribeDelayMax. It ends when ctx ends (ctx.Err()), when fn returns
// an error (nil for events.ErrStopped, else that error), or on an error that retrying
// cannot fix (authentication, permissions, an event that does not decode).
func (s *Store) Subscribe(ctx context.Context, after uint64, fn func(events.Envelope) error) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()

	cur := cursor{last: after}
	failures := 0
	for {
		progressed, done, err := s.subscribeOnce(ctx, &cur, fn)
		if done {
			return err
		}
		if progressed {
			failures = 0
		}
		delay := resubscribeDelay(s.opts.ResubscribeDelayBase, s.opts.ResubscribeDelayMax, failures)
		failures++
		s.log.Warn("eventstore: subscription to $all dropped or refused; resubscribing",
			zap.Error(err), zap.Uint64("after", cur.last), zap.Duration("delay", delay), zap.Int("failures_in_a_row", failures))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// cursor is where a subscription stands: last is the position of the last event delivered
// (or the caller's `after`), from the position to (re)subscribe from, nil until it has
// been located (see startAfter).
type cursor struct {
	last uint64
	from esdb.AllPosition
}

// subscribeOnce runs one subscription from cur until it drops or must end, moving cur to
// each event delivered. progressed tells whether the server answered at all (which resets
// the backoff); done tells whether Subscribe must return err rather than resubscribe.
func (s *Store) subscribeOnce(ctx context.Context, cur *cursor, fn func(events.Envelope) error) (progressed, done bool, err error) {
	stop := func(err error) (bool, bool, error) {
		if ctx.Err() != nil {
			return progressed, true, ctx.Err()
		}
		if !retryable(err) {
			return progressed, true, mapError(ctx, "subscribe to $all", err)
		}
		return progressed, false, err
	}
	if cur.from == nil {
		from, err := s.startAfter(ctx, cur.last)
		if err != nil {
			return stop(err)
		}
		cur.from = from
	}
	var sub subscription
	err = s.call(func(c conn) error {
		var err error
		sub, err = c.subscribeToAll(ctx, esdb.SubscribeToAllOptions{From: cur.from, Filter: accountFilter()})
		return err
	})
	if err != nil {
		return stop(err)
	}
	defer sub.Close()

	for {
		e := sub.Recv()
		switch {
		case e == nil:
			continue
		case e.SubscriptionDropped != nil:
			if ctx.Err() != nil {
				return progressed, true, ctx.Err()
			}
			err := e.SubscriptionDropped.Error
			if err == nil {
				err = errors.New("subscription dropped")
			}
			return progressed, false, err
		case e.EventAppeared != nil:
			progressed = true
			rec := e.EventAppeared.Event
			if !isAccountEvent(rec) {
				continue
			}
			pos, ok := positionOf(rec.Position)
			if !ok {
				return progressed, true, fmt.Errorf("subscribe to $all: event %s of %s has no position", rec.EventID, rec.StreamID)
			}
			if pos <= cur.last {
				continue // never deliver twice, whatever the server resends
			}
			env, err := fromRecorded(rec)
			if err != nil {
				// Skipping an event would lose money; stop and let the caller see it.
				return progressed, true, fmt.Errorf("subscribe to $all: %w", err)
			}
			if err := fn(env); err != nil {
				if errors.Is(err, events.ErrStopped) {
					return progressed, true, nil
				}
				return progressed, true, err
			}
			cur.last, cur.from = pos, rec.Position
		default:
			// Checkpoints, caught-up and fell-behind notices: the server is alive.
			progressed = true
		}
	}
}

// resubscribeDelay is the wait before resubscribing after `failures` failed attempts in
// a row: base, 2*base, 4*base, ... capped at max.
func resubscribeDelay(base, max time.Duration, failures int) time.Duration {
	d := base
	for i := 0; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}
