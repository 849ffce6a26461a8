package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/events"
)

// Store is the events.Store of the ledger on EventStoreDB. It is safe for concurrent use.
type Store struct {
	dial dialer
	log  *zap.Logger
	opts Options

	// ctx ends when Close starts, cancelling in-flight reads and subscriptions; ops counts
	// the operations Close waits for before it closes the client (closing the client under
	// a running call can make the client send on its closed channel and panic).
	ctx    context.Context
	cancel context.CancelFunc
	ops    sync.WaitGroup

	mu     sync.Mutex
	conn   conn
	closed bool
}

var _ events.Store = (*Store)(nil)

// Options tunes a Store. The zero value gives the defaults.
type Options struct {
	// AppendConcurrencyMax bounds how many accounts one Append call writes at the same
	// time (one goroutine and one in-flight AppendToStream per account). Default 16.
	AppendConcurrencyMax int
	// ResubscribeDelayBase is how long Subscribe waits before its first attempt to
	// resubscribe after the subscription dropped or could not be made; the wait doubles
	// with each further failure in a row. Default 100ms.
	ResubscribeDelayBase time.Duration
	// ResubscribeDelayMax caps that wait. Default 10s.
	ResubscribeDelayMax time.Duration
	// CloseWaitMax bounds how long Close waits for in-flight operations to end after
	// cancelling them. Default 5s.
	CloseWaitMax time.Duration
	// AppendBytesMax bounds the estimated size of one AppendToStream request. The events
	// of one account beyond it go in further appends (see Append). Keep it below the
	// server's MaxAppendSize (1 MiB by default). Default 512 KiB.
	AppendBytesMax int
}

// Option defaults; see Options.
const (
	appendConcurrencyMaxDefault = 16
	resubscribeDelayBaseDefault = 100 * time.Millisecond
	resubscribeDelayMaxDefault  = 10 * time.Second
	closeWaitMaxDefault         = 5 * time.Second
	appendBytesMaxDefault       = 512 << 10
)

// readCountMax is the count of a read that should run to the end of the stream. The
// server takes the count as a signed 64-bit number, so math.MaxUint64 is not safe; the
// .NET client uses the same value for "everything".
const readCountMax = math.MaxInt64

// minServerVersion is the first EventStoreDB that reports $all positions on stream reads.
var minServerVersion = esdb.ServerVersion{Major: 22, Minor: 6}

func (o Options) withDefaults() Options {
	if o.AppendConcurrencyMax <= 0 {
		o.AppendConcurrencyMax = appendConcurrencyMaxDefault
	}
	if o.ResubscribeDelayBase <= 0 {
		o.ResubscribeDelayBase = resubscribeDelayBaseDefault
	}
	if o.ResubscribeDelayMax <= 0 {
		o.ResubscribeDelayMax = resubscribeDelayMaxDefault
	}
	if o.ResubscribeDelayMax < o.ResubscribeDelayBase {
		o.ResubscribeDelayMax = o.ResubscribeDelayBase
	}
	if o.CloseWaitMax <= 0 {
		o.CloseWaitMax = closeWaitMaxDefault
	}
	if o.AppendBytesMax <= 0 {
		o.AppendBytesMax = appendBytesMaxDefault
	}
	return o
}

// New connects to EventStoreDB at connectionString (for example
// "esdb://127.0.0.1:2113?tls=false", or "esdb://admin:changeit@host:2113" with TLS) and
// checks that the server is recent enough. It fails rather than start a ledger that
// cannot reach its store; ctx bounds that first contact.
func New(ctx context.Context, connectionString string, logger *zap.Logger, opts Options) (*Store, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg, err := parseConfig(connectionString, logger)
	if err != nil {
		return nil, err
	}
	s, err := newStore(esdbDialer(*cfg), logger, opts)
	if err != nil {
		return nil, err
	}
	if err := s.checkServer(ctx); err != nil {
		// In the background: Close waits for the discovery still running in the client.
		go s.Close()
		return nil, fmt.Errorf("eventstore: %s: %w", redact(connectionString), err)
	}
	return s, nil
}

// newStore makes a Store over conns made by dial, without contacting the server.
func newStore(dial dialer, logger *zap.Logger, opts Options) (*Store, error) {
	c, err := dial()
	if err != nil {
		return nil, fmt.Errorf("eventstore: %w", err)
	}
	s := &Store{dial: dial, log: logger, opts: opts.withDefaults(), conn: c}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// checkServer makes the first contact and refuses servers older than minServerVersion.
// The client's discovery does not listen to a context, so it runs aside and ctx only
// bounds the wait for it. It counts as an operation, so that Close does not close the
// client under it.
func (s *Store) checkServer(ctx context.Context) error {
	type answer struct {
		v   *esdb.ServerVersion
		err error
	}
	_, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	c := s.current()
	done := make(chan answer, 1)
	go func() {
		v, err := c.serverVersion()
		end()
		done <- answer{v, err}
	}()
	select {
	case <-ctx.Done():
		return fmt.Errorf("connect: %w", ctx.Err())
	case a := <-done:
		if a.err != nil {
			return fmt.Errorf("connect: %w", a.err)
		}
		if *a.v == (esdb.ServerVersion{}) {
			// gRPC maps an HTTP 404 to "unimplemented", which the client takes for a
			// server without the server-features API: a proxy or another HTTP server
			// answers the same way.
			return fmt.Errorf("the server did not report its version: not EventStoreDB, or one older than 21.10 (%d.%d or later is needed)",
				minServerVersion.Major, minServerVersion.Minor)
		}
		if !versionAtLeast(*a.v, minServerVersion) {
			return fmt.Errorf("server version %d.%d.%d is older than %d.%d, the first that reports $all positions on stream reads",
				a.v.Major, a.v.Minor, a.v.Patch, minServerVersion.Major, minServerVersion.Minor)
		}
		s.log.Info("eventstore: connected", zap.String("server_version",
			fmt.Sprintf("%d.%d.%d", a.v.Major, a.v.Minor, a.v.Patch)))
		return nil
	}
}

// versionAtLeast compares server versions. A server without the server-features API
// (older than 21.10) reports 0.0.0 and so is refused too.
func versionAtLeast(v, min esdb.ServerVersion) bool {
	if v.Major != min.Major {
		return v.Major > min.Major
	}
	if v.Minor != min.Minor {
		return v.Minor > min.Minor
	}
	return v.Patch >= min.Patch
}

// Close cancels in-flight operations, waits up to Options.CloseWaitMax for them to end and
// closes the connection. Later operations fail. Calling Close again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	c := s.conn
	s.mu.Unlock()

	s.cancel()
	waited := make(chan struct{})
	go func() {
		s.ops.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return c.close()
	case <-time.After(s.opts.CloseWaitMax):
		// A call stuck inside the client (it can block forever on a dead client's
		// internal channel) would panic if the client were closed under it; leaving
		// the client to the process exit is the lesser harm.
		s.log.Warn("eventstore: operations still running at close; leaving the client open",
			zap.Duration("waited", s.opts.CloseWaitMax))
		return nil
	}
}

// begin registers an operation: it fails after Close, and returns the context the
// operation runs under (ended by the caller's ctx or by Close) and the func that ends it.
func (s *Store) begin(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, errClosed
	}
	s.ops.Add(1)
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		s.ops.Done()
	}, nil
}

// current returns the conn in use.
func (s *Store) current() conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// renew replaces old, which has shut itself down, with a new conn, unless another
// operation already did. It returns the conn to use next.
//
// The old client is not closed: its internal goroutine has already ended, and closing it
// could make a call still inside it send on a closed channel and panic.
func (s *Store) renew(old conn) conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.conn != old {
		return s.conn
	}
	c, err := s.dial()
	if err != nil {
		s.log.Error("eventstore: cannot replace the closed client", zap.Error(err))
		return s.conn
	}
	s.log.Warn("eventstore: the client closed itself after a failed node discovery; replaced it")
	s.conn = c
	return c
}

// call runs op on the current conn and, when that conn turns out to have shut itself
// down, once more on a fresh one: a shut-down client fails before sending anything, so
// the second attempt can never duplicate the first. op must only start the request
// (results that stream in are read after call returns).
func (s *Store) call(op func(conn) error) error {
	c := s.current()
	err := op(c)
	if clientGone(err) {
		if fresh := s.renew(c); fresh != c {
			err = op(fresh)
		}
	}
	return err
}

// Head returns the position of the last account event in $all, 0 when there is none. It
// is the last *account* event, not the last event of $all, because ReadAll and Subscribe
// deliver only account events: a caller catching up "until Head" must be able to reach
// it. It reads $all backwards and skips the few system events EventStoreDB writes, so it
// is cheap as long as the database serves the ledger alone.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	return s.head(ctx)
}

func (s *Store) head(ctx context.Context) (uint64, error) {
	var r eventReader
	err := s.call(func(c conn) error {
		var err error
		r, err = c.readAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, readCountMax)
		return err
	})
	if err != nil {
		return 0, mapError(ctx, "head of $all", err)
	}
	defer r.Close()
	for {
		ev, err := r.Recv()
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		if err != nil {
			return 0, mapError(ctx, "head of $all", err)
		}
		if ev == nil || !isAccountEvent(ev.Event) {
			continue
		}
		pos, ok := positionOf(ev.Event.Position)
		if !ok {
			return 0, fmt.Errorf("head of $all: event %s of %s has no position", ev.Event.EventID, ev.Event.StreamID)
		}
		return pos, nil
	}
}
