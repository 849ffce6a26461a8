package intake

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
)

// sqliteIndex is the usage index as it was before it moved to Pebble: a SQLite table
// with the text ids as primary key, the same pragmas and the same statements. It is
// kept for BenchmarkPutUsages and BenchmarkLookupUsages, which run it and the Pebble
// index on the same data in the same run, so that the reason for the move can be
// measured again on any machine.
type sqliteIndex struct {
	sql     *sql.DB
	lookups *sql.DB
}

const sqliteIndexSchema = `
CREATE TABLE IF NOT EXISTS usage_index (
	account_id   TEXT NOT NULL,
	usage_id     TEXT NOT NULL,
	content_hash TEXT NOT NULL,
	amount       TEXT NOT NULL,
	position     INTEGER NOT NULL,
	PRIMARY KEY (account_id, usage_id)
) WITHOUT ROWID;
`

func openSQLiteIndex(path string) (*sqliteIndex, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "cache_size(-65536)")
	q.Add("_pragma", "wal_autocheckpoint(20000)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(sqliteIndexSchema); err != nil {
		db.Close()
		return nil, err
	}
	r := url.Values{}
	r.Add("_pragma", "busy_timeout(10000)")
	r.Add("_pragma", "query_only(1)")
	r.Add("_pragma", "cache_size(-16384)")
	lookups, err := sql.Open("sqlite", "file:"+path+"?"+r.Encode())
	if err != nil {
		db.Close()
		return nil, err
	}
	lookups.SetMaxOpenConns(2)
	lookups.SetMaxIdleConns(2)
	return &sqliteIndex{sql: db, lookups: lookups}, nil
}

func (x *sqliteIndex) Close() error {
	x.lookups.Close()
	return x.sql.Close()
}

func (x *sqliteIndex) LookupUsages(ctx context.Context, keys []UsageKey) (map[UsageKey]IndexedUsage, error) {
	const chunkMax = 400
	found := make(map[UsageKey]IndexedUsage)
	for start := 0; start < len(keys); start += chunkMax {
		chunk := keys[start:min(start+chunkMax, len(keys))]
		var q strings.Builder
		q.WriteString(`SELECT account_id, usage_id, content_hash, amount, position FROM usage_index WHERE (account_id, usage_id) IN (VALUES `)
		args := make([]any, 0, 2*len(chunk))
		for i, k := range chunk {
			if i > 0 {
				q.WriteString(",")
			}
			q.WriteString("(?,?)")
			args = append(args, k.AccountID, k.UsageID)
		}
		q.WriteString(")")
		rows, err := x.lookups.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var u IndexedUsage
			var amount string
			if err := rows.Scan(&u.AccountID, &u.UsageID, &u.ContentHash, &amount, &u.Position); err != nil {
				rows.Close()
				return nil, err
			}
			if u.Amount, err = decimal.NewFromString(amount); err != nil {
				rows.Close()
				return nil, err
			}
			found[u.UsageKey] = u
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return found, nil
}

func (x *sqliteIndex) PutUsages(ctx context.Context, usages []IndexedUsage) error {
	sorted := slices.Clone(usages)
	slices.SortFunc(sorted, func(a, b IndexedUsage) int {
		return cmp.Or(strings.Compare(a.AccountID, b.AccountID), strings.Compare(a.UsageID, b.UsageID))
	})
	tx, err := x.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO usage_index (account_id, usage_id, content_hash, amount, position)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, u := range sorted {
		if _, err := stmt.ExecContext(ctx, u.AccountID, u.UsageID, u.ContentHash, u.Amount.String(), u.Position); err != nil {
			return fmt.Errorf("index usage %s/%s: %w", u.AccountID, u.UsageID, err)
		}
	}
	return tx.Commit()
}
