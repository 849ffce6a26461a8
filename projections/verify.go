package projections

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/telephony/creditledger/events"
)

// differencesMax bounds the differences Verify lists; one more line says how many it left
// out, so a read model that is wrong everywhere does not flood the terminal or the memory.
const differencesMax = 1000

// Difference is one disagreement between the live read models and the ones rebuilt from the
// event store.
type Difference struct {
	// Table is "accounts", "movements", "top_ups" or "checkpoint".
	Table string
	// Key names the row: "acme", "acme v17", "acme/tu-1".
	Key string
	// Column is the column that differs; "" when the row exists on one side only.
	Column string
	// Live and Rebuilt are the values on each side ("" for a side that lacks the row).
	Live, Rebuilt string
	// omitted, when not 0, makes this the line that counts the differences left out.
	omitted int
}

// String is a line for humans, for example "account acme: balance live 10 rebuilt 12".
func (d Difference) String() string {
	if d.omitted > 0 {
		return fmt.Sprintf("... and %d more differences", d.omitted)
	}
	what := map[string]string{"accounts": "account", "movements": "movement", "top_ups": "top-up", "checkpoint": "checkpoint"}[d.Table]
	switch {
	case d.Column != "":
		return fmt.Sprintf("%s %s: %s live %s rebuilt %s", what, d.Key, d.Column, orNone(d.Live), orNone(d.Rebuilt))
	case d.Live == "":
		return fmt.Sprintf("%s %s: missing from the live read models", what, d.Key)
	default:
		return fmt.Sprintf("%s %s: in the live read models but not in the event store", what, d.Key)
	}
}

func orNone(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// Verify checks the live read models against the event store. It reads the live checkpoint
// P, rebuilds every read model from the store's events up to P into a temporary file, and
// compares every row of accounts, movements and top-ups (amounts as decimals), returning the
// differences (none when all agree, at most differencesMax plus a count of the rest).
//
// live may be opened read-only by another process while ledgerd keeps projecting: the
// comparison runs in one read transaction on live, begun before reading P, so it sees
// exactly the rows P covers whatever is applied meanwhile. That transaction holds a WAL
// snapshot for the whole run, so the WAL grows until it ends; it never blocks the writer.
func Verify(ctx context.Context, store events.Store, live *DB) ([]Difference, error) {
	tx, err := live.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer tx.Rollback()
	p, err := readCheckpoint(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	dir, err := os.MkdirTemp("", "creditledger-verify-")
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer os.RemoveAll(dir)
	rebuilt, err := rebuildUpTo(ctx, store, filepath.Join(dir, "rebuilt.db"), p)
	if err != nil {
		return nil, fmt.Errorf("verify: rebuild up to %d: %w", p, err)
	}
	defer rebuilt.Close()
	c := &comparison{}
	if err := c.checkpoints(ctx, tx, rebuilt.r, p); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	for _, t := range verifiedTables {
		if err := c.table(ctx, t, tx, rebuilt.r); err != nil {
			return nil, fmt.Errorf("verify %s: %w", t.name, err)
		}
	}
	return c.result(), nil
}

// rebuildUpTo builds the read models of the store's events up to position p into a new file
// at path and opens it for reading.
func rebuildUpTo(ctx context.Context, store events.Store, path string, p uint64) (*DB, error) {
	if p == 0 {
		return Open(path) // the live side applied nothing: compare with empty tables
	}
	if err := build(ctx, store, path, p, func(uint64) {}); err != nil {
		return nil, err
	}
	return OpenReadOnly(path)
}

// Kinds of columns, for comparing and showing values.
const (
	kindText = iota
	kindInt
	kindDecimal
	kindTime
)

type column struct {
	name string
	kind int
}

type tableSpec struct {
	name string
	// key are the leading columns, in ORDER BY order; the rest are compared.
	key, values []column
}

// verifiedTables are every read-model table with every column.
var verifiedTables = []tableSpec{
	{name: "accounts", key: []column{{"account_id", kindText}}, values: []column{
		{"currency", kindText}, {"balance", kindDecimal}, {"low_balance_threshold", kindDecimal},
		{"alert", kindText}, {"alert_since", kindTime}, {"auto_enabled", kindInt},
		{"auto_threshold", kindDecimal}, {"auto_amount", kindDecimal}, {"auto_suspended", kindInt},
		{"auto_last_failure", kindText}, {"pending_top_up_id", kindText}, {"pending_kind", kindText},
		{"version", kindInt}, {"updated_at", kindTime}}},
	{name: "movements", key: []column{{"account_id", kindText}, {"version", kindInt}}, values: []column{
		{"event_id", kindText}, {"occurred_at", kindTime}, {"recorded_at", kindTime}, {"type", kindText},
		{"cause", kindText}, {"user_id", kindText}, {"reference", kindText}, {"description", kindText},
		{"amount", kindDecimal}, {"units", kindInt}, {"balance_after", kindDecimal}, {"currency", kindText}}},
	{name: "top_ups", key: []column{{"account_id", kindText}, {"top_up_id", kindText}}, values: []column{
		{"kind", kindText}, {"amount", kindDecimal}, {"state", kindText}, {"attempts", kindInt},
		{"failure_reason", kindText}, {"requested_at", kindTime}, {"completed_at", kindTime}, {"version", kindInt}}},
}

// comparison collects differences up to differencesMax and counts the rest.
type comparison struct {
	diffs   []Difference
	omitted int
}

func (c *comparison) add(d Difference) {
	if len(c.diffs) < differencesMax {
		c.diffs = append(c.diffs, d)
		return
	}
	c.omitted++
}

func (c *comparison) result() []Difference {
	if c.omitted > 0 {
		return append(c.diffs, Difference{omitted: c.omitted})
	}
	return c.diffs
}

func (c *comparison) checkpoints(ctx context.Context, live, rebuilt queryer, p uint64) error {
	r, err := readCheckpoint(ctx, rebuilt)
	if err != nil {
		return err
	}
	if r != p {
		c.add(Difference{Table: "checkpoint", Key: "position", Column: "position",
			Live: strconv.FormatUint(p, 10), Rebuilt: strconv.FormatUint(r, 10)})
	}
	return nil
}

// table merges the two sides in key order, so memory stays one row per side whatever the
// table size.
func (c *comparison) table(ctx context.Context, t tableSpec, live, rebuilt queryer) error {
	l, err := openCursor(ctx, t, live)
	if err != nil {
		return err
	}
	defer l.close()
	r, err := openCursor(ctx, t, rebuilt)
	if err != nil {
		return err
	}
	defer r.close()
	lrow, err := l.next()
	if err != nil {
		return err
	}
	rrow, err := r.next()
	if err != nil {
		return err
	}
	for lrow != nil || rrow != nil {
		switch order := compareKeys(t, lrow, rrow); {
		case order < 0:
			c.add(Difference{Table: t.name, Key: keyOf(t, lrow), Live: "present"})
			lrow, err = l.next()
		case order > 0:
			c.add(Difference{Table: t.name, Key: keyOf(t, rrow), Rebuilt: "present"})
			rrow, err = r.next()
		default:
			c.compareRow(t, lrow, rrow)
			if lrow, err = l.next(); err == nil {
				rrow, err = r.next()
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *comparison) compareRow(t tableSpec, l, r []sql.NullString) {
	n := len(t.key)
	for i, col := range t.values {
		if !sameValue(col.kind, l[n+i], r[n+i]) {
			c.add(Difference{Table: t.name, Key: keyOf(t, l), Column: col.name,
				Live: show(col.kind, l[n+i]), Rebuilt: show(col.kind, r[n+i])})
		}
	}
}

// cursor reads one table's rows as strings, in key order.
type cursor struct {
	rows *sql.Rows
	row  []sql.NullString
	dest []any
}

func openCursor(ctx context.Context, t tableSpec, q queryer) (*cursor, error) {
	var names, keys []string
	for _, col := range t.key {
		names, keys = append(names, col.name), append(keys, col.name)
	}
	for _, col := range t.values {
		names = append(names, col.name)
	}
	rows, err := q.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(names, ", "), t.name, strings.Join(keys, ", ")))
	if err != nil {
		return nil, err
	}
	c := &cursor{rows: rows, row: make([]sql.NullString, len(names)), dest: make([]any, len(names))}
	for i := range c.row {
		c.dest[i] = &c.row[i]
	}
	return c, nil
}

// next returns the next row (nil at the end). The slice is reused by the following call.
func (c *cursor) next() ([]sql.NullString, error) {
	if !c.rows.Next() {
		return nil, c.rows.Err()
	}
	if err := c.rows.Scan(c.dest...); err != nil {
		return nil, err
	}
	return c.row, nil
}

func (c *cursor) close() { c.rows.Close() }

// compareKeys orders two rows by key the way ORDER BY does (text by bytes, integers by
// value); a nil row (one side ended) sorts after every row.
func compareKeys(t tableSpec, a, b []sql.NullString) int {
	switch {
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	for i, col := range t.key {
		if col.kind == kindInt {
			x, _ := strconv.ParseInt(a[i].String, 10, 64)
			y, _ := strconv.ParseInt(b[i].String, 10, 64)
			if x != y {
				return cmpInt(x, y)
			}
			continue
		}
		if c := strings.Compare(a[i].String, b[i].String); c != 0 {
			return c
		}
	}
	return 0
}

func cmpInt(x, y int64) int {
	if x < y {
		return -1
	}
	return 1
}

func keyOf(t tableSpec, row []sql.NullString) string {
	switch t.name {
	case "movements":
		return row[0].String + " v" + row[1].String
	case "top_ups":
		return row[0].String + "/" + row[1].String
	}
	return row[0].String
}

// sameValue compares decimals as decimals ("12.50" equals "12.5") and the rest exactly.
func sameValue(kind int, a, b sql.NullString) bool {
	if a.Valid != b.Valid {
		return false
	}
	if kind != kindDecimal || !a.Valid {
		return a.String == b.String
	}
	x, errX := decimal.NewFromString(a.String)
	y, errY := decimal.NewFromString(b.String)
	if errX != nil || errY != nil {
		return a.String == b.String
	}
	return x.Equal(y)
}

// show formats a value for a Difference: times as RFC 3339, NULL as "null".
func show(kind int, v sql.NullString) string {
	if !v.Valid {
		return "null"
	}
	if kind == kindTime {
		if n, err := strconv.ParseInt(v.String, 10, 64); err == nil {
			return time.Unix(0, n).UTC().Format(time.RFC3339Nano)
		}
	}
	return v.String
}
