package events

import (
	"context"
	"errors"
)

// ErrConflict is returned by Append when the stream is not at the expected version: another
// writer got there first. The caller reloads the stream and decides again.
var ErrConflict = errors.New("wrong expected stream version")

// ErrStopped is returned by a handler to end a Subscribe or ReadAll early without error.
var ErrStopped = errors.New("stopped")

// Store is the port to the ledger's event store: one immutable stream per account.
//
// Both adapters pass the contract suite in events/storetest.
type Store interface {
	// Append writes each event at position ev.Version of stream ev.AccountID, only if the
	// stream then holds exactly ev.Version-1 events (optimistic concurrency). Events of
	// different accounts are written concurrently; several events of one account must have
	// consecutive versions and are written in order. It returns one error per event: nil,
	// ErrConflict (wrapped), or another failure. On success it sets evs[i].Position.
	//
	// Appending an event whose ID is already at that position is a success: a retried
	// append whose first attempt landed is not an error.
	Append(ctx context.Context, evs []Envelope) []error

	// ReadStream returns the events of one account with Version > afterVersion, in order.
	// An unknown account has an empty stream.
	ReadStream(ctx context.Context, accountID string, afterVersion uint64) ([]Envelope, error)

	// ReadAll calls fn for every event of every stream with Position > after, in store
	// order, up to the end of the store as it was when ReadAll began.
	ReadAll(ctx context.Context, after uint64, fn func(Envelope) error) error

	// Subscribe is ReadAll that does not stop at the end: it then waits for new events and
	// delivers them as they are appended, until ctx ends or fn returns an error.
	// fn returning ErrStopped ends it with a nil error.
	Subscribe(ctx context.Context, after uint64, fn func(Envelope) error) error

	// Head is the Position of the last event in the store (0 when empty).
	Head(ctx context.Context) (uint64, error)

	// Close releases the store's connections.
	Close() error
}
