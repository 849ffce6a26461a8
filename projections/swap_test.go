package projections

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/telephony/creditledger/events"
)

// TestFailedSwapLeavesTheLiveReadModels makes a rebuild fail inside its swap, after every
// table of the live file was emptied and copied from the new one (the catch-up read that
// follows fails), and checks that the live read models are exactly as they were, damage
// included: the copy (INSERT OR FAIL, so without a statement journal of its own) is undone
// with the swap's transaction, never left half done.
func TestFailedSwapLeavesTheLiveReadModels(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	h := newHistory()
	appendAll(t, s, workload(h, []string{"a", "b", "c"}, 400))
	db := openTest(t)
	if err := Rebuild(ctx, s, db.Path(), nil); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `UPDATE accounts SET balance = '-1' WHERE account_id = 'a'`)
	mustExec(t, db, `DELETE FROM movements WHERE account_id = 'c' AND version = 6`)
	before := liveState(t, db, s)
	if len(before.diffs) == 0 {
		t.Fatal("Verify finds no difference in the damaged read models")
	}

	// The build reads the store once; the second read is the swap's catch-up.
	failing := &readsThatFail{Store: s, okReads: 1}
	err := Rebuild(ctx, failing, db.Path(), nil)
	if !errors.Is(err, errReadFailed) {
		t.Fatalf("Rebuild = %v, want the failed catch-up read", err)
	}
	if n := failing.reads.Load(); n != 2 {
		t.Fatalf("the store was read %d times, want 2 (the build, then the swap's catch-up)", n)
	}
	if after := liveState(t, db, s); after != before {
		t.Errorf("after a failed swap the live read models changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

// readModelState is what a failed swap must leave unchanged.
type readModelState struct {
	diffs                       string // Verify's differences against the store
	accounts, movements, topUps int
	checkpoint                  uint64
}

func liveState(t *testing.T, db *DB, s events.Store) readModelState {
	t.Helper()
	ctx := context.Background()
	diffs, err := Verify(ctx, s, db)
	if err != nil {
		t.Fatal(err)
	}
	st := readModelState{diffs: fmt.Sprint(diffs)}
	if err := db.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM movements), (SELECT count(*) FROM top_ups)`).
		Scan(&st.accounts, &st.movements, &st.topUps); err != nil {
		t.Fatal(err)
	}
	if st.checkpoint, err = db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

var errReadFailed = errors.New("test: the store read failed")

// readsThatFail is a store whose ReadAll works okReads times, then fails.
type readsThatFail struct {
	events.Store
	okReads int32
	reads   atomic.Int32
}

func (f *readsThatFail) ReadAll(ctx context.Context, after uint64, fn func(events.Envelope) error) error {
	if f.reads.Add(1) > f.okReads {
		return errReadFailed
	}
	return f.Store.ReadAll(ctx, after, fn)
}
