package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/telephony/creditledger/events"
)

// rebuildBatchMax is how many events the store reader hands over at a time during a rebuild
// (a variable for tests).
var rebuildBatchMax = 5000

// Rebuild recomputes the read models at path from every event in the store and swaps them
// in, with progress(done, total) called as it goes (store positions: the last one applied and
// the store's head when the rebuild began; for JetStream both count events). It works while
// ledgerd runs and keeps projecting into the same file.
//
// How: the events are first applied into a new file next to path (path + ".rebuild"), with no
// lock on the live file. Then, in one write transaction on the live file, its rows are
// replaced by the new ones (INSERT ... SELECT from the attached new file) and the events
// appended meanwhile are applied on top, up to the store's end, before the commit. Readers
// see the old read models until the commit and the new ones after it, never a mix; the live
// Projector is only held off for the swap (it waits on the lock, or retries), then finds the
// checkpoint at or past its own and carries on without a gap or a double count.
//
// Renaming the new file over the old one instead would be unsafe while ledgerd has the old
// one open: its WAL and shared-memory files belong to the old file, and its connections would
// keep writing to an unlinked inode.
func Rebuild(ctx context.Context, store events.Store, path string, progress func(done, total uint64)) error {
	if progress == nil {
		progress = func(done, total uint64) {}
	}
	head, err := store.Head(ctx)
	if err != nil {
		return fmt.Errorf("rebuild: store head: %w", err)
	}
	fresh := path + ".rebuild"
	removeDB(fresh)
	defer removeDB(fresh)
	if err := build(ctx, store, fresh, 0, func(done uint64) { progress(done, max(head, done)) }); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	live, err := Open(path)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	defer live.Close()
	last, err := live.swapIn(ctx, store, fresh)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	progress(last, max(head, last))
	return nil
}

// build creates a read-model file at path from the store's events up to position until
// (0: up to the store's end), reporting the position applied after each batch.
func build(ctx context.Context, store events.Store, path string, until uint64, progress func(done uint64)) error {
	db, err := openBuild(path)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.bulkApply(ctx, store, 0, until, progress); err != nil {
		return err
	}
	if err := db.finishBuild(ctx); err != nil {
		return err
	}
	// Without a journal every commit went straight into the main file, which is complete on
	// its own once closed.
	return db.Close()
}

// buildTxEvents is how many events one transaction of a build applies. Each transaction
// writes every account it touched once, at its end: with 10,000 accounts, transactions of
// 5,000 events wrote about 4,000 account rows each, nearly one per event; 100,000 events
// write each busy account once. The batch's memory is one state per account touched (the
// events themselves are not kept), so it does not grow with the transaction.
// A variable for tests.
var buildTxEvents = 100_000

// bulkApply applies the store's events after position after and up to until (0: up to the
// store's end as it is now), in transactions of about buildTxEvents that each store the
// checkpoint with the rows, as Apply does. It is for a file nobody else writes (a build):
// progress reports events applied but possibly not yet committed.
func (db *DB) bulkApply(ctx context.Context, store events.Store, after, until uint64, progress func(done uint64)) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var (
		tx      *sql.Tx
		b       *batch
		cp      uint64 // the checkpoint tx started from
		last    uint64 // the last position applied in tx
		pending int    // events read into tx
	)
	rollback := func() {
		if tx != nil {
			b.close()
			tx.Rollback()
		}
	}
	defer func() { rollback() }()
	commit := func() error {
		if err := b.finish(cp, last); err != nil {
			return err
		}
		b.close()
		t := tx
		tx = nil
		if err := t.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		db.cache.keep(b.order, last)
		return nil
	}
	err := readBatches(ctx, store, after, until, func(evs []events.Envelope) error {
		if tx == nil {
			var err error
			if tx, err = db.w.BeginTx(ctx, nil); err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			if cp, err = readCheckpoint(ctx, tx); err != nil {
				tx.Rollback()
				tx = nil
				return err
			}
			b, last, pending = newBatch(ctx, tx, db.stmts, db.cache.valid(cp)), cp, 0
		}
		var err error
		if last, err = b.applyAll(last, evs); err != nil {
			return err
		}
		if pending += len(evs); pending >= buildTxEvents {
			if err := commit(); err != nil {
				return err
			}
		}
		progress(evs[len(evs)-1].Position)
		return nil
	})
	if err != nil {
		return err
	}
	if tx != nil {
		return commit()
	}
	return nil
}

// readBatches calls fn with the store's events after position after, up to until (0: to the
// end), in batches of at most rebuildBatchMax. The store is read in a goroutine of its own
// while fn applies the previous batch, so reading and writing overlap (two cores: one decodes,
// one writes SQLite).
func readBatches(ctx context.Context, store events.Store, after, until uint64, fn func([]events.Envelope) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []events.Envelope, 2)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		readErr <- readInto(ctx, store, after, until, batches)
	}()
	for b := range batches {
		if err := fn(b); err != nil {
			cancel()
			for range batches { // let the reader end
			}
			return err
		}
	}
	return <-readErr
}

// readInto sends the store's events after position after (up to until, 0: to the end) to
// out in batches of at most rebuildBatchMax.
func readInto(ctx context.Context, store events.Store, after, until uint64, out chan<- []events.Envelope) error {
	send := func(b []events.Envelope) error {
		select {
		case out <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	batch := make([]events.Envelope, 0, rebuildBatchMax)
	err := store.ReadAll(ctx, after, func(e events.Envelope) error {
		if until != 0 && e.Position > until {
			return events.ErrStopped
		}
		batch = append(batch, e)
		if len(batch) < rebuildBatchMax {
			return nil
		}
		full := batch
		batch = make([]events.Envelope, 0, rebuildBatchMax)
		return send(full)
	})
	if err != nil && !errors.Is(err, events.ErrStopped) {
		return fmt.Errorf("read events after %d: %w", after, err)
	}
	if len(batch) > 0 {
		return send(batch)
	}
	return nil
}

// readModelTables are the tables a swap replaces (the checkpoint is set apart), with their
// columns and the order to copy them in when the two files' tables differ (see
// copyStatement): movements in index order, so that both the table and its index are
// written sequentially.
var readModelTables = []struct{ name, columns, order string }{
	{"accounts", accountColumns, "account_id"},
	{"movements", movementColumns, "account_id, version"},
	{"top_ups", topUpColumns, "account_id, top_up_id"},
}

// swapIn replaces the contents of db with those of the read-model file at fresh and applies
// the store's events after its checkpoint, all in one transaction. It returns the final
// checkpoint.
func (db *DB) swapIn(ctx context.Context, store events.Store, fresh string) (uint64, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	// The cache describes the old contents; whatever the checkpoints say, forget it.
	db.cache.drop()
	defer db.cache.drop()
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	// ATTACH cannot run inside a transaction, and DETACH must follow the commit.
	if _, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS fresh", "file:"+escapePath(fresh)+"?mode=ro"); err != nil {
		return 0, fmt.Errorf("attach %s: %w", fresh, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DETACH DATABASE fresh")
	// The copy reads the fresh movements in index order, so the table's pages in rowid order
	// are visited at random: through the default page cache that was a pread per row (a
	// quarter of the swap's time); mapped, it is a memory access. (SQLite caps the map at its
	// compile-time maximum, 2 GiB by default; the pages beyond are read as before.)
	if _, err := conn.ExecContext(ctx, "PRAGMA fresh.mmap_size = 4294967296"); err != nil {
		return 0, fmt.Errorf("map %s: %w", fresh, err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("swap: begin: %w", err)
	}
	defer tx.Rollback()
	for _, t := range readModelTables {
		if _, err := tx.ExecContext(ctx, "DELETE FROM main."+t.name); err != nil {
			return 0, fmt.Errorf("swap: clear %s: %w", t.name, err)
		}
		copySQL, err := copyStatement(ctx, tx, t.name, t.columns, t.order)
		if err != nil {
			return 0, fmt.Errorf("swap: copy %s: %w", t.name, err)
		}
		if _, err := tx.ExecContext(ctx, copySQL); err != nil {
			return 0, fmt.Errorf("swap: copy %s: %w", t.name, err)
		}
	}
	var fresh64 int64
	if err := tx.QueryRowContext(ctx, "SELECT position FROM fresh.checkpoint WHERE id = 1").Scan(&fresh64); err != nil {
		return 0, fmt.Errorf("swap: read checkpoint of %s: %w", fresh, err)
	}
	cp := uint64(fresh64)
	if _, err := tx.ExecContext(ctx, writeSQL[stmtSetCheckpoint], int64(cp)); err != nil {
		return 0, fmt.Errorf("swap: set checkpoint: %w", err)
	}
	// Catch up inside the transaction: the events appended since the fresh file was built
	// land in the same commit, so the checkpoint is at or past the live Projector's.
	err = readBatches(ctx, store, cp, 0, func(evs []events.Envelope) error {
		_, last, err := db.applyTx(ctx, tx, cp, evs)
		cp = last
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("swap: catch up: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("swap: commit: %w", err)
	}
	return cp, nil
}

// copyStatement is the statement that copies table from the attached fresh file into the
// emptied live one. When both files define the table with the same text (always, unless
// the live file was created by another version of the schema) it is
// "INSERT OR FAIL INTO main.t SELECT * FROM fresh.t": SQLite's transfer optimisation copies
// the stored records of the table and of each index as they are, in their own order,
// without decoding a row or looking anything up, where the column-by-column copy decoded
// every row, re-encoded it and sorted through the index. Otherwise the columns are named,
// so that a different column order cannot shift values.
//
// Both are INSERT OR FAIL, as the movement inserts are (see stmtInsertMovement). With the
// default ABORT, SQLite keeps a statement journal to undo the copy alone, and the copy
// writes into the pages the DELETE before it freed, so the journal held the old content
// of every one of them (in memory: temp_store=MEMORY): at 1,000,000 movements, two
// interleaved pairs, the rebuild ran at 82,102 and 81,807 ev/s (19.7 and 19.6 µs of CPU
// per event) with it and 95,573 and 98,712 (16.8 and 16.4 µs) without. Nothing needs the
// copy undone alone: swapIn rolls back the whole transaction on any error, and the
// emptied table cannot hold a row the copy would collide with.
func copyStatement(ctx context.Context, tx *sql.Tx, table, columns, order string) (string, error) {
	var live, fresh sql.NullString
	const q = "SELECT sql FROM %s.sqlite_schema WHERE type = 'table' AND name = ?"
	if err := tx.QueryRowContext(ctx, fmt.Sprintf(q, "main"), table).Scan(&live); err != nil {
		return "", err
	}
	if err := tx.QueryRowContext(ctx, fmt.Sprintf(q, "fresh"), table).Scan(&fresh); err != nil {
		return "", err
	}
	if live.Valid && live == fresh {
		return fmt.Sprintf("INSERT OR FAIL INTO main.%s SELECT * FROM fresh.%s", table, table), nil
	}
	return fmt.Sprintf("INSERT OR FAIL INTO main.%s (%s) SELECT %s FROM fresh.%s ORDER BY %s", table, columns, columns, table, order), nil
}

// removeDB deletes a database file with its WAL and shared-memory files.
func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}
