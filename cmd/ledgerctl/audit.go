package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/telephony/creditledger/projections"
)

var verifyCommand = &command{
	name:    "verify",
	summary: "rebuild every projection from the streams and compare with the live read models",
	details: `
Proves that the live read models ({data-dir}/readmodels.db, opened read-only) are exactly
what the event streams say: it reads the live checkpoint, rebuilds every read model
(accounts, movements, top-ups) from the store's events up to it in a temporary file, and
compares every row and column (amounts as decimals). It works while ledgerd runs: it
compares one consistent snapshot of the live file, whatever ledgerd applies meanwhile.

All equal: prints "ok: N accounts, M events verified" and exits 0 ("at least N accounts,
M events" when ledgerd applied more events while verifying: those are covered by the next
run). Otherwise prints one line per difference, such as
  account acme: balance live 999 rebuilt 74.73
(at most 1000, then a count of the rest) and exits 1; "ledgerctl rebuild" then recomputes
the read models from the streams.`,
	setup: func(*flag.FlagSet) runFunc { return verify },
}

func verify(ctx context.Context, e *env, _ []string) error {
	path, err := existingReadModels(e.globals)
	if err != nil {
		return err
	}
	live, err := projections.OpenReadOnly(path)
	if err != nil {
		return err
	}
	defer live.Close()
	store, closeStore, err := openStore(ctx, e.globals)
	if err != nil {
		return err
	}
	defer closeStore()
	// Counted before Verify: the read models only grow, so these are at most what Verify
	// covers, and exactly that when the checkpoint did not move in between.
	counted, countErr := countApplied(ctx, live)
	diffs, err := projections.Verify(ctx, store, live)
	if err != nil {
		return err
	}
	if len(diffs) > 0 {
		for _, d := range diffs {
			fmt.Fprintln(e.stdout, d)
		}
		return fmt.Errorf("verify: the read models at %s differ from the event store (listed above); \"ledgerctl rebuild\" recomputes them from the streams", path)
	}
	return reportVerified(ctx, e, live, counted, countErr)
}

func reportVerified(ctx context.Context, e *env, live *projections.DB, counted tally, countErr error) error {
	if countErr != nil {
		_, err := fmt.Fprintln(e.stdout, "ok: read models verified")
		return err
	}
	after, err := live.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if after == counted.checkpoint {
		_, err = fmt.Fprintf(e.stdout, "ok: %s, %s verified\n", plural(counted.accounts, "account"), plural(counted.events, "event"))
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "ok: at least %s, %s verified (ledgerd applied more events meanwhile)\n", plural(counted.accounts, "account"), plural(counted.events, "event"))
	return err
}

// tally is how much the read models hold: accounts, events applied (the sum of the
// accounts' stream versions) and the checkpoint read before counting.
type tally struct {
	accounts, events, checkpoint uint64
}

func countApplied(ctx context.Context, db *projections.DB) (tally, error) {
	var t tally
	var err error
	if t.checkpoint, err = db.Checkpoint(ctx); err != nil {
		return t, err
	}
	err = db.Accounts(ctx, func(a projections.Account) error {
		t.accounts++
		t.events += a.Version
		return nil
	})
	return t, err
}

// existingReadModels is the path of the read models, which must exist: verify compares
// them, it does not create them.
func existingReadModels(g globals) (string, error) {
	path, err := readModelsPath(g)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no read models at %s: is --data-dir ledgerd's data directory?", path)
	}
	return path, nil
}

// readModelsFile is where ledgerd keeps its read models inside --data-dir.
const readModelsFile = "readmodels.db"

var rebuildCommand = &command{
	name:    "rebuild",
	summary: "rebuild the read models from the event streams, with progress",
	details: `
Recomputes every read model (accounts, movements, top-ups; the usage summary comes from the
movements) from every event in the store, into a new file beside
{data-dir}/readmodels.db, then swaps the new contents into that file in one transaction.

It is safe, and meant, to run while ledgerd runs on the same data dir (with ledgerd's
embedded NATS the store can only be reached then): ledgerd serves the old read models
until the swap commits and the new ones after it, never a mix; its projector waits for the
swap, then carries on from the new checkpoint without a gap or a double count; events
appended during the rebuild are applied in the same transaction. A second rebuild of the
same file while one runs is refused. Interrupting it (Ctrl-C) before the swap leaves the
live read models untouched.

Progress goes to stderr: a bar redrawn in place on a terminal, a line per tenth of the work
otherwise. At the end stdout gets one line:
  rebuilt PATH up to store position P in DURATION`,
	setup: func(*flag.FlagSet) runFunc { return rebuild },
}

func rebuild(ctx context.Context, e *env, _ []string) error {
	path, err := readModelsPath(e.globals)
	if err != nil {
		return err
	}
	unlock, err := lockRebuild(path)
	if err != nil {
		return err
	}
	defer unlock()
	store, closeStore, err := openStore(ctx, e.globals)
	if err != nil {
		return err
	}
	defer closeStore()
	start := time.Now()
	prog := newProgress(e.stderr, "rebuild", positionUnit(e.globals))
	var mu sync.Mutex
	var done, total uint64
	err = projections.Rebuild(ctx, store, path, func(d, t uint64) {
		mu.Lock()
		done, total = d, t
		mu.Unlock()
		prog.Update(d, t)
	})
	if err != nil {
		return err
	}
	prog.Done(done, total)
	fmt.Fprintf(e.stdout, "rebuilt %s up to store position %d in %s\n", path, done, time.Since(start).Round(time.Millisecond))
	return nil
}

// readModelsPath is {data-dir}/readmodels.db. The data dir must exist: a mistyped
// --data-dir would otherwise get a fresh read-model file that no ledgerd reads.
func readModelsPath(g globals) (string, error) {
	st, err := os.Stat(g.dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("data dir %s does not exist: is --data-dir ledgerd's data directory?", g.dataDir)
	case err != nil:
		return "", err
	case !st.IsDir():
		return "", fmt.Errorf("data dir %s is not a directory", g.dataDir)
	}
	return filepath.Join(g.dataDir, readModelsFile), nil
}

// positionUnit names what store positions count: events on JetStream, log positions on
// EventStoreDB (where the percentage is still right, the figures are not event counts).
func positionUnit(g globals) string {
	if g.store == "eventstore" {
		return "log positions"
	}
	return "events"
}

// plural is "1 account", "2 accounts".
func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
