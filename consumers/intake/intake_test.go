package intake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func openTest(t *testing.T) *DB {
	db, err := Open(filepath.Join(t.TempDir(), "intake.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRejectionsAreKeptOnceAndListedNewestFirst(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var rs []Rejection
	for seq := uint64(1); seq <= 5; seq++ {
		account := []string{"acme", "globex"}[seq%2]
		rs = append(rs, Rejection{ID: RejectionID(seq), Seq: seq, ReceivedAt: at, Subject: "usage." + account, AccountID: account,
			Reason: "malformed_json", Message: "not JSON", Payload: []byte(fmt.Sprintf("garbage %d \xff", seq))})
	}
	if err := db.AddRejections(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := db.AddRejections(ctx, rs[:2]); err != nil { // a redelivery of the same messages
		t.Fatal(err)
	}
	all, err := db.Rejections(ctx, "", 100)
	if err != nil || len(all) != 5 || all[0].Seq != 5 || all[4].Seq != 1 {
		t.Fatalf("listing: %d rejections, %v", len(all), err)
	}
	if string(all[4].Payload) != "garbage 1 \xff" || all[4].Status != RejectionOpen || !all[4].ReceivedAt.Equal(at) {
		t.Fatalf("rejection not kept as received: %+v", all[4])
	}
	acme, _ := db.Rejections(ctx, "acme", 100)
	if len(acme) != 2 {
		t.Fatalf("acme has %d rejections, want 2", len(acme))
	}
	if page, _ := db.Rejections(ctx, "", 2); len(page) != 2 {
		t.Fatalf("limit 2 gave %d", len(page))
	}
	if err := db.UpdateRejection(ctx, RejectionID(3), RejectionResolved, "malformed_json", "charged on retry", at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r, ok, err := db.Rejection(ctx, RejectionID(3))
	if err != nil || !ok || r.Status != RejectionResolved || !r.UpdatedAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("after update: %+v %v %v", r, ok, err)
	}
	if _, ok, _ := db.Rejection(ctx, "rej-404"); ok {
		t.Fatal("an unknown rejection was found")
	}
	if n, _ := db.CountRejections(ctx, RejectionOpen); n != 4 {
		t.Fatalf("%d open rejections, want 4", n)
	}
}

func TestUsageIndexRoundTripAndCheckpoint(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	k := UsageKey{AccountID: "acme", UsageID: "call-1"}
	u := IndexedUsage{UsageKey: k, ContentHash: "h1", Amount: decimal.RequireFromString("0.4200"), Position: 7}
	if err := db.PutUsages(ctx, []IndexedUsage{u}); err != nil {
		t.Fatal(err)
	}
	// Re-indexing (the catch-up after a crash) changes nothing, even with another hash.
	if err := db.PutUsages(ctx, []IndexedUsage{{UsageKey: k, ContentHash: "h2", Amount: decimal.NewFromInt(9), Position: 8}}); err != nil {
		t.Fatal(err)
	}
	found, err := db.LookupUsages(ctx, []UsageKey{k, {AccountID: "acme", UsageID: "call-2"}, {AccountID: "other", UsageID: "call-1"}})
	if err != nil || len(found) != 1 {
		t.Fatalf("lookup: %v, %v", found, err)
	}
	if got := found[k]; got.ContentHash != "h1" || !got.Amount.Equal(decimal.RequireFromString("0.42")) || got.Position != 7 {
		t.Fatalf("indexed usage %+v", got)
	}
	if cp, _ := db.Checkpoint(ctx); cp != 0 {
		t.Fatalf("checkpoint of a new index %d", cp)
	}
	if err := db.SetCheckpoint(ctx, 42); err != nil {
		t.Fatal(err)
	}
	if cp, _ := db.Checkpoint(ctx); cp != 42 {
		t.Fatalf("checkpoint %d, want 42", cp)
	}
}

// The usage index in its Pebble store: put, look up, close, reopen; a re-index keeps
// the first content; a write after Close says ErrClosed.
func TestUsageIndexSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "intake.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	usages := []IndexedUsage{
		// A hash as ledger.ParseUsage writes it (kept as 16 raw bytes) and one that is not.
		{UsageKey: UsageKey{AccountID: "acme", UsageID: "call-1"}, ContentHash: "00ff3c9a1b2c3d4e5f60718293a4b5c6", Amount: decimal.RequireFromString("0.0042"), Position: 3},
		{UsageKey: UsageKey{AccountID: "acme", UsageID: "call-2"}, ContentHash: "00FF3C9A1B2C3D4E5F60718293A4B5C6", Amount: decimal.RequireFromString("-1.5"), Position: 4},
		// Ids that a naive concatenation would confuse with acme/call-1.
		{UsageKey: UsageKey{AccountID: "acmec", UsageID: "all-1"}, ContentHash: "sha256:abc", Amount: decimal.NewFromInt(12), Position: 1 << 40},
		{UsageKey: UsageKey{AccountID: "", UsageID: ""}, ContentHash: "", Amount: decimal.Zero, Position: 0},
	}
	if err := db.PutUsages(ctx, usages); err != nil {
		t.Fatal(err)
	}
	changed := usages[0]
	changed.ContentHash, changed.Amount, changed.Position = "other", decimal.NewFromInt(99), 50
	if err := db.PutUsages(ctx, []IndexedUsage{changed, changed}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetCheckpoint(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.PutUsages(ctx, usages); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after Close: %v, want ErrClosed", err)
	}
	if _, err := db.LookupUsages(ctx, []UsageKey{usages[0].UsageKey}); !errors.Is(err, ErrClosed) {
		t.Fatalf("lookup after Close: %v, want ErrClosed", err)
	}
	if err := db.SetCheckpoint(ctx, 5); !errors.Is(err, ErrClosed) {
		t.Fatalf("checkpoint after Close: %v, want ErrClosed", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys := []UsageKey{{AccountID: "acme", UsageID: "call-3"}, {AccountID: "acm", UsageID: "ecall-1"}}
	for _, u := range usages {
		keys = append(keys, u.UsageKey)
	}
	found, err := db.LookupUsages(ctx, keys)
	if err != nil || len(found) != len(usages) {
		t.Fatalf("lookup after reopen: %d found, %v", len(found), err)
	}
	for _, want := range usages {
		got := found[want.UsageKey]
		if got.UsageKey != want.UsageKey || got.ContentHash != want.ContentHash || !got.Amount.Equal(want.Amount) || got.Position != want.Position {
			t.Errorf("indexed %+v, want %+v", got, want)
		}
	}
	if cp, err := db.Checkpoint(ctx); cp != 4 || err != nil {
		t.Fatalf("checkpoint after reopen %d, %v; want 4", cp, err)
	}
}

// The checkpoint lives with the index: an index directory that is gone (deleted, a
// lost disk, or the first start after the index moved out of intake.db) reports 0, so
// the writer re-indexes the whole stream, whatever intake.db still holds.
func TestUsageIndexWithoutItsDirectoryStartsAtZero(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "intake.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	u := IndexedUsage{UsageKey: UsageKey{AccountID: "acme", UsageID: "call-1"}, ContentHash: "h1", Amount: decimal.NewFromInt(1), Position: 1}
	if err := db.PutUsages(ctx, []IndexedUsage{u}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetCheckpoint(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if err := db.SetNamedCheckpoint(ctx, AlertsCheckpointName, 7); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(indexDir(path)); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if cp, err := db.Checkpoint(ctx); cp != 0 || err != nil {
		t.Fatalf("checkpoint of a fresh index %d, %v; want 0", cp, err)
	}
	if found, _ := db.LookupUsages(ctx, []UsageKey{u.UsageKey}); len(found) != 0 {
		t.Fatalf("a fresh index holds %v", found)
	}
	if cp, _ := db.NamedCheckpoint(ctx, AlertsCheckpointName); cp != 7 {
		t.Fatalf("alerts checkpoint %d, want 7: it stays in intake.db", cp)
	}
}

// An intake.db from before the move (usage_index table and its checkpoint row in
// SQLite) opens with a fresh index at checkpoint 0, and the old table is gone.
func TestOldUsageIndexTableIsDropped(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "intake.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = old.Exec(`
		CREATE TABLE usage_index (account_id TEXT NOT NULL, usage_id TEXT NOT NULL, content_hash TEXT NOT NULL,
			amount TEXT NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (account_id, usage_id)) WITHOUT ROWID;
		CREATE TABLE checkpoint (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
		INSERT INTO usage_index VALUES ('acme', 'call-1', 'h1', '1', 1);
		INSERT INTO checkpoint VALUES ('usage_index', 9), ('alerts', 7);`)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if cp, err := db.Checkpoint(ctx); cp != 0 || err != nil {
		t.Fatalf("checkpoint %d, %v; want 0", cp, err)
	}
	if cp, _ := db.NamedCheckpoint(ctx, AlertsCheckpointName); cp != 7 {
		t.Fatalf("alerts checkpoint %d, want 7", cp)
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'usage_index'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("usage_index table still there (%d, %v)", n, err)
	}
	if cp, _ := db.NamedCheckpoint(ctx, "usage_index"); cp != 0 {
		t.Fatalf("old usage index checkpoint row kept: %d", cp)
	}
}
