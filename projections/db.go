package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// busyTimeout is how long a statement waits for another connection's lock before failing
// with SQLITE_BUSY. Writers hold the lock for one batch (milliseconds); only the swap at the
// end of a Rebuild holds it longer, and the Projector retries after a busy failure anyway.
const busyTimeout = 10 * time.Second

// readConnsMax bounds the read connections of one DB: the machine has 2 cores, and SQLite
// readers in WAL mode do not block each other, so a few are enough to serve the HTTP API
// while an export streams.
const readConnsMax = 4

// schemaVersion is stored in PRAGMA user_version; Open refuses a file written by a newer one.
const schemaVersion = 1

// schema creates the read-model tables. Money is TEXT holding the exact decimal; units is
// the movement amount in ten-thousandths as an INTEGER so that SQL can sum it exactly (NULL
// when it does not fit, and summaries then fall back to summing decimals in Go). Times are
// INTEGER Unix nanoseconds in UTC.
//
// movements is a rowid table, so every insert appends to the end of the table, plus one
// UNIQUE index on (account_id, version) for everything that reads it (pages, the export,
// the summary) and as a last guard against a movement being written twice. Events arrive
// spread over thousands of accounts, and a table clustered by account (WITHOUT ROWID) turned
// each of them into a random insert into a wide-row B-tree page: measured in one run on this
// 2-core machine, 12-20k events/s clustered against 33-40k with the rowid table and index
// (and ~100k with no index at all, which no query could use). Measured again with 8 KiB
// pages (BenchmarkApply, events per CPU-second, 3 interleaved runs each): 35,200 clustered
// (each batch's movements sorted by key before the insert) against 53,900; the profile
// shows why: a batch dirties one wide leaf page per account it touches, and the commit's
// WAL writes (pwrite time, 4 KiB pages) nearly tripled, while the index's narrow entries
// share pages. The rebuild loses too (BenchmarkRebuild/new_file 59,900 against 68,300,
// sorting each build transaction's movements and no index to create at the end).
// accounts and top_ups are small, WITHOUT ROWID on their keys. No other index: each one
// costs every insert (see UsageSummary for occurred_at).
//
// schema is schemaTables followed by schemaIndexes: a rebuild creates the tables, bulk-loads
// them and only then the index (see build).
const schema = schemaTables + schemaIndexes

const schemaTables = `
CREATE TABLE IF NOT EXISTS checkpoint (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	position INTEGER NOT NULL
);
INSERT OR IGNORE INTO checkpoint (id, position) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS accounts (
	account_id            TEXT    NOT NULL PRIMARY KEY,
	currency              TEXT    NOT NULL,
	balance               TEXT    NOT NULL,
	low_balance_threshold TEXT    NOT NULL,
	alert                 TEXT    NOT NULL,
	alert_since           INTEGER,
	auto_enabled          INTEGER NOT NULL,
	auto_threshold        TEXT    NOT NULL,
	auto_amount           TEXT    NOT NULL,
	auto_suspended        INTEGER NOT NULL,
	auto_last_failure     TEXT    NOT NULL,
	pending_top_up_id     TEXT    NOT NULL,
	pending_kind          TEXT    NOT NULL,
	version               INTEGER NOT NULL,
	updated_at            INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS movements (
	account_id    TEXT    NOT NULL,
	version       INTEGER NOT NULL,
	event_id      TEXT    NOT NULL,
	occurred_at   INTEGER,
	recorded_at   INTEGER,
	type          TEXT    NOT NULL,
	cause         TEXT    NOT NULL,
	user_id       TEXT    NOT NULL,
	reference     TEXT    NOT NULL,
	description   TEXT    NOT NULL,
	amount        TEXT    NOT NULL,
	units         INTEGER,
	balance_after TEXT    NOT NULL,
	currency      TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS top_ups (
	account_id     TEXT    NOT NULL,
	top_up_id      TEXT    NOT NULL,
	kind           TEXT    NOT NULL,
	amount         TEXT    NOT NULL,
	state          TEXT    NOT NULL,
	attempts       INTEGER NOT NULL,
	failure_reason TEXT    NOT NULL,
	requested_at   INTEGER,
	completed_at   INTEGER,
	version        INTEGER NOT NULL,
	PRIMARY KEY (account_id, top_up_id)
) WITHOUT ROWID;
`

const schemaIndexes = `
CREATE UNIQUE INDEX IF NOT EXISTS movements_by_account ON movements (account_id, version);
`

// writerParams configure the writing connection:
//   - _txlock=immediate: a write transaction takes the lock when it begins, so it never
//     fails half-way when upgrading a read lock (SQLITE_BUSY_SNAPSHOT);
//   - synchronous=NORMAL in WAL mode survives a process crash; a power cut may lose the last
//     batches, which the Projector simply re-applies from its checkpoint;
//   - page_size 8 KiB (pageSizeParam) for a new file;
//   - cache_size 64 MiB keeps the accounts and the hot end of the movements index in memory
//     instead of re-reading pages with a system call each;
//   - wal_autocheckpoint 10,000 pages (~40 MiB of 4 KiB pages, ~80 MiB of 8 KiB): a batch
//     spread over many accounts dirties hundreds of pages, and the default 1,000
//     checkpointed (with an fsync) almost every batch; measured +8% events per CPU-second
//     (with 8 KiB pages, 5,000 measured the same as 10,000);
//   - temp_store=MEMORY keeps temporary files (statement journals, sorters) off the disk:
//     the statement journal of multi-row inserts was a quarter of the CPU time, in pwrite
//     (the movement inserts need none since, see stmtInsertMovement).
const writerParams = "_txlock=immediate&_journal_mode=WAL&_synchronous=NORMAL" + pageSizeParam +
	"&_pragma=cache_size(-65536)&_pragma=wal_autocheckpoint(10000)&_pragma=temp_store(MEMORY)"

// pageSizeParam sets 8 KiB pages instead of SQLite's 4 KiB default. A batch's commit writes
// every page it dirtied to the WAL, two pwrites per page (frame header and page), and with
// events spread over thousands of accounts most of a batch's account rows and index entries
// sit on pages of their own: bigger pages hold more of them, so a batch dirties fewer pages
// and the commit makes fewer system calls for about the same bytes. Measured with
// BenchmarkApply (1,000-event batches over 10,000 accounts, interleaved runs): 4 KiB 50,100
// events per CPU-second (10 runs, 47,600-52,900), 8 KiB 55,300 (10 runs, 47,500-61,200),
// 16 KiB 54,400 (5 runs), 1 KiB 29,300-33,500 (2 runs); BenchmarkRebuild/new_file 65,100
// -> 69,300 (3 runs each). SQLite applies it only to a file that has no table yet (and
// never changes it in WAL mode), so files created before keep their 4 KiB pages and work
// as before.
const pageSizeParam = "&_pragma=page_size(8192)"

// buildParams configure the writing connection of a file that a rebuild (or Verify) builds
// from scratch and nobody reads until it is complete: a crash or an error only restarts the
// build from an empty file, so it needs neither a journal (no rollback: a failed batch fails
// the whole build) nor fsyncs. The 128 MiB cache holds the accounts, top-ups and the end of
// the movements table; temp_store=MEMORY also keeps the sort of the index built at the end
// off the disk.
const buildParams = "_txlock=immediate&_journal_mode=OFF&_synchronous=OFF" + pageSizeParam +
	"&_pragma=cache_size(-131072)&_pragma=temp_store(MEMORY)"

// DB is the read-model store: one SQLite file in WAL mode. One process writes it (the
// Projector in ledgerd, or Rebuild); any number read it, also from other processes.
type DB struct {
	path string
	// w is the single writing connection (nil when read-only). SQLite has one writer at a
	// time anyway; one connection keeps the prepared statements hot and makes transactions
	// in this process queue in Go instead of spinning on SQLITE_BUSY.
	w *sql.DB
	// r serves queries. Its connections are query-only, so no read can take the write lock.
	r *sql.DB
	// stmts are the writer's prepared statements.
	stmts *writeStmts
	// writeMu serialises writers in this process and guards cache.
	writeMu sync.Mutex
	cache   accountCache
}

// Open opens (creating if needed) the read-model database at path for reading and writing,
// in WAL mode. The file normally lives at {data-dir}/readmodels.db.
func Open(path string) (*DB, error) {
	return open(path, writerParams, schema)
}

// openBuild creates a read-model file for a build (see buildParams) with the tables but not
// the movements index, which finishBuild adds once the rows are in: building the index from
// sorted rows once is several times cheaper than keeping it up to date on every insert, and
// nothing reads movements during the build (Apply reads only accounts and top-ups).
func openBuild(path string) (*DB, error) {
	return open(path, buildParams, schemaTables)
}

// finishBuild creates what openBuild left out, so that the file has the whole schema. The
// UNIQUE index fails here if the build wrote a movement twice, as an insert would have.
func (db *DB) finishBuild(ctx context.Context) error {
	if _, err := db.w.ExecContext(ctx, schemaIndexes); err != nil {
		return fmt.Errorf("create indexes of %s: %w", db.path, err)
	}
	return nil
}

func open(path, params, schemaSQL string) (*DB, error) {
	w, err := openPool(path, params, 1)
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, w: w}
	if err := db.migrate(schemaSQL); err != nil {
		w.Close()
		return nil, err
	}
	if db.r, err = openPool(path, "_query_only=1", readConnsMax); err != nil {
		w.Close()
		return nil, err
	}
	if db.stmts, err = prepareWrites(w); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// OpenReadOnly opens an existing read-model database for queries only: the auditor CLI uses
// it while ledgerd writes the same file (WAL lets readers and the writer work at once).
func OpenReadOnly(path string) (*DB, error) {
	r, err := openPool(path, "mode=ro", readConnsMax)
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, r: r}
	var v int
	if err := r.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		r.Close()
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	if v != schemaVersion {
		r.Close()
		return nil, fmt.Errorf("open read models %s: schema version %d, want %d (run ledgerctl rebuild?)", path, v, schemaVersion)
	}
	return db, nil
}

// openPool opens a connection pool on path with the given DSN parameters and checks that
// the file can be read.
func openPool(path, params string, connsMax int) (*sql.DB, error) {
	dsn := fmt.Sprintf("file:%s?_busy_timeout=%d&%s", escapePath(path), busyTimeout.Milliseconds(), params)
	p, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	p.SetMaxOpenConns(connsMax)
	p.SetMaxIdleConns(connsMax)
	if err := p.Ping(); err != nil {
		p.Close()
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	return p, nil
}

// escapePath makes a file path safe inside a "file:" URI, where '?' starts the parameters,
// '#' a fragment and '%' an escape.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// migrate creates the schema, or checks that an existing file has the current one.
func (db *DB) migrate(schema string) error {
	var v int
	if err := db.w.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version of %s: %w", db.path, err)
	}
	if v > schemaVersion {
		return fmt.Errorf("read models %s have schema version %d, newer than this program's %d", db.path, v, schemaVersion)
	}
	if _, err := db.w.Exec(schema); err != nil {
		return fmt.Errorf("create read-model schema in %s: %w", db.path, err)
	}
	if _, err := db.w.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("set schema version of %s: %w", db.path, err)
	}
	return nil
}

// Path is the file the DB was opened on.
func (db *DB) Path() string { return db.path }

// Close closes the database. The last connection to close checkpoints the WAL into the
// main file.
func (db *DB) Close() error {
	var errs []error
	if db.stmts != nil {
		errs = append(errs, db.stmts.close())
	}
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	return errors.Join(errs...)
}

// Checkpoint is the store Position of the last event applied (0 for an empty read model).
func (db *DB) Checkpoint(ctx context.Context) (uint64, error) {
	return readCheckpoint(ctx, db.r)
}

// queryer is what both *sql.DB and *sql.Tx offer for reads.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readCheckpoint(ctx context.Context, q queryer) (uint64, error) {
	var p int64
	if err := q.QueryRowContext(ctx, "SELECT position FROM checkpoint WHERE id = 1").Scan(&p); err != nil {
		return 0, fmt.Errorf("read checkpoint: %w", err)
	}
	return uint64(p), nil
}

// errReadOnly is returned by writes on a DB opened with OpenReadOnly.
var errReadOnly = errors.New("read models opened read-only")

// nanos stores a time as Unix nanoseconds; the zero time is NULL.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// fromNanos reads a time stored by nanos, in UTC.
func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}
