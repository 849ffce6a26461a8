package eventstore

import (
	"context"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// conn is the part of the EventStoreDB client the store uses. It exists so that the
// store's own logic (batching, idempotent retries, resubscription, client replacement)
// can be tested against an in-memory fake: the client's ReadStream and Subscription
// types have no exported constructors.
type conn interface {
	appendToStream(ctx context.Context, stream string, opts esdb.AppendToStreamOptions, evs ...esdb.EventData) (*esdb.WriteResult, error)
	readStream(ctx context.Context, stream string, opts esdb.ReadStreamOptions, count uint64) (eventReader, error)
	readAll(ctx context.Context, opts esdb.ReadAllOptions, count uint64) (eventReader, error)
	subscribeToAll(ctx context.Context, opts esdb.SubscribeToAllOptions) (subscription, error)
	serverVersion() (*esdb.ServerVersion, error)
	close() error
}

// eventReader is a finite read (*esdb.ReadStream).
type eventReader interface {
	Recv() (*esdb.ResolvedEvent, error)
	Close()
}

// subscription is a catch-up subscription (*esdb.Subscription).
type subscription interface {
	Recv() *esdb.SubscriptionEvent
	Close() error
}

// dialer makes a new conn; the store calls it at start and to replace a client that has
// shut itself down.
type dialer func() (conn, error)

// esdbDialer returns a dialer of real clients for cfg. Each client gets its own copy of
// the configuration because the client keeps a pointer to it.
func esdbDialer(cfg esdb.Configuration) dialer {
	return func() (conn, error) {
		c := cfg
		client, err := esdb.NewClient(&c)
		if err != nil {
			return nil, err
		}
		return esdbConn{client}, nil
	}
}

// esdbConn adapts *esdb.Client to conn.
type esdbConn struct{ c *esdb.Client }

func (e esdbConn) appendToStream(ctx context.Context, stream string, opts esdb.AppendToStreamOptions, evs ...esdb.EventData) (*esdb.WriteResult, error) {
	return e.c.AppendToStream(ctx, stream, opts, evs...)
}

func (e esdbConn) readStream(ctx context.Context, stream string, opts esdb.ReadStreamOptions, count uint64) (eventReader, error) {
	r, err := e.c.ReadStream(ctx, stream, opts, count)
	if err != nil {
		return nil, err // not a typed nil inside a non-nil interface
	}
	return r, nil
}

func (e esdbConn) readAll(ctx context.Context, opts esdb.ReadAllOptions, count uint64) (eventReader, error) {
	r, err := e.c.ReadAll(ctx, opts, count)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (e esdbConn) subscribeToAll(ctx context.Context, opts esdb.SubscribeToAllOptions) (subscription, error) {
	s, err := e.c.SubscribeToAll(ctx, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (e esdbConn) serverVersion() (*esdb.ServerVersion, error) { return e.c.GetServerVersion() }

func (e esdbConn) close() error { return e.c.Close() }
