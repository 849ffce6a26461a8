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
