package projections

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/jetstream"
	"github.com/telephony/creditledger/ledger"
	"go.uber.org/zap/zaptest"
)

// testStore is a real JetStream-backed store on an embedded server.
func testStore(t *testing.T) events.Store {
	t.Helper()
	_, nc := jetstream.RunTestServer(t)
	s, err := jetstream.New(context.Background(), nc, jetstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendAll appends evs to the store and returns the last Position.
func appendAll(t *testing.T, s events.Store, evs []events.Envelope) uint64 {
	t.Helper()
	for i, err := range s.Append(context.Background(), evs) {
		if err != nil {
			t.Fatalf("append %s v%d: %v", evs[i].AccountID, evs[i].Version, err)
		}
	}
	return evs[len(evs)-1].Position
}

// runProjector runs a Projector until the test ends (or stop is called).
func runProjector(t *testing.T, db *DB, s events.Store) (p *Projector, stop func()) {
	t.Helper()
	p = NewProjector(db, s, zaptest.NewLogger(t), ProjectorOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v, want nil after cancel", err)
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

func waitFor(t *testing.T, p *Projector, pos uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitFor(ctx, pos); err != nil {
		t.Fatal(err)
	}
}

// workload is n events over a few accounts: openings, usage, top-ups, adjustments.
func workload(h *history, accounts []string, n int) []events.Envelope {
	var evs []events.Envelope
	for _, a := range accounts {
		if h.versions[a] == 0 {
			evs = append(evs, h.open(a, "10"))
		}
	}
	for i := 0; len(evs) < n; i++ {
		a := accounts[i%len(accounts)]
		switch i % 10 {
		case 3:
			evs = append(evs, h.topUp(a, fmt.Sprintf("tu-%d", h.pos), events.TopUpOneTime, "25")...)
		case 7:
			evs = append(evs, h.adjust(a, fmt.Sprintf("adj-%d", h.pos), "0.5"))
		default:
			evs = append(evs, h.usage(a, fmt.Sprintf("u-%d", h.pos), "1.25"))
		}
	}
	return evs
}

func TestProjectorFollowsTheStore(t *testing.T) {
	s := testStore(t)
	db := openTest(t)
	h := newHistory()
	accounts := []string{"acme", "globex", "initech"}
	first := appendAll(t, s, workload(h, accounts, 300))

	p, stop := runProjector(t, db, s)
	waitFor(t, p, first)
	// Events appended while it runs arrive too, and the lag goes back to 0.
	last := appendAll(t, s, workload(h, accounts, 200))
	waitFor(t, p, last)
	if lag, err := p.Lag(context.Background()); err != nil || lag != 0 {
		t.Errorf("Lag = %d, %v; want 0", lag, err)
	}
	if err := p.CaughtUp(context.Background(), time.Second); err != nil {
		t.Errorf("CaughtUp = %v", err)
	}
	stop()

	// A restart resumes from the checkpoint: new events only, nothing twice.
	last = appendAll(t, s, workload(h, accounts, 100))
	p2, _ := runProjector(t, db, s)
	waitFor(t, p2, last)
	assertMatchesStore(t, db, s)
}

// assertMatchesStore checks balances and movement counts against a replay of the store
// through the domain's own Evolve.
func assertMatchesStore(t *testing.T, db *DB, s events.Store) {
	t.Helper()
	ctx := context.Background()
	want := map[string]*ledger.Account{}
	moves := map[string]int{}
	err := s.ReadAll(ctx, 0, func(e events.Envelope) error {
		a := want[e.AccountID]
		if a == nil {
			a = ledger.NewAccount(e.AccountID)
			want[e.AccountID] = a
		}
		ledger.Evolve(a, e)
		switch e.Data.(type) {
		case events.UsageCharged, events.AdjustmentApplied, events.TopUpSucceeded:
			moves[e.AccountID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, w := range want {
		got := mustAccount(t, db, id)
		if !got.Balance.Equal(w.Balance) || got.Version != w.Version {
			t.Errorf("account %s: balance %s v%d, store says %s v%d", id, got.Balance, got.Version, w.Balance, w.Version)
		}
		ms := allMovements(t, db, id, MovementFilter{})
		if len(ms) != moves[id] || !ms[len(ms)-1].BalanceAfter.Equal(w.Balance) {
			t.Errorf("account %s: %d movements, store has %d", id, len(ms), moves[id])
		}
	}
}

// TestProjectorAfterCheckpointLoss replays what a crash anywhere looks like at worst: the
// read model holds rows that its checkpoint does not cover, and everything is delivered again.
func TestProjectorAfterCheckpointLoss(t *testing.T) {
	s := testStore(t)
	db := openTest(t)
	h := newHistory()
	last := appendAll(t, s, workload(h, []string{"a", "b"}, 400))
	p, stop := runProjector(t, db, s)
	waitFor(t, p, last)
	stop()
	before := takeSnapshot(t, db)
	if _, err := db.w.Exec(`UPDATE checkpoint SET position = 0`); err != nil {
		t.Fatal(err)
	}
	db.cache.drop()
	p2, _ := runProjector(t, db, s)
	waitFor(t, p2, last)
	if d := takeSnapshot(t, db).diff(before); d != "" {
		t.Errorf("re-delivery changed the read models: %s", d)
	}
}

func TestVerify(t *testing.T) {
	s := testStore(t)
	db := openTest(t)
	h := newHistory()
	ctx := context.Background()
	last := appendAll(t, s, flat(workload(h, []string{"acme", "globex"}, 200),
		[]events.Envelope{h.ev("acme", events.TopUpRequested{TopUpID: "tu-p", Kind: events.TopUpOneTime, Amount: dec("5")})}))
	p, _ := runProjector(t, db, s)
	waitFor(t, p, last)

	diffs, err := Verify(ctx, s, db)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("Verify of an intact read model = %v, %v; want no differences", diffs, err)
	}
	// Amounts are compared as decimals: the same number written differently is no difference.
	mustExec(t, db, `UPDATE accounts SET balance = balance || '.000' WHERE account_id = 'globex' AND balance NOT LIKE '%.%'`)
	mustExec(t, db, `UPDATE accounts SET balance = balance || '000' WHERE account_id = 'globex' AND balance LIKE '%.%'`)
	if diffs, err := Verify(ctx, s, db); err != nil || len(diffs) != 0 {
		t.Fatalf("Verify after rewriting a balance with trailing zeros = %v, %v", diffs, err)
	}

	acme := mustAccount(t, db, "acme")
	mustExec(t, db, `UPDATE accounts SET balance = '999' WHERE account_id = 'acme'`)
	mustExec(t, db, `DELETE FROM movements WHERE account_id = 'globex' AND version = 5`)
	mustExec(t, db, `UPDATE top_ups SET state = 'succeeded' WHERE top_up_id = 'tu-p'`)
	mustExec(t, db, `UPDATE movements SET version = 9999 WHERE account_id = 'acme' AND version = 2`)
	diffs, err = Verify(ctx, s, db)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range diffs {
		got = append(got, d.String())
	}
	want := []string{
		"account acme: balance live 999 rebuilt " + acme.Balance.String(),
		"movement acme v2: missing from the live read models",
		"movement acme v9999: in the live read models but not in the event store",
		"movement globex v5: missing from the live read models",
		"top-up acme/tu-p: state live succeeded rebuilt pending",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("differences:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func mustExec(t *testing.T, db *DB, q string) {
	t.Helper()
	if _, err := db.w.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestVerifyWhileProjecting runs Verify on a read-only handle, as ledgerctl does, while the
// projector keeps applying new events to the same file.
func TestVerifyWhileProjecting(t *testing.T) {
	s := testStore(t)
	db := openTest(t)
	h := newHistory()
	accounts := []string{"a", "b", "c", "d"}
	last := appendAll(t, s, workload(h, accounts, 500))
	p, _ := runProjector(t, db, s)
	waitFor(t, p, last)

	ro, err := OpenReadOnly(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writing := make(chan uint64)
	go func() {
		var pos uint64
		defer func() { writing <- pos }()
		for ctx.Err() == nil {
			evs := workload(h, accounts, 10)
			for i, err := range s.Append(ctx, evs) {
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("append %d: %v", i, err)
					}
					return
				}
			}
			pos = evs[len(evs)-1].Position
			time.Sleep(5 * time.Millisecond) // a steady trickle, not a flood the race detector cannot follow
		}
	}()
	for i := 0; i < 2; i++ {
		diffs, err := Verify(context.Background(), s, ro)
		if err != nil || len(diffs) != 0 {
			t.Fatalf("Verify while projecting = %v, %v", diffs, err)
		}
	}
	cancel()
	waitFor(t, p, <-writing)
}

// TestRebuildWhileProjecting rebuilds the file the projector is writing, with events still
// arriving, and checks that the result is exactly what the store says.
func TestRebuildWhileProjecting(t *testing.T) {
	s := testStore(t)
	db := openTest(t)
	h := newHistory()
	accounts := []string{"a", "b", "c"}
	last := appendAll(t, s, workload(h, accounts, 600))
	p, _ := runProjector(t, db, s)
	waitFor(t, p, last)
	mustExec(t, db, `UPDATE accounts SET balance = '-1' WHERE account_id = 'a'`) // damage a rebuild must repair

	ctx, cancel := context.WithCancel(context.Background())
	writing := make(chan uint64)
	go func() {
		var pos uint64
		defer func() { writing <- pos }()
		for ctx.Err() == nil {
			evs := workload(h, accounts, 10)
			for _, err := range s.Append(ctx, evs) {
				if err != nil {
					return
				}
			}
			pos = evs[len(evs)-1].Position
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var calls int
	var done, total uint64
	err := Rebuild(context.Background(), s, db.Path(), func(d, tot uint64) { calls, done, total = calls+1, d, tot })
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || done < last || done > total {
		t.Errorf("progress: %d calls, last (%d of %d), want to reach %d", calls, done, total, last)
	}
	<-writing
	// Wait for the store's head rather than the writer's last position: the cancel can end
	// an Append half way, with some of its events stored and no position returned (this
	// made the test fail about 1 run in 15, before and after the swap's transfer copy).
	head, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, head)
	assertMatchesStore(t, db, s)
	if diffs, err := Verify(context.Background(), s, db); err != nil || len(diffs) != 0 {
		t.Errorf("Verify after rebuild = %v, %v", diffs, err)
	}
}

func TestRebuildNewFile(t *testing.T) {
	s := testStore(t)
	h := newHistory()
	appendAll(t, s, workload(h, []string{"a", "b"}, 500))
	db := rebuildNew(t, s)
	assertMatchesStore(t, db, s)
	head, err := s.Head(context.Background())
	if cp, _ := db.Checkpoint(context.Background()); err != nil || cp != head {
		t.Errorf("checkpoint %d, want the store head %d (%v)", cp, head, err)
	}
}

// TestRebuildIntoOtherColumnOrder rebuilds into a live file whose movements table declares
// its columns in another order than the fresh file's: the swap must then copy by column
// name, not with the SELECT * of the transfer optimisation, which would shift values.
func TestRebuildIntoOtherColumnOrder(t *testing.T) {
	s := testStore(t)
	db := openTest(t)
	h := newHistory()
	appendAll(t, s, workload(h, []string{"a", "b"}, 300))
	for _, q := range []string{
		"DROP TABLE movements",
		"CREATE TABLE movements (currency TEXT NOT NULL, " + movementsColumnsDDL(t, db),
		schemaIndexes,
	} {
		mustExec(t, db, q)
	}
	if err := Rebuild(context.Background(), s, db.Path(), nil); err != nil {
		t.Fatal(err)
	}
	assertMatchesStore(t, db, s)
	if diffs, err := Verify(context.Background(), s, db); err != nil || len(diffs) != 0 {
		t.Errorf("Verify after rebuild = %v, %v", diffs, err)
	}
}

// movementsColumnsDDL is the column list of the movements table as created, without the
// leading "CREATE TABLE movements (" and without its last column, currency.
func movementsColumnsDDL(t *testing.T, db *DB) string {
	t.Helper()
	var ddl string
	if err := db.w.QueryRow("SELECT sql FROM sqlite_schema WHERE name = 'movements'").Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	_, cols, ok := strings.Cut(ddl, "(")
	if !ok || !strings.Contains(cols, ",\n\tcurrency      TEXT    NOT NULL\n)") {
		t.Fatalf("unexpected movements DDL %q", ddl)
	}
	return strings.Replace(cols, ",\n\tcurrency      TEXT    NOT NULL\n)", "\n)", 1)
}

// TestRebuildRepairsEveryTable damages rows of every table (changed, removed, added) and
// checks that a rebuild leaves exactly the rows of the store, as Verify sees them.
func TestRebuildRepairsEveryTable(t *testing.T) {
	s := testStore(t)
	h := newHistory()
	appendAll(t, s, workload(h, []string{"a", "b", "c"}, 400))
	db := openTest(t)
	if err := Rebuild(context.Background(), s, db.Path(), nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE accounts SET balance = '-1' WHERE account_id = 'a'`,
		`UPDATE accounts SET alert_since = NULL WHERE account_id = 'b'`,
		`INSERT INTO accounts SELECT 'ghost', currency, balance, low_balance_threshold, alert, alert_since,
			auto_enabled, auto_threshold, auto_amount, auto_suspended, auto_last_failure, pending_top_up_id,
			pending_kind, version, updated_at FROM accounts WHERE account_id = 'c'`,
		`UPDATE movements SET amount = '9.99' WHERE account_id = 'a' AND version = 5`,
		`UPDATE movements SET units = NULL WHERE account_id = 'b' AND version = 5`,
		`DELETE FROM movements WHERE account_id = 'c' AND version = 6`,
		`INSERT INTO movements (` + movementColumns + `) SELECT 'ghost', version, event_id, occurred_at, recorded_at,
			type, cause, user_id, reference, description, amount, units, balance_after, currency FROM movements WHERE account_id = 'a'`,
		`UPDATE top_ups SET state = 'failed' WHERE account_id = 'a'`,
		`DELETE FROM top_ups WHERE account_id = 'b'`,
	} {
		mustExec(t, db, q)
	}
	if diffs, err := Verify(context.Background(), s, db); err != nil || len(diffs) == 0 {
		t.Fatalf("Verify of the damaged read models = %v, %v; want differences", diffs, err)
	}
	if err := Rebuild(context.Background(), s, db.Path(), nil); err != nil {
		t.Fatal(err)
	}
	assertMatchesStore(t, db, s)
	if diffs, err := Verify(context.Background(), s, db); err != nil || len(diffs) != 0 {
		t.Errorf("Verify after rebuild = %v, %v", diffs, err)
	}
	var n int
	if err := db.r.QueryRow(`SELECT (SELECT count(*) FROM accounts WHERE account_id = 'ghost') + (SELECT count(*) FROM movements WHERE account_id = 'ghost')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows of an account the store does not have after rebuild: %d, %v", n, err)
	}
}

// TestRebuildManyTransactions builds in many small reads and transactions, so that
// accounts, top-ups and the checkpoint carry over from one transaction of the build to the
// next, and checks that the built file has the whole schema (the index made at the end).
func TestRebuildManyTransactions(t *testing.T) {
	defer func(r, tx int) { rebuildBatchMax, buildTxEvents = r, tx }(rebuildBatchMax, buildTxEvents)
	rebuildBatchMax, buildTxEvents = 7, 50
	s := testStore(t)
	h := newHistory()
	appendAll(t, s, workload(h, []string{"a", "b", "c", "d"}, 700))
	db := rebuildNew(t, s)
	assertMatchesStore(t, db, s)
	built := filepath.Join(t.TempDir(), "built.db")
	if err := build(context.Background(), s, built, 0, func(uint64) {}); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(built)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var index string
	if err := ro.r.QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'movements_by_account'`).Scan(&index); err != nil || !strings.Contains(index, "UNIQUE") {
		t.Errorf("movements index of a built file: %q, %v", index, err)
	}
	if diffs, err := Verify(context.Background(), s, db); err != nil || len(diffs) != 0 {
		t.Errorf("Verify after rebuild = %v, %v", diffs, err)
	}
}

// TestProjectorOutlivesStoreFailure closes the store under a running Projector: Run keeps
// retrying (and logging) instead of returning or hanging, and stops cleanly when told.
func TestProjectorOutlivesStoreFailure(t *testing.T) {
	s := testStore(t)
	db := openTest(t)
	h := newHistory()
	last := appendAll(t, s, workload(h, []string{"a"}, 50))
	p, stop := runProjector(t, db, s)
	waitFor(t, p, last)
	s.Close()
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel while the store was failing")
	}
}

// rebuildNew rebuilds the read models of s into a new file and opens it.
func rebuildNew(t *testing.T, s events.Store) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "readmodels.db")
	if err := Rebuild(context.Background(), s, path, nil); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
