package writer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// Options tune a Writer.
type Options struct {
	// Now reads the clock. Default time.Now.
	Now func() time.Time
	// ConflictRetriesMax is how often a command is decided again after losing a race for
	// the stream version. Default 10.
	ConflictRetriesMax int
	// UsageCacheEntriesMax bounds the in-memory cache of charged usage ids. Default 1<<20.
	UsageCacheEntriesMax int
	// UsageFilterBits sizes the Bloom filter that spares the usage index a lookup for
	// usages never charged (see usageFilter): 4 bits per usage key, about 0.04% false
	// positives at 10 million usages, 8% at 50 million. Default 1<<28 (32 MiB);
	// negative disables it.
	UsageFilterBits int
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ConflictRetriesMax <= 0 {
		o.ConflictRetriesMax = 10
	}
	if o.UsageCacheEntriesMax <= 0 {
		o.UsageCacheEntriesMax = 1 << 20
	}
	if o.UsageFilterBits == 0 {
		o.UsageFilterBits = 1 << 28
	}
	return o
}

// Writer is the command side. Create it with New, call Load once, then use it from any
// number of goroutines.
type Writer struct {
	store events.Store
	index *intake.DB
	log   *zap.Logger
	opts  Options
	cache *usageCache
	// indexer writes the usage index off the hot path.
	indexer *indexer
	// filter knows which usages were certainly never charged; nil when disabled.
	filter *usageFilter

	mu       sync.RWMutex
	accounts map[string]*account
	// onAppend observers see every event this writer appended, after it is durable.
	onAppend []func([]events.Envelope)
}

// account is one account's state and the lock that serialises its commands.
type account struct {
	mu    sync.Mutex
	state *ledger.Account
	// view is what readers (call authorization) see without taking mu.
	view atomic.Pointer[View]
}

// View is the part of an account that call authorization and dashboards read on the hot
// path; it is replaced as a whole after every change.
type View struct {
	Opened              bool
	Currency            string
	Balance             decimal.Decimal
	LowBalanceThreshold decimal.Decimal
	Version             uint64
}

// New returns a Writer over store and index.
func New(store events.Store, index *intake.DB, log *zap.Logger, opts Options) *Writer {
	opts = opts.withDefaults()
	return &Writer{
		store: store, index: index, log: log, opts: opts,
		cache:    newUsageCache(opts.UsageCacheEntriesMax),
		indexer:  newIndexer(index, log, indexPendingMax),
		filter:   newUsageFilter(opts.UsageFilterBits),
		accounts: make(map[string]*account),
	}
}

// indexPendingMax bounds the charged usages waiting for the usage index (about 250 bytes
// each in memory): two full index transactions.
const indexPendingMax = 2 * indexRowsPerTxMax

// SyncIndex waits until every usage charged so far is in the durable usage index (it is
// written behind the hot path; see indexer). A graceful shutdown calls it so that the
// next start has nothing to re-index; tests call it before looking at the index.
func (w *Writer) SyncIndex(ctx context.Context) error { return w.indexer.sync(ctx) }

// lookupUsages returns the charged usages among keys: from the usages waiting for the
// index, else from the durable index.
func (w *Writer) lookupUsages(ctx context.Context, keys []intake.UsageKey) (map[intake.UsageKey]intake.IndexedUsage, error) {
	found := make(map[intake.UsageKey]intake.IndexedUsage)
	misses := w.indexer.lookup(keys, found)
	if w.filter != nil {
		kept := misses[:0]
		for _, k := range misses {
			if w.filter.mayContain(k) {
				kept = append(kept, k)
			}
		}
		misses = kept
	}
	if len(misses) == 0 {
		return found, nil
	}
	stored, err := w.index.LookupUsages(ctx, misses)
	if err != nil {
		return nil, err
	}
	for k, u := range stored {
		found[k] = u
	}
	return found, nil
}

// OnAppend registers fn to be called with the events this writer appended (after they
// are durable, in stream order per account). fn must be quick and must not call the Writer.
func (w *Writer) OnAppend(fn func([]events.Envelope)) { w.onAppend = append(w.onAppend, fn) }

// indexFlushSize bounds the usage index rows written per transaction while loading.
const indexFlushSize = 2000

// Load rebuilds every account's state from the store and heals the usage index: every
// usage appended after the index's checkpoint (for example just before a crash) is indexed
// again before any new usage is accepted.
func (w *Writer) Load(ctx context.Context) error {
	indexed, err := w.index.Checkpoint(ctx)
	if err != nil {
		return err
	}
	var toIndex []intake.IndexedUsage
	var last uint64
	err = w.store.ReadAll(ctx, 0, func(e events.Envelope) error {
		acc := w.accountFor(e.AccountID, true)
		if e.Version != acc.state.Version+1 {
			return fmt.Errorf("stream %s: event %s has version %d after version %d", e.AccountID, e.ID, e.Version, acc.state.Version)
		}
		ledger.Evolve(acc.state, e)
		last = e.Position
		u, isUsage := e.Data.(events.UsageCharged)
		if isUsage {
			// Every usage of the stream, indexed or not: the filter's promise rests on
			// this read starting at position 0.
			w.filter.add(intake.UsageKey{AccountID: e.AccountID, UsageID: u.UsageID})
		}
		if isUsage && e.Position > indexed {
			toIndex = append(toIndex, indexEntry(e, u))
			if len(toIndex) >= indexFlushSize {
				err := w.index.PutUsages(ctx, toIndex)
				toIndex = toIndex[:0]
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load accounts: %w", err)
	}
	if err := w.index.PutUsages(ctx, toIndex); err != nil {
		return err
	}
	w.mu.RLock()
	for _, acc := range w.accounts {
		acc.publishView()
	}
	n := len(w.accounts)
	w.mu.RUnlock()
	w.log.Info("accounts loaded", zap.Int("accounts", n), zap.Uint64("position", last), zap.Uint64("usage_index_from", indexed))
	if last > indexed {
		return w.index.SetCheckpoint(ctx, last)
	}
	return nil
}

// accountFor returns the account entry, creating an empty one when create is set.
func (w *Writer) accountFor(id string, create bool) *account {
	w.mu.RLock()
	acc := w.accounts[id]
	w.mu.RUnlock()
	if acc != nil || !create {
		return acc
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if acc = w.accounts[id]; acc == nil {
		acc = &account{state: ledger.NewAccount(id)}
		w.accounts[id] = acc
	}
	return acc
}

// forgetIfUnopened drops an entry created for an account that was never opened, so that
// failed opens leave nothing behind.
func (w *Writer) forgetIfUnopened(id string, acc *account) {
	if acc.state.Opened {
		return
	}
	w.mu.Lock()
	if w.accounts[id] == acc {
		delete(w.accounts, id)
	}
	w.mu.Unlock()
}

func (a *account) publishView() {
	s := a.state
	a.view.Store(&View{Opened: s.Opened, Currency: s.Currency, Balance: s.Balance, LowBalanceThreshold: s.LowBalanceThreshold, Version: s.Version})
}

// View returns the current view of an account without waiting for its commands.
func (w *Writer) View(id string) (View, bool) {
	acc := w.accountFor(id, false)
	if acc == nil {
		return View{}, false
	}
	v := acc.view.Load()
	if v == nil || !v.Opened {
		return View{}, false
	}
	return *v, true
}

// Account returns a deep copy of an account's state.
func (w *Writer) Account(id string) (*ledger.Account, bool) {
	acc := w.accountFor(id, false)
	if acc == nil {
		return nil, false
	}
	acc.mu.Lock()
	defer acc.mu.Unlock()
	if !acc.state.Opened {
		return nil, false
	}
	return acc.state.Clone(), true
}

// AccountIDs lists every opened account (for the process managers' start-up scan).
func (w *Writer) AccountIDs() []string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	ids := make([]string, 0, len(w.accounts))
	for id := range w.accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Authorize answers whether a call may connect, from the in-memory state.
func (w *Writer) Authorize(r ledger.AuthorizeRequest) ledger.AuthorizeDecision {
	v, ok := w.View(r.AccountID)
	return ledger.Authorize(r, ok, v.Balance, v.LowBalanceThreshold)
}

// Execute decides cmd on the account and appends the resulting events. It returns the
// appended events: none when the command was an idempotent repeat or had nothing to do.
func (w *Writer) Execute(ctx context.Context, accountID string, cmd ledger.Command) ([]events.Envelope, error) {
	_, opening := cmd.(ledger.OpenAccount)
	acc := w.accountFor(accountID, opening)
	if acc == nil {
		return nil, ledger.Errorf(ledger.ENOTFOUND, "account_not_found", "account %q does not exist", accountID)
	}
	acc.mu.Lock()
	defer acc.mu.Unlock()
	if opening {
		defer w.forgetIfUnopened(accountID, acc)
	}
	for attempt := 0; ; attempt++ {
		if err := w.completeCommand(ctx, accountID, &cmd); err != nil {
			return nil, err
		}
		evs, err := ledger.Decide(acc.state, cmd, w.opts.Now())
		if err != nil || len(evs) == 0 {
			return nil, err
		}
		err = w.store.Append(ctx, evs)[0]
		if err == nil {
			w.applyAppended(acc, evs)
			return evs, nil
		}
		if !errors.Is(err, events.ErrConflict) || attempt >= w.opts.ConflictRetriesMax {
			return nil, fmt.Errorf("append to %s: %w", accountID, err)
		}
		if err := w.reload(ctx, acc); err != nil {
			return nil, err
		}
	}
}

// completeCommand adds what a command needs from outside the account state: the charged
// amount of the usage an adjustment refers to.
func (w *Writer) completeCommand(ctx context.Context, accountID string, cmd *ledger.Command) error {
	adj, ok := (*cmd).(ledger.ApplyAdjustment)
	if !ok || adj.Adjustment.UsageID == "" {
		return nil
	}
	key := intake.UsageKey{AccountID: accountID, UsageID: adj.Adjustment.UsageID}
	found, err := w.lookupUsages(ctx, []intake.UsageKey{key})
	if err != nil {
		return err
	}
	adj.UsageAmount = nil
	if u, ok := found[key]; ok {
		amount := u.Amount
		adj.UsageAmount = &amount
	}
	*cmd = adj
	return nil
}

// applyAppended moves the in-memory state past durable events, indexes their usages and
// tells the observers. The caller holds acc.mu.
func (w *Writer) applyAppended(acc *account, evs []events.Envelope) {
	w.indexUsages(w.applyDurable(acc, evs, nil))
}

// applyDurable moves the in-memory state past durable events and tells the observers. It
// appends the usages among evs to usages and returns it: the caller indexes them, so that
// a batch over many accounts writes the usage index in one transaction, not one per
// account. The caller holds acc.mu.
func (w *Writer) applyDurable(acc *account, evs []events.Envelope, usages []intake.IndexedUsage) []intake.IndexedUsage {
	for _, e := range evs {
		ledger.Evolve(acc.state, e)
		if u, ok := e.Data.(events.UsageCharged); ok {
			usages = append(usages, indexEntry(e, u))
		}
	}
	acc.publishView()
	for _, fn := range w.onAppend {
		fn(evs)
	}
	return usages
}

// indexUsages records charged usages in the cache and hands them to the indexer, which
// writes the durable index behind the hot path (and retries a failed write; the events
// are durable either way, and Load re-indexes them from the stream after a restart).
func (w *Writer) indexUsages(usages []intake.IndexedUsage) {
	for _, u := range usages {
		w.filter.add(u.UsageKey)
		w.cache.put(u.UsageKey, u.ContentHash)
	}
	w.indexer.add(usages)
}

// reload reads the events another writer appended to the account since our version.
// The caller holds acc.mu.
func (w *Writer) reload(ctx context.Context, acc *account) error {
	evs, err := w.store.ReadStream(ctx, acc.state.ID, acc.state.Version)
	if err != nil {
		return fmt.Errorf("reload %s: %w", acc.state.ID, err)
	}
	var usages []intake.IndexedUsage
	for _, e := range evs {
		ledger.Evolve(acc.state, e)
		if u, ok := e.Data.(events.UsageCharged); ok {
			usages = append(usages, indexEntry(e, u))
		}
	}
	acc.publishView()
	w.indexUsages(usages)
	return nil
}

func indexEntry(e events.Envelope, u events.UsageCharged) intake.IndexedUsage {
	return intake.IndexedUsage{
		UsageKey:    intake.UsageKey{AccountID: e.AccountID, UsageID: u.UsageID},
		ContentHash: u.ContentHash, Amount: u.Amount, Position: e.Position,
	}
}
