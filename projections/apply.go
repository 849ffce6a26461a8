package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// Statements of the write path, prepared once on the writer connection so that a batch only
// binds and steps them.
const (
	stmtLoadAccount = iota
	stmtUpsertAccount
	stmtUpdateBalance
	stmtInsertMovement
	stmtInsertMovements
	stmtLoadTopUp
	stmtUpsertTopUp
	stmtSetCheckpoint
	stmtCount
)

// writeStmts holds the prepared statements, indexed by the stmt constants.
type writeStmts [stmtCount]*sql.Stmt

// movementRowsPerInsert is how many movements one INSERT writes: binding them into one
// statement saves the per-statement cost of database/sql and the driver (about a third of
// an insert's time in the profile).
const movementRowsPerInsert = 32

const (
	accountColumns = `account_id, currency, balance, low_balance_threshold, alert, alert_since,
		auto_enabled, auto_threshold, auto_amount, auto_suspended, auto_last_failure,
		pending_top_up_id, pending_kind, version, updated_at`
	movementColumns = `account_id, version, event_id, occurred_at, recorded_at, type, cause, user_id,
		reference, description, amount, units, balance_after, currency`
	movementColumnCount = 14
	topUpColumns        = `account_id, top_up_id, kind, amount, state, attempts, failure_reason,
		requested_at, completed_at, version`
)

// writeSQL is the text of each statement.
var writeSQL = [stmtCount]string{
	stmtLoadAccount: `SELECT ` + accountColumns + ` FROM accounts WHERE account_id = ?`,
	stmtUpsertAccount: `INSERT INTO accounts (` + accountColumns + `) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (account_id) DO UPDATE SET currency = excluded.currency, balance = excluded.balance,
		low_balance_threshold = excluded.low_balance_threshold, alert = excluded.alert,
		alert_since = excluded.alert_since, auto_enabled = excluded.auto_enabled,
		auto_threshold = excluded.auto_threshold, auto_amount = excluded.auto_amount,
		auto_suspended = excluded.auto_suspended, auto_last_failure = excluded.auto_last_failure,
		pending_top_up_id = excluded.pending_top_up_id, pending_kind = excluded.pending_kind,
		version = excluded.version, updated_at = excluded.updated_at`,
	// Most batches only move balances (usage, adjustments); binding 6 values instead of 15
	// is measurably cheaper.
	stmtUpdateBalance: `UPDATE accounts SET balance = ?, alert = ?, alert_since = ?, version = ?, updated_at = ?
		WHERE account_id = ?`,
	// OR FAIL: a statement that writes two B-trees (the table and its index) may fail half
	// way, and by default SQLite copies every page it changes into a statement journal
	// first, to undo just that statement: 5% of BenchmarkApply's CPU, in memcpy. FAIL keeps
	// the error (a movement written twice still fails) without undoing the statement's
	// earlier rows, which no caller needs: a failed insert fails the batch, and apply,
	// bulkApply and swapIn then roll back (or, in a build, throw away) the whole
	// transaction. Measured: BenchmarkApply 49,900 -> 53,400 events per CPU-second (8
	// interleaved runs each).
	stmtInsertMovement:  `INSERT OR FAIL INTO movements (` + movementColumns + `) VALUES ` + placeholders(movementColumnCount, 1),
	stmtInsertMovements: `INSERT OR FAIL INTO movements (` + movementColumns + `) VALUES ` + placeholders(movementColumnCount, movementRowsPerInsert),
	stmtLoadTopUp:       `SELECT ` + topUpColumns + ` FROM top_ups WHERE account_id = ? AND top_up_id = ?`,
	stmtUpsertTopUp:     `INSERT OR REPLACE INTO top_ups (` + topUpColumns + `) VALUES (?,?,?,?,?,?,?,?,?,?)`,
	stmtSetCheckpoint:   `UPDATE checkpoint SET position = ? WHERE id = 1`,
}

// placeholders is "(?,…,?)" with columns marks, rows times, comma-separated.
func placeholders(columns, rows int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", columns), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(row+",", rows), ",")
}

func prepareWrites(w *sql.DB) (*writeStmts, error) {
	var s writeStmts
	for i, q := range writeSQL {
		st, err := w.Prepare(q)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		s[i] = st
	}
	return &s, nil
}

func (s *writeStmts) close() error {
	var errs []error
	for _, st := range s {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// errCheckpointMoved means the stored checkpoint is not the one the caller expected: another
// writer (a Rebuild swapping in fresh read models) moved it. The Projector then resumes from
// the stored checkpoint instead of applying events the read model may not follow on from.
var errCheckpointMoved = errors.New("read-model checkpoint moved by another writer")

// Apply applies a batch of events, in store order (Position increasing), in one transaction
// that also advances the checkpoint to the last Position. Events at or below the stored
// checkpoint, or at or below their account's version, are skipped, so re-applying a batch
// after a crash changes nothing. An event that does not follow on from its account's version
// (a gap in the stream) fails the whole batch: the read model never shows a balance it cannot
// account for.
func (db *DB) Apply(ctx context.Context, evs []events.Envelope) error {
	if len(evs) == 0 {
		return nil
	}
	_, err := db.apply(ctx, evs, nil)
	return err
}

// apply is Apply that, when expect is not nil, first checks that the stored checkpoint is
// *expect and fails with errCheckpointMoved otherwise. It returns the checkpoint after the
// batch.
func (db *DB) apply(ctx context.Context, evs []events.Envelope, expect *uint64) (cp uint64, err error) {
	if db.w == nil {
		return 0, errReadOnly
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("apply: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if cp, err = readCheckpoint(ctx, tx); err != nil {
		return 0, err
	}
	if expect != nil && cp != *expect {
		return 0, fmt.Errorf("%w: stored %d, expected %d", errCheckpointMoved, cp, *expect)
	}
	b, last, err := db.applyTx(ctx, tx, cp, evs)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("apply: commit: %w", err)
	}
	db.cache.keep(b.order, last)
	return last, nil
}

// applyTx applies evs inside tx on top of checkpoint cp and stores the new checkpoint, which
// it returns with the batch. The caller holds writeMu.
func (db *DB) applyTx(ctx context.Context, tx *sql.Tx, cp uint64, evs []events.Envelope) (*batch, uint64, error) {
	b := newBatch(ctx, tx, db.stmts, db.cache.valid(cp))
	defer b.close()
	last, err := b.applyAll(cp, evs)
	if err != nil {
		return nil, 0, err
	}
	if err := b.finish(cp, last); err != nil {
		return nil, 0, err
	}
	return b, last, nil
}

// applyAll applies evs on top of position last (the events at or below it are skipped) and
// returns the position of the last one applied.
func (b *batch) applyAll(last uint64, evs []events.Envelope) (uint64, error) {
	for _, e := range evs {
		if e.Position == 0 {
			return 0, fmt.Errorf("apply %s v%d: event has no store position", e.AccountID, e.Version)
		}
		if e.Position <= last {
			continue // already covered by the checkpoint (or out of order, which the store never does)
		}
		if err := b.apply(e); err != nil {
			return 0, fmt.Errorf("apply %s v%d (%s): %w", e.AccountID, e.Version, e.Type(), err)
		}
		last = e.Position
	}
	return last, nil
}

// finish writes what the batch holds and, when it applied anything (last is past the
// checkpoint cp it started from), the new checkpoint, in the batch's transaction.
func (b *batch) finish(cp, last uint64) error {
	if err := b.flush(); err != nil {
		return err
	}
	if last == cp {
		return nil
	}
	if _, err := b.st[stmtSetCheckpoint].ExecContext(b.ctx, int64(last)); err != nil {
		return fmt.Errorf("store checkpoint %d: %w", last, err)
	}
	return nil
}

// accountCacheMax bounds the accounts kept in memory between batches (a few hundred bytes
// each, so tens of MiB at most): far more than are active at once, and a rebuild over
// millions of accounts does not grow memory without end.
const accountCacheMax = 100_000

// accountCache keeps the committed state of recently touched accounts between batches, so
// that a batch reads from the table only the accounts it has not seen lately. It is valid
// only for the checkpoint it was stamped with: any other writer (a Rebuild swapping the file
// contents) moves the checkpoint, and the cache is then dropped.
type accountCache struct {
	stamp    uint64
	accounts map[string]*accountState
}

// valid returns the cached accounts if they reflect checkpoint cp, else drops them.
func (c *accountCache) valid(cp uint64) map[string]*accountState {
	if c.accounts == nil || c.stamp != cp {
		c.accounts = make(map[string]*accountState)
		c.stamp = cp
	}
	return c.accounts
}

// keep records the committed states of a batch as of checkpoint cp.
func (c *accountCache) keep(states []*accountState, cp uint64) {
	c.valid(c.stamp) // make sure the map exists
	for _, a := range states {
		if len(c.accounts) >= accountCacheMax {
			// Forget an arbitrary tenth; map order is random enough for a cache whose
			// misses cost one indexed read.
			n := accountCacheMax / 10
			for id := range c.accounts {
				delete(c.accounts, id)
				if n--; n == 0 {
					break
				}
			}
		}
		c.accounts[a.ID] = a
	}
	c.stamp = cp
}

// drop forgets everything, after a write that did not go through apply.
func (c *accountCache) drop() { c.accounts = nil }

// batch is the in-memory state of one transaction: every account and top-up it touches is
// read once, evolved in memory and written once at the end, so a batch of 1,000 charges to
// one account costs one account write, not 1,000.
type batch struct {
	ctx context.Context
	st  writeStmts // the prepared statements bound to the transaction
	// accounts are the states touched by this batch; order keeps them in first-touch order.
	accounts map[string]*accountState
	order    []*accountState
	// cached are the committed states of earlier batches; read-only here, copied on use.
	cached map[string]*accountState
	topUps map[topUpKey]*TopUp
	// dirtyTopUps keeps the touched top-ups in first-touch order for a deterministic write.
	dirtyTopUps []*TopUp
	// movementArgs gathers up to movementRowsPerInsert movements for one INSERT.
	movementArgs []any
}

type topUpKey struct{ accountID, topUpID string }

// accountState is ledger.Account (so balances and settings evolve by the domain's own rules)
// plus what only the read model keeps.
type accountState struct {
	ledger.Account
	alert      string
	alertSince time.Time
	// dirty is set once an event changed the state, so a re-delivered batch writes nothing.
	dirty bool
	// wide is set when more than the balance changed (or the row is new), so the whole row
	// must be written.
	wide bool
}

func newBatch(ctx context.Context, tx *sql.Tx, s *writeStmts, cached map[string]*accountState) *batch {
	b := &batch{
		ctx:          ctx,
		cached:       cached,
		accounts:     make(map[string]*accountState),
		topUps:       make(map[topUpKey]*TopUp),
		movementArgs: make([]any, 0, movementColumnCount*movementRowsPerInsert),
	}
	for i, st := range s {
		b.st[i] = tx.StmtContext(ctx, st)
	}
	return b
}

// close releases the transaction's handles on the prepared statements (not the statements).
func (b *batch) close() {
	for _, st := range b.st {
		st.Close()
	}
}

// apply evolves the account by one event and records its movement and top-up changes.
func (b *batch) apply(e events.Envelope) error {
	a, err := b.account(e.AccountID)
	if err != nil {
		return err
	}
	if e.Version <= a.Version {
		return nil // already applied: a re-delivery after a crash
	}
	if e.Version != a.Version+1 {
		return fmt.Errorf("gap in stream: read model is at version %d", a.Version)
	}
	ledger.Evolve(&a.Account, e)
	a.dirty = true
	switch e.Data.(type) {
	case events.UsageCharged, events.AdjustmentApplied:
	default:
		a.wide = true
	}
	// The read model needs none of the write side's id memories; dropping them keeps a
	// batch's memory flat.
	a.TopUps, a.Adjustments, a.Refunded = nil, nil, nil
	if level := ledger.AlertLevel(a.Balance, a.LowBalanceThreshold); level != a.alert {
		a.alert, a.alertSince = level, e.RecordedAt
	}
	switch d := e.Data.(type) {
	case events.UsageCharged:
		return b.insert(usageMovement(e, d, a.Balance, a.Currency))
	case events.AdjustmentApplied:
		return b.insert(adjustmentMovement(e, d, a.Balance, a.Currency))
	case events.TopUpRequested:
		return b.requestTopUp(e, d)
	case events.TopUpAttemptFailed:
		return b.updateTopUp(e.AccountID, d.TopUpID, func(t *TopUp) {
			t.Attempts, t.FailureReason = d.Attempt, d.Reason
		})
	case events.TopUpSucceeded:
		return b.succeedTopUp(e, d, a)
	case events.TopUpFailed:
		return b.updateTopUp(e.AccountID, d.TopUpID, func(t *TopUp) {
			t.State, t.Attempts, t.FailureReason, t.CompletedAt = TopUpFailed, d.Attempts, d.Reason, timePtr(e.RecordedAt)
		})
	}
	return nil
}

func (b *batch) requestTopUp(e events.Envelope, d events.TopUpRequested) error {
	k := topUpKey{e.AccountID, d.TopUpID}
	if _, ok := b.topUps[k]; !ok {
		if _, found, err := b.readTopUp(k); err != nil {
			return err
		} else if found {
			return fmt.Errorf("top-up %s requested twice", d.TopUpID)
		}
	}
	t := &TopUp{AccountID: e.AccountID, TopUpID: d.TopUpID, Kind: d.Kind, Amount: d.Amount,
		State: TopUpPending, RequestedAt: e.RecordedAt, Version: e.Version}
	b.topUps[k] = t
	b.dirtyTopUps = append(b.dirtyTopUps, t)
	return nil
}

func (b *batch) succeedTopUp(e events.Envelope, d events.TopUpSucceeded, a *accountState) error {
	var kind string
	err := b.updateTopUp(e.AccountID, d.TopUpID, func(t *TopUp) {
		t.State, t.Attempts, t.CompletedAt = TopUpSucceeded, d.Attempt, timePtr(e.RecordedAt)
		kind = t.Kind
	})
	if err != nil {
		return err
	}
	return b.insert(topUpMovement(e, d, kind, a.Balance, a.Currency))
}

// updateTopUp changes a top-up that its TopUpRequested event created earlier in the stream.
func (b *batch) updateTopUp(accountID, topUpID string, change func(*TopUp)) error {
	k := topUpKey{accountID, topUpID}
	t, ok := b.topUps[k]
	if !ok {
		loaded, found, err := b.readTopUp(k)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("top-up %s was never requested", topUpID)
		}
		t = &loaded
		b.topUps[k] = t
		b.dirtyTopUps = append(b.dirtyTopUps, t)
	}
	change(t)
	return nil
}

// copy is a copy that Evolve can change without touching a (Evolve changes a pending
// top-up in place).
func (a *accountState) copy() *accountState {
	c := *a
	if a.Pending != nil {
		p := *a.Pending
		c.Pending = &p
	}
	c.dirty, c.wide = false, false
	return &c
}

// account returns the batch's state of an account, reading it from the table on first touch
// (a new, empty state when the account has no row yet).
func (b *batch) account(id string) (*accountState, error) {
	if a, ok := b.accounts[id]; ok {
		return a, nil
	}
	if c, ok := b.cached[id]; ok {
		a := c.copy()
		b.accounts[id] = a
		b.order = append(b.order, a)
		return a, nil
	}
	a, err := scanAccountState(b.st[stmtLoadAccount].QueryRowContext(b.ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		a, err = &accountState{Account: ledger.Account{ID: id}, wide: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load account %s: %w", id, err)
	}
	b.accounts[id] = a
	b.order = append(b.order, a)
	return a, nil
}

func (b *batch) readTopUp(k topUpKey) (TopUp, bool, error) {
	t, err := scanTopUp(b.st[stmtLoadTopUp].QueryRowContext(b.ctx, k.accountID, k.topUpID))
	if errors.Is(err, sql.ErrNoRows) {
		return TopUp{}, false, nil
	}
	if err != nil {
		return TopUp{}, false, fmt.Errorf("load top-up %s/%s: %w", k.accountID, k.topUpID, err)
	}
	return t, true, nil
}

// insert queues a movement row; full groups go out as one multi-row INSERT.
func (b *batch) insert(m Movement) error {
	b.movementArgs = append(b.movementArgs, m.AccountID, int64(m.Version), m.EventID.String(),
		nanos(m.OccurredAt), nanos(m.RecordedAt), m.Type, m.Cause, m.UserID, m.Reference, m.Description,
		m.Amount.String(), unitsOf(m.Amount), m.BalanceAfter.String(), m.Currency)
	if len(b.movementArgs) < cap(b.movementArgs) {
		return nil
	}
	return b.writeMovements()
}

// writeMovements writes the queued movement rows.
func (b *batch) writeMovements() error {
	args := b.movementArgs
	b.movementArgs = b.movementArgs[:0]
	if len(args) == movementColumnCount*movementRowsPerInsert {
		if _, err := b.st[stmtInsertMovements].ExecContext(b.ctx, args...); err != nil {
			return fmt.Errorf("insert movements: %w", err)
		}
		return nil
	}
	for len(args) > 0 {
		if _, err := b.st[stmtInsertMovement].ExecContext(b.ctx, args[:movementColumnCount]...); err != nil {
			return fmt.Errorf("insert movement: %w", err)
		}
		args = args[movementColumnCount:]
	}
	return nil
}

// flush writes the queued movements and every account and top-up the batch touched, once
// each.
func (b *batch) flush() error {
	if err := b.writeMovements(); err != nil {
		return err
	}
	for _, a := range b.order {
		if err := b.writeAccount(a); err != nil {
			return fmt.Errorf("write account %s: %w", a.ID, err)
		}
	}
	for _, t := range b.dirtyTopUps {
		var completed any
		if t.CompletedAt != nil {
			completed = nanos(*t.CompletedAt)
		}
		_, err := b.st[stmtUpsertTopUp].ExecContext(b.ctx, t.AccountID, t.TopUpID, t.Kind, t.Amount.String(), t.State,
			t.Attempts, t.FailureReason, nanos(t.RequestedAt), completed, int64(t.Version))
		if err != nil {
			return fmt.Errorf("write top-up %s/%s: %w", t.AccountID, t.TopUpID, err)
		}
	}
	return nil
}

func (b *batch) writeAccount(a *accountState) error {
	var err error
	switch {
	case !a.dirty:
		// every event for it was a re-delivery
	case a.wide:
		_, err = b.st[stmtUpsertAccount].ExecContext(b.ctx, accountArgs(a)...)
	default:
		_, err = b.st[stmtUpdateBalance].ExecContext(b.ctx, a.Balance.String(), a.alert, nanos(a.alertSince),
			int64(a.Version), nanos(a.UpdatedAt), a.ID)
	}
	return err
}

func accountArgs(a *accountState) []any {
	var pendingID, pendingKind string
	if a.Pending != nil {
		pendingID, pendingKind = a.Pending.ID, a.Pending.Kind
	}
	t := a.AutoTopUp
	return []any{a.ID, a.Currency, a.Balance.String(), a.LowBalanceThreshold.String(), a.alert, nanos(a.alertSince),
		t.Enabled, t.Threshold.String(), t.Amount.String(), t.Suspended, t.LastFailure,
		pendingID, pendingKind, int64(a.Version), nanos(a.UpdatedAt)}
}

// scanAccountState reads a row of accountColumns back into the state Evolve works on.
func scanAccountState(row *sql.Row) (*accountState, error) {
	var (
		a                                    accountState
		balance, threshold, autoThr, autoAmt string
		alertSince, updatedAt                sql.NullInt64
		pendingID, pendingKind               string
		version                              int64
	)
	err := row.Scan(&a.ID, &a.Currency, &balance, &threshold, &a.alert, &alertSince,
		&a.AutoTopUp.Enabled, &autoThr, &autoAmt, &a.AutoTopUp.Suspended, &a.AutoTopUp.LastFailure,
		&pendingID, &pendingKind, &version, &updatedAt)
	if err != nil {
		return nil, err
	}
	if err := parseDecimals(decField{"balance", balance, &a.Balance}, decField{"low_balance_threshold", threshold, &a.LowBalanceThreshold},
		decField{"auto_threshold", autoThr, &a.AutoTopUp.Threshold}, decField{"auto_amount", autoAmt, &a.AutoTopUp.Amount}); err != nil {
		return nil, err
	}
	a.Opened = true
	a.Version = uint64(version)
	a.alertSince, a.UpdatedAt = fromNanos(alertSince), fromNanos(updatedAt)
	if pendingID != "" {
		a.Pending = &ledger.PendingTopUp{ID: pendingID, Kind: pendingKind}
	}
	return &a, nil
}

// decField is one decimal column to parse.
type decField struct {
	name, text string
	dst        *decimal.Decimal
}

// parseDecimals parses decimal columns; a failure means the file was edited by hand.
func parseDecimals(fs ...decField) error {
	for _, f := range fs {
		d, err := decimal.NewFromString(f.text)
		if err != nil {
			return fmt.Errorf("column %s: %w", f.name, err)
		}
		*f.dst = d
	}
	return nil
}

// unitsOf is amount in ten-thousandths when that is an exact int64 (every amount the ledger
// accepts has at most 4 decimals), else NULL so that sums fall back to exact decimals.
func unitsOf(amount decimal.Decimal) any {
	u := amount.Shift(ledger.AmountScaleMax)
	if !u.IsInteger() {
		return nil
	}
	bi := u.BigInt()
	if !bi.IsInt64() {
		return nil
	}
	return bi.Int64()
}

func timePtr(t time.Time) *time.Time { return &t }
