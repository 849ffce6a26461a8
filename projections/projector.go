package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/telephony/creditledger/events"
	"go.uber.org/zap"
)

// Defaults of ProjectorOptions.
const (
	batchSizeMaxDefault  = 10_000
	flushDelayDefault    = 2 * time.Millisecond
	busyLingerMaxDefault = 250 * time.Millisecond
	retryDelayMaxDefault = 5 * time.Second
	// busyBatchMin is how many events make a batch busy (see BusyLingerMax): a burst, not
	// a lone write, whose batch may wait a little longer for the events that follow it.
	busyBatchMin = 256
	// retryDelayBase is the first pause after a failed batch; it doubles up to RetryDelayMax.
	retryDelayBase = 100 * time.Millisecond
	// shutdownFlushTimeout bounds applying the events gathered when Run is told to stop.
	shutdownFlushTimeout = 5 * time.Second
)

// ProjectorOptions tune a Projector. Zero fields take their defaults.
type ProjectorOptions struct {
	// BatchSizeMax is the most events applied in one transaction. Default 10,000: a
	// transaction writes each account row and movements index page it touches once, so
	// larger batches cost less per event (BenchmarkApplyBatchSizes, 10,000 accounts: 1.2 to
	// 1.7 times fewer CPU seconds per event at 10,000 than at 1,000), and the write lock
	// is still held for well under a second.
	BatchSizeMax int
	// FlushDelay is how long the Projector waits for another event before applying a batch
	// that is not full and not busy. Default 2ms: a lone event waits no longer.
	FlushDelay time.Duration
	// BusyLingerMax is how long a busy batch (busyBatchMin events or more) keeps gathering,
	// from its first event, while it is not full. Under load the ledger appends in rounds,
	// with quiet gaps longer than FlushDelay between them, so without it every batch would
	// be one round of about a thousand events. Default 250ms: the read models trail a busy
	// store by at most that plus one batch's write. A WaitFor (read-your-writes after an
	// HTTP command, /readyz) cuts the lingering short.
	BusyLingerMax time.Duration
	// RetryDelayMax caps the pause between attempts after a failure (the store or the
	// database). Default 5s.
	RetryDelayMax time.Duration
}

func (o ProjectorOptions) withDefaults() ProjectorOptions {
	if o.BatchSizeMax <= 0 {
		o.BatchSizeMax = batchSizeMaxDefault
	}
	if o.FlushDelay <= 0 {
		o.FlushDelay = flushDelayDefault
	}
	if o.BusyLingerMax <= 0 {
		o.BusyLingerMax = busyLingerMaxDefault
	}
	if o.RetryDelayMax <= 0 {
		o.RetryDelayMax = retryDelayMaxDefault
	}
	return o
}

// Projector keeps a DB up to date with the event store: it subscribes from the DB's
// checkpoint, gathers events into batches and applies each in one transaction. It is the
// only writer of its DB.
type Projector struct {
	db    *DB
	store events.Store
	log   *zap.Logger
	opts  ProjectorOptions

	mu sync.Mutex
	// applied is the checkpoint of the last committed batch.
	applied uint64
	// advanced is closed (and replaced) whenever applied moves, to wake WaitFor.
	advanced chan struct{}
	// hurry tells a lingering batch that someone waits for it (see BusyLingerMax).
	hurry chan struct{}
}

// NewProjector returns a Projector that feeds db from store. A nil logger logs nothing.
func NewProjector(db *DB, store events.Store, logger *zap.Logger, opts ProjectorOptions) *Projector {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Projector{db: db, store: store, log: logger, opts: opts.withDefaults(),
		advanced: make(chan struct{}), hurry: make(chan struct{}, 1)}
}

// Run projects until ctx ends, then returns nil. A failure (store unreachable, database
// busy, a batch that cannot be applied) is logged and retried from the stored checkpoint
// after a pause that doubles up to RetryDelayMax, so Run never applies an event twice nor
// skips one; while it retries, the lag shows it.
func (p *Projector) Run(ctx context.Context) error {
	delay := retryDelayBase
	for {
		progressed, err := p.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errCheckpointMoved) {
			p.log.Info("read models were replaced; resuming from their checkpoint", zap.Error(err))
			continue
		}
		if progressed {
			delay = retryDelayBase
		}
		p.log.Warn("projection failed; retrying", zap.Error(err), zap.Duration("retry_in", delay))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, p.opts.RetryDelayMax)
	}
}

// follow subscribes from the stored checkpoint and applies batches until something fails.
// progressed tells whether at least one batch was applied.
func (p *Projector) follow(ctx context.Context) (progressed bool, err error) {
	cp, err := p.db.Checkpoint(ctx)
	if err != nil {
		return false, err
	}
	p.advance(cp)
	subCtx, cancel := context.WithCancel(ctx)
	// The buffer lets the subscription read ahead while a batch is being written.
	feed := make(chan events.Envelope, 2*p.opts.BatchSizeMax)
	sub := &subscription{ended: make(chan struct{})}
	go func() {
		defer close(sub.ended)
		sub.err = p.store.Subscribe(subCtx, cp, func(e events.Envelope) error {
			select {
			case feed <- e:
				return nil
			case <-subCtx.Done():
				return subCtx.Err()
			}
		})
	}()
	defer func() {
		cancel()
		<-sub.ended
	}()
	batch := make([]events.Envelope, 0, p.opts.BatchSizeMax)
	for {
		batch, err = p.gather(ctx, feed, sub, batch[:0])
		if len(batch) > 0 {
			applyCtx := ctx
			if ctx.Err() != nil {
				// Stopping: finish the gathered events so a clean shutdown leaves nothing
				// to re-read, but bounded, and no loss if it fails (they are re-read).
				var stop context.CancelFunc
				applyCtx, stop = context.WithTimeout(context.WithoutCancel(ctx), shutdownFlushTimeout)
				defer stop()
			}
			next, aerr := p.db.apply(applyCtx, batch, &cp)
			if aerr != nil {
				return progressed, aerr
			}
			cp = next
			p.advance(cp)
			progressed = true
		}
		if err != nil {
			return progressed, err
		}
	}
}

// gather collects up to BatchSizeMax events: it waits for a first one, then takes whatever
// follows until the feed stays quiet for FlushDelay or, once the batch is busy, until it is
// BusyLingerMax old or someone waits for the read models. It returns what it has with an
// error when the subscription ends or ctx is done.
func (p *Projector) gather(ctx context.Context, feed <-chan events.Envelope, sub *subscription, batch []events.Envelope) ([]events.Envelope, error) {
	select {
	case e := <-feed:
		batch = append(batch, e)
	case <-sub.ended:
		return batch, sub.failure()
	case <-ctx.Done():
		return batch, ctx.Err()
	}
	first := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for len(batch) < p.opts.BatchSizeMax {
		select {
		case e := <-feed:
			batch = append(batch, e)
			continue
		default:
		}
		wait := p.opts.FlushDelay
		if len(batch) >= busyBatchMin {
			if wait = p.opts.BusyLingerMax - time.Since(first); wait <= 0 {
				return batch, nil
			}
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case e := <-feed:
			batch = append(batch, e)
		case <-timer.C:
			return batch, nil
		case <-p.hurry:
			return batch, nil
		case <-sub.ended:
			return batch, sub.failure()
		case <-ctx.Done():
			return batch, ctx.Err()
		}
	}
	return batch, nil
}

// subscription is the store subscription feeding a follow: ended is closed when Subscribe
// returned, with err.
type subscription struct {
	ended chan struct{}
	err   error // written before ended is closed
}

// failure is the error of an ended subscription: Subscribe only ends when it fails (or is
// cancelled), so even a nil error means the feed stopped.
func (s *subscription) failure() error {
	if s.err == nil {
		return errors.New("store subscription ended without error")
	}
	return fmt.Errorf("store subscription: %w", s.err)
}

// advance records a committed checkpoint and wakes the waiters.
func (p *Projector) advance(cp uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cp == p.applied {
		return
	}
	p.applied = cp
	close(p.advanced)
	p.advanced = make(chan struct{})
}

// Position is the store Position up to which the read models are applied (0 before Run
// read the checkpoint).
func (p *Projector) Position() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied
}

// WaitFor returns once the read models have applied every event up to position, or with
// ctx's error. /readyz uses it with the store's Head and a 5 s timeout; tests use it to wait
// for the events they appended (events.Envelope.Position after Append). While it waits, a
// busy batch stops lingering (see BusyLingerMax).
func (p *Projector) WaitFor(ctx context.Context, position uint64) error {
	for {
		p.mu.Lock()
		applied, advanced := p.applied, p.advanced
		p.mu.Unlock()
		if applied >= position {
			return nil
		}
		select {
		case p.hurry <- struct{}{}:
		default: // a hurry is already pending
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return fmt.Errorf("projections at %d, waiting for %d: %w", applied, position, ctx.Err())
		}
	}
}

// Lag is how many store positions the read models are behind the store's head (for
// JetStream, a count of events), for metrics.
func (p *Projector) Lag(ctx context.Context) (uint64, error) {
	head, err := p.store.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("projection lag: %w", err)
	}
	if applied := p.Position(); applied < head {
		return head - applied, nil
	}
	return 0, nil
}

// CaughtUp reports whether the read models reach the store's current head within wait:
// the /readyz check "projections caught up within 5 s".
func (p *Projector) CaughtUp(ctx context.Context, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	head, err := p.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("store head: %w", err)
	}
	return p.WaitFor(ctx, head)
}
