package intake

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // pure-Go SQLite: `go run` needs no C toolchain
)

// DB is the intake database: a SQLite file (rejections, the alert publisher's
// checkpoint) and, in a directory next to it, the usage index (Pebble; see
// usageindex.go).
type DB struct {
	sql   *sql.DB
	index *usageIndex
}

// ErrClosed is returned by writes after Close: the process is stopping, and whatever was
// not written is healed from the ledger stream by the next start.
var ErrClosed = errors.New("intake db closed")

const schema = `
CREATE TABLE IF NOT EXISTS checkpoint (
	name     TEXT PRIMARY KEY,
	position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
	rejection_id TEXT PRIMARY KEY,
	seq          INTEGER NOT NULL UNIQUE,
	received_at  TEXT NOT NULL,
	subject      TEXT NOT NULL,
	account_id   TEXT NOT NULL,
	reason       TEXT NOT NULL,
	message      TEXT NOT NULL,
	payload      BLOB NOT NULL,
	status       TEXT NOT NULL,
	updated_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_account ON rejections (account_id, seq);
-- The usage index lived here until it moved to its own Pebble store. It is derived
-- data (every row comes from the ledger stream), so the move is: drop the table and its
-- checkpoint, and let the writer's Load re-index the whole stream into the new store,
-- which starts without a checkpoint. Dropping also gives back the table's space.
DROP TABLE IF EXISTS usage_index;
DELETE FROM checkpoint WHERE name = 'usage_index';
`

// Open opens (creating if needed) the intake database at path, and its usage index in
// the directory path + ".usage-index".
func Open(path string) (*DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open intake db %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and it keeps the WAL pragmas simple.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create intake schema %s: %w", path, err)
	}
	index, err := openUsageIndex(indexDir(path))
	if err != nil {
		db.Close()
		return nil, err
	}
	return &DB{sql: db, index: index}, nil
}

// Close closes the database. Writes after Close return an error wrapping ErrClosed.
func (db *DB) Close() error {
	return errors.Join(db.index.close(), db.sql.Close())
}
