package projections

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// Page sizes of Movements.
const (
	// pageSizeDefault is the page size when the filter asks for none.
	pageSizeDefault = 100
	// pageSizeMax is the largest page; larger limits are clamped to it.
	pageSizeMax = 1000
	// exportChunkRows is how many movements EachMovement reads per query.
	exportChunkRows = 1000
)

// Account returns the read model of one account; false when it does not exist.
func (db *DB) Account(ctx context.Context, id string) (Account, bool, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE account_id = ?`, id)
	a, err := scanAccount(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, false, nil
	}
	if err != nil {
		return Account{}, false, fmt.Errorf("read account %s: %w", id, err)
	}
	return a, true, nil
}

// Accounts calls fn for every account, in account id order, until fn returns an error
// (which Accounts returns). It reads in one statement, so fn should not take long.
func (db *DB) Accounts(ctx context.Context, fn func(Account) error) error {
	rows, err := db.r.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY account_id`)
	if err != nil {
		return fmt.Errorf("read accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return fmt.Errorf("read accounts: %w", err)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read accounts: %w", err)
	}
	return nil
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

func scanAccount(row rowScanner) (Account, error) {
	var (
		a                                    Account
		balance, threshold, autoThr, autoAmt string
		alertSince, updatedAt                sql.NullInt64
		suspended                            bool
		pendingID, pendingKind               string
		version                              int64
	)
	err := row.Scan(&a.AccountID, &a.Currency, &balance, &threshold, &a.Alert, &alertSince,
		&a.AutoTopUp.Enabled, &autoThr, &autoAmt, &suspended, &a.AutoTopUp.LastFailure,
		&pendingID, &pendingKind, &version, &updatedAt)
	if err != nil {
		return Account{}, err
	}
	if err := parseDecimals(decField{"balance", balance, &a.Balance}, decField{"low_balance_threshold", threshold, &a.LowBalanceThreshold},
		decField{"auto_threshold", autoThr, &a.AutoTopUp.Threshold}, decField{"auto_amount", autoAmt, &a.AutoTopUp.Amount}); err != nil {
		return Account{}, err
	}
	a.Version = uint64(version)
	a.AlertSince, a.UpdatedAt = fromNanos(alertSince), fromNanos(updatedAt)
	a.AutoTopUp.State = autoTopUpState(a.AutoTopUp.Enabled, suspended, pendingID, pendingKind)
	return a, nil
}

// autoTopUpState is suspended over pending over idle (see AutoTopUp.State).
func autoTopUpState(enabled, suspended bool, pendingID, pendingKind string) string {
	switch {
	case suspended:
		return AutoTopUpSuspended
	case pendingID != "" && (enabled || pendingKind == events.TopUpAuto):
		return AutoTopUpPending
	}
	return AutoTopUpIdle
}

// MovementFilter selects movements. Zero fields select everything.
type MovementFilter struct {
	// From and To bound occurred_at: From <= occurred_at < To (half-open, so consecutive
	// ranges neither overlap nor leave a gap).
	From, To time.Time
	// Cause is one of ledger.Causes or CauseTopUp, CauseAutoTopUp, CauseAdjustment.
	Cause string
	// Type is MovementUsage, MovementTopUp or MovementAdjustment.
	Type   string
	UserID string
	// Limit is the page size of Movements: default pageSizeDefault, clamped to pageSizeMax.
	// EachMovement ignores it.
	Limit int
	// Cursor is the next_cursor of the previous page ("" for the first page).
	Cursor string
}

// Movements returns one page of an account's movements in stream order and the cursor of the
// next page ("" when there is none). Pages are keyed on the version, which only grows, so
// paging while events arrive neither skips nor repeats a movement. A malformed filter or
// cursor is an *ledger.Error with code ledger.EINVALID.
func (db *DB) Movements(ctx context.Context, accountID string, f MovementFilter) ([]Movement, string, error) {
	after, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit, err := pageSize(f.Limit)
	if err != nil {
		return nil, "", err
	}
	q, err := movementQuery(accountID, f, after, 0)
	if err != nil {
		return nil, "", err
	}
	// One row more than the page tells whether there is a next page, so the last page
	// never hands out a cursor that leads to an empty one.
	ms, err := db.queryMovements(ctx, q, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(ms) <= limit {
		return ms, "", nil
	}
	ms = ms[:limit]
	return ms, encodeCursor(ms[limit-1].Version), nil
}

// EachMovement calls fn for every movement of the account that matches the filter, in stream
// order, until fn returns an error (which it returns). Limit is ignored; a Cursor starts the
// export after it.
//
// It reads in chunks of exportChunkRows by version instead of through one long cursor: a
// single statement would pin one read snapshot for the whole export, and a slow client
// downloading millions of rows would then keep the WAL from being checkpointed into the main
// file for minutes while the projector keeps appending. Chunks lose nothing because movement
// rows are never changed once written; the export stops at the account's version when it
// began, so it ends even while usage keeps arriving. Memory stays one chunk whatever the row
// count.
func (db *DB) EachMovement(ctx context.Context, accountID string, f MovementFilter, fn func(Movement) error) error {
	after, err := decodeCursor(f.Cursor)
	if err != nil {
		return err
	}
	var until int64
	err = db.r.QueryRowContext(ctx, `SELECT version FROM accounts WHERE account_id = ?`, accountID).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read account %s: %w", accountID, err)
	}
	for {
		q, err := movementQuery(accountID, f, after, uint64(until))
		if err != nil {
			return err
		}
		ms, err := db.queryMovements(ctx, q, exportChunkRows)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := fn(m); err != nil {
				return err
			}
		}
		if len(ms) < exportChunkRows {
			return nil
		}
		after = ms[len(ms)-1].Version
	}
}

// query is SQL text with its arguments.
type query struct {
	text string
	args []any
}

// movementQuery builds the SELECT of movements after version after (and up to until when it
// is not 0) matching f. Only fixed SQL fragments are concatenated; every value is an argument.
func movementQuery(accountID string, f MovementFilter, after, until uint64) (query, error) {
	if err := checkFilter(f); err != nil {
		return query{}, err
	}
	var sb strings.Builder
	sb.WriteString(`SELECT ` + movementColumns + ` FROM movements WHERE account_id = ? AND version > ?`)
	args := []any{accountID, int64(after)}
	add := func(cond string, v any) {
		sb.WriteString(" AND " + cond)
		args = append(args, v)
	}
	if until != 0 {
		add("version <= ?", int64(until))
	}
	if !f.From.IsZero() {
		add("occurred_at >= ?", f.From.UnixNano())
	}
	if !f.To.IsZero() {
		add("occurred_at < ?", f.To.UnixNano())
	}
	if f.Cause != "" {
		add("cause = ?", f.Cause)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.UserID != "" {
		add("user_id = ?", f.UserID)
	}
	sb.WriteString(" ORDER BY version LIMIT ?")
	return query{sb.String(), args}, nil
}

// movementCauses are the causes a filter may name.
var movementCauses = append(slices.Clone(ledger.Causes), CauseTopUp, CauseAutoTopUp, CauseAdjustment)

// checkFilter refuses a cause or type that no movement can have: a typo would otherwise
// look like an account without movements.
func checkFilter(f MovementFilter) error {
	if f.Cause != "" && !slices.Contains(movementCauses, f.Cause) {
		return ledger.Errorf(ledger.EINVALID, "invalid_cause", "cause must be one of %s, got %q", strings.Join(movementCauses, ", "), f.Cause)
	}
	if f.Type != "" && f.Type != MovementUsage && f.Type != MovementTopUp && f.Type != MovementAdjustment {
		return ledger.Errorf(ledger.EINVALID, "invalid_type", "type must be usage, top_up or adjustment, got %q", f.Type)
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return ledger.Errorf(ledger.EINVALID, "invalid_range", "to (%s) is before from (%s)", f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
	}
	return nil
}

func pageSize(limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, ledger.Errorf(ledger.EINVALID, "invalid_limit", "limit must not be negative, got %d", limit)
	case limit == 0:
		return pageSizeDefault, nil
	case limit > pageSizeMax:
		return pageSizeMax, nil
	}
	return limit, nil
}

func (db *DB) queryMovements(ctx context.Context, q query, limit int) ([]Movement, error) {
	rows, err := db.r.QueryContext(ctx, q.text, append(q.args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read movements: %w", err)
	}
	defer rows.Close()
	var ms []Movement
	for rows.Next() {
		m, err := scanMovement(rows)
		if err != nil {
			return nil, fmt.Errorf("read movements: %w", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read movements: %w", err)
	}
	return ms, nil
}

func scanMovement(row rowScanner) (Movement, error) {
	var (
		m                    Movement
		version              int64
		eventID, amount, bal string
		occurred, recorded   sql.NullInt64
		units                sql.NullInt64
	)
	err := row.Scan(&m.AccountID, &version, &eventID, &occurred, &recorded, &m.Type, &m.Cause, &m.UserID,
		&m.Reference, &m.Description, &amount, &units, &bal, &m.Currency)
	if err != nil {
		return Movement{}, err
	}
	if m.EventID, err = uuid.Parse(eventID); err != nil {
		return Movement{}, fmt.Errorf("column event_id: %w", err)
	}
	if err := parseDecimals(decField{"amount", amount, &m.Amount}, decField{"balance_after", bal, &m.BalanceAfter}); err != nil {
		return Movement{}, err
	}
	m.Version = uint64(version)
	m.OccurredAt, m.RecordedAt = fromNanos(occurred), fromNanos(recorded)
	return m, nil
}

// cursorPrefix versions the cursor format so that it can change without misreading old ones.
const cursorPrefix = "v1:"

// encodeCursor makes the opaque cursor that resumes after version.
func encodeCursor(version uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatUint(version, 10)))
}

// decodeCursor returns the version a cursor resumes after (0 for "").
func decodeCursor(c string) (uint64, error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && strings.HasPrefix(string(b), cursorPrefix) {
		if v, perr := strconv.ParseUint(string(b[len(cursorPrefix):]), 10, 63); perr == nil {
			return v, nil
		}
	}
	return 0, ledger.Errorf(ledger.EINVALID, "invalid_cursor", "cursor %q was not issued by this API", truncate(c, 40))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// TopUp returns one top-up of an account; false when there is none with that id.
func (db *DB) TopUp(ctx context.Context, accountID, topUpID string) (TopUp, bool, error) {
	t, err := scanTopUp(db.r.QueryRowContext(ctx, `SELECT `+topUpColumns+` FROM top_ups WHERE account_id = ? AND top_up_id = ?`, accountID, topUpID))
	if errors.Is(err, sql.ErrNoRows) {
		return TopUp{}, false, nil
	}
	if err != nil {
		return TopUp{}, false, fmt.Errorf("read top-up %s/%s: %w", accountID, topUpID, err)
	}
	return t, true, nil
}

// topUpsMax bounds TopUps: an account makes at most a few auto top-ups a day, so this is
// years of them, and a list never grows without end.
const topUpsMax = 1000

// TopUps lists the top-ups of an account, newest first (at most topUpsMax).
func (db *DB) TopUps(ctx context.Context, accountID string) ([]TopUp, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+topUpColumns+` FROM top_ups WHERE account_id = ? ORDER BY version DESC LIMIT ?`, accountID, topUpsMax)
	if err != nil {
		return nil, fmt.Errorf("read top-ups of %s: %w", accountID, err)
	}
	defer rows.Close()
	var ts []TopUp
	for rows.Next() {
		t, err := scanTopUp(rows)
		if err != nil {
			return nil, fmt.Errorf("read top-ups of %s: %w", accountID, err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read top-ups of %s: %w", accountID, err)
	}
	return ts, nil
}

func scanTopUp(row rowScanner) (TopUp, error) {
	var (
		t                    TopUp
		amount               string
		requested, completed sql.NullInt64
		version              int64
	)
	err := row.Scan(&t.AccountID, &t.TopUpID, &t.Kind, &amount, &t.State, &t.Attempts, &t.FailureReason, &requested, &completed, &version)
	if err != nil {
		return TopUp{}, err
	}
	if err := parseDecimals(decField{"amount", amount, &t.Amount}); err != nil {
		return TopUp{}, err
	}
	t.RequestedAt = fromNanos(requested)
	if completed.Valid {
		t.CompletedAt = timePtr(fromNanos(completed))
	}
	t.Version = uint64(version)
	return t, nil
}
