package topup

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events"
)

// Options tune a Manager. Zero values are the defaults stated per field.
type Options struct {
	// MaxAttempts is how many payment attempts a top-up gets before it fails. Default 3.
	MaxAttempts int
	// RetryDelayBase is the delay before the 2nd attempt; it doubles for each further
	// attempt. Default 1m.
	RetryDelayBase time.Duration
	// AutoTopUpDailyMax is the most auto top-ups one account may start in any 24 h.
	// Default 10.
	AutoTopUpDailyMax int
	// WorkersMax is how many accounts are worked on (and paid for) at once. One account
	// never has more than one payment in flight. Default 8.
	WorkersMax int
	// ErrorRetryDelay is how long an account waits before its work is tried again after a
	// store failure. Default 1s.
	ErrorRetryDelay time.Duration
	// OrphanAfter is how long a pending top-up that another process requested may sit past
	// its due attempt before this manager takes over its payment: its owner must have
	// died, and the shared top_up_id keeps the takeover from charging twice. Default 10m.
	OrphanAfter time.Duration
	// Now reads the clock; give the writer the same one. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.RetryDelayBase <= 0 {
		o.RetryDelayBase = time.Minute
	}
	if o.AutoTopUpDailyMax <= 0 {
		o.AutoTopUpDailyMax = 10
	}
	if o.WorkersMax <= 0 {
		o.WorkersMax = 8
	}
	if o.ErrorRetryDelay <= 0 {
		o.ErrorRetryDelay = time.Second
	}
	if o.OrphanAfter <= 0 {
		o.OrphanAfter = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Stats are the manager's running counters, for /metrics.
type Stats struct {
	// Requested, Succeeded and Failed count top-ups by state as they appear in the store
	// since Run began, whichever writer appended them. AttemptsFailed counts failed
	// payment attempts that were scheduled for a retry.
	Requested, Succeeded, Failed, AttemptsFailed atomic.Uint64
	// Paying is how many pending top-ups this manager is paying now.
	Paying atomic.Int64
	// AutoTopUpsStarted counts the auto top-ups this manager's writer appended; when two
	// processes decide the same one at once, both count it.
	AutoTopUpsStarted atomic.Uint64
	// Position is the store position the manager has followed up to (for lag metrics).
	Position atomic.Uint64
	// Charges counts gateway calls; InFlight is how many are under way now; Abandoned
	// counts those cut off by shutdown (they are attempted again after the restart).
	Charges, Abandoned atomic.Uint64
	InFlight           atomic.Int64
}

// Manager is the top-up process manager. Create it with NewManager, then call Run once.
//
// It learns of events from two sources, each for what only it can tell:
//   - the store subscription (from the store head taken before the start-up scan) sees
//     every event of every writer, in store order, so an auto top-up is considered
//     after any event that may make it due, including those of other processes, and the
//     manager notices when its writer's state is behind the store;
//   - the writer's OnAppend hook says which top-ups this process requested. Only those
//     are paid here (and those found pending at start-up, or left orphaned): with two
//     processes on one store, both see every TopUpRequested, and paying only one's own
//     keeps one payment in flight per account without any lock between them. Two
//     writers that decide the same auto top-up at once both see their append succeed
//     (same event id: the store takes the second as a retry of the first), so before
//     its first payment a claim is checked against the store: the process whose
//     envelope (to the nanosecond of its RecordedAt) is the one stored pays.
//
// The start-up scan reads the writer's state, so what another process appended between
// this writer's Load and Run is looked at here only at the account's next event or the
// next restart; that process's own manager handles it meanwhile. The scan adopts every
// pending top-up: it assumes a restart of the process that was paying it. If another live process is paying one at that moment, both may
// call the gateway for it; the shared top_up_id (the idempotency key) still charges once
// and the outcome is recorded once.
type Manager struct {
	writer  *writer.Writer
	store   events.Store
	gateway Gateway
	log     *zap.Logger
	opts    Options
	// Stats are the running counters.
	Stats Stats

	mu       sync.Mutex
	accounts map[string]*work
	queue    []string
	timerSeq uint64
	stopped  bool
	// wake tells an idle worker that the queue is not empty.
	wake chan struct{}
	// scanned is closed once Run has scanned the accounts, so that a caller (a test with
	// two live managers) can tell start-up adoption apart from what follows.
	scanned chan struct{}
}

// NewManager returns a manager that pays top-ups through gw and records the outcomes
// through w. It registers a hook on w, so call it before w is used concurrently; w must
// have been loaded before Run.
func NewManager(w *writer.Writer, store events.Store, gw Gateway, log *zap.Logger, opts Options) *Manager {
	m := &Manager{
		writer: w, store: store, gateway: gw, log: log, opts: opts.withDefaults(),
		accounts: make(map[string]*work),
		wake:     make(chan struct{}, 1),
		scanned:  make(chan struct{}),
	}
	w.OnAppend(m.onAppend)
	return m
}

// Run scans every account (a pending top-up is resumed when its attempt is due, an auto
// top-up that is due is started), then follows the store until ctx ends. A payment under
// way when ctx ends is abandoned: it is attempted again after a restart with the same
// top_up_id, so the gateway does not charge twice. Run returns nil after ctx ends, or an
// error if it could not start.
func (m *Manager) Run(ctx context.Context) error {
	head, err := m.store.Head(ctx)
	if err != nil {
		return err
	}
	m.Stats.Position.Store(head)
	adopted := m.scan()
	close(m.scanned)
	m.log.Info("top-up manager started", zap.Uint64("position", head), zap.Int("pending_adopted", adopted))
	var wg sync.WaitGroup
	for range m.opts.WorkersMax {
		wg.Go(func() { m.runWorker(ctx) })
	}
	wg.Go(func() { m.follow(ctx, head) })
	wg.Wait()
	m.stopTimers()
	m.log.Info("top-up manager stopped")
	return nil
}

// scan queues every account for a look and adopts every pending top-up: after a restart
// nobody else is paying them.
func (m *Manager) scan() int {
	adopted := 0
	for _, id := range m.writer.AccountIDs() {
		acc, ok := m.writer.Account(id)
		m.mu.Lock()
		if ok && acc.Pending != nil {
			m.ownLocked(id, acc.Pending.ID, claim{verified: true})
			adopted++
		}
		m.enqueueLocked(id)
		m.mu.Unlock()
	}
	return adopted
}

// follow delivers every event appended after position after to observe, resubscribing
// after a failure, until ctx ends.
func (m *Manager) follow(ctx context.Context, after uint64) {
	for {
		err := m.store.Subscribe(ctx, after, func(e events.Envelope) error {
			m.observe(e)
			after = e.Position
			m.Stats.Position.Store(after)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		m.log.Error("top-up manager: store subscription ended; subscribing again",
			zap.Error(err), zap.Uint64("after", after), zap.Duration("delay", m.opts.ErrorRetryDelay))
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.opts.ErrorRetryDelay):
		}
	}
}

// observe takes one event from the store: it counts top-ups, notes how far the store is,
// and queues the account when the event may call for an auto top-up or a payment.
func (m *Manager) observe(e events.Envelope) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.workLocked(e.AccountID)
	w.seenVersion = max(w.seenVersion, e.Version)
	switch d := e.Data.(type) {
	case events.AccountOpened, events.AlertSettingsChanged:
		m.forgetIfIdleLocked(e.AccountID) // neither can make an auto top-up due
		return
	case events.TopUpRequested:
		m.Stats.Requested.Add(1)
	case events.TopUpAttemptFailed:
		m.Stats.AttemptsFailed.Add(1)
	case events.TopUpSucceeded:
		m.Stats.Succeeded.Add(1)
		m.disownLocked(e.AccountID, d.TopUpID)
	case events.TopUpFailed:
		m.Stats.Failed.Add(1)
		m.disownLocked(e.AccountID, d.TopUpID)
	}
	m.enqueueLocked(e.AccountID)
}

// onAppend is the writer's hook: it runs under the account's lock in the writer, so by
// the time a worker reads a pending top-up from the writer, its ownership is recorded.
func (m *Manager) onAppend(evs []events.Envelope) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range evs {
		switch d := e.Data.(type) {
		case events.TopUpRequested:
			m.ownLocked(e.AccountID, d.TopUpID, claim{version: e.Version, recordedAt: e.RecordedAt})
			m.enqueueLocked(e.AccountID)
		case events.TopUpSucceeded:
			m.disownLocked(e.AccountID, d.TopUpID)
		case events.TopUpFailed:
			m.disownLocked(e.AccountID, d.TopUpID)
		}
	}
}
