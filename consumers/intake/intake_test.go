package intake

import (
	"context"
	"fmt"
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
