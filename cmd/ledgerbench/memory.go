package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/jetstream"
)

// memoryResult is what the writer's in-memory state and the whole process cost per
// account once Load has read every account from the store.
type memoryResult struct {
	Accounts int `json:"accounts"`
	// WriterHeapPerAccount is the live heap that writer.Load added (after a GC), per account.
	WriterHeapPerAccount float64 `json:"writer_heap_bytes_per_account"`
	// RSSPerAccount is the resident set of the whole process (embedded NATS server with
	// the store, SQLite, the loaded writer) divided by the accounts.
	RSSPerAccount float64 `json:"process_rss_bytes_per_account"`
	// RSSDeltaPerAccount is the growth of the resident set during Load, per account.
	RSSDeltaPerAccount float64 `json:"load_rss_delta_bytes_per_account"`
	AppendRate         float64 `json:"open_append_events_per_s"`
	LoadRate           float64 `json:"load_events_per_s"`
}

// memoryResultPrefix marks the child's result line on its stdout.
const memoryResultPrefix = "LEDGERBENCH_MEMORY "

// measureMemoryChild runs the memory phase in a fresh process, so that the process's
// resident set is not inflated by the earlier phases.
func measureMemoryChild(ctx context.Context, cfg config, out io.Writer) (memoryResult, error) {
	var res memoryResult
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	args := []string{"-phases", "memory", "-memory-child", "-memory-accounts", strconv.Itoa(cfg.MemoryAccounts), "-dir", filepath.Join(cfg.Dir, "memory"),
		"-gc-percent", strconv.Itoa(cfg.GCPercent)}
	if cfg.ProfileDir != "" {
		args = append(args, "-profile", cfg.ProfileDir)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, out
	if err := cmd.Run(); err != nil {
		return res, fmt.Errorf("memory phase child: %w", err)
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), memoryResultPrefix); ok {
			return res, json.Unmarshal([]byte(line), &res)
		}
	}
	return res, fmt.Errorf("memory phase child printed no result")
}

// memoryOpenBatch is how many AccountOpened events one Append carries while filling the
// store: one per account, so one publish round per batch.
const memoryOpenBatch = 4000

// measureMemory appends n opened accounts to a fresh store, then measures what
// writer.Load keeps in memory for them.
func measureMemory(ctx context.Context, dir string, n int, profileDir string, log *zap.Logger, out io.Writer) (memoryResult, error) {
	res := memoryResult{Accounts: n}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return res, err
	}
	srv, err := startServer(dir, log)
	if err != nil {
		return res, err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("ledgerd"))
	if err != nil {
		return res, err
	}
	defer nc.Close()
	store, err := jetstream.New(ctx, nc, jetstream.Options{})
	if err != nil {
		return res, err
	}
	if res.AppendRate, err = fillAccounts(ctx, store, n, out); err != nil {
		return res, err
	}
	db, err := intake.Open(filepath.Join(dir, "intake.db"))
	if err != nil {
		return res, err
	}
	defer db.Close()

	before, rssBefore := settledHeap(), rss()
	w := writer.New(store, db, log.Named("writer"), writer.Options{})
	start := time.Now()
	p := startProgress(out, func() string {
		return fmt.Sprintf("  memory load   %6.1fs  loading %s accounts", time.Since(start).Seconds(), thousands(float64(n)))
	})
	err = w.Load(ctx)
	res.LoadRate = rate(n, time.Since(start))
	p.stop()
	if err != nil {
		return res, err
	}
	after, rssAfter := settledHeap(), rss()
	if got := len(w.AccountIDs()); got != n {
		return res, fmt.Errorf("loaded %d accounts, want %d", got, n)
	}
	res.WriterHeapPerAccount = float64(int64(after)-int64(before)) / float64(n)
	res.RSSPerAccount = float64(rssAfter) / float64(n)
	res.RSSDeltaPerAccount = float64(int64(rssAfter)-int64(rssBefore)) / float64(n)
	if profileDir != "" {
		if err := writeHeapProfile(filepath.Join(profileDir, "memory.heap.pprof")); err != nil {
			return res, err
		}
	}
	runtime.KeepAlive(w)
	return res, nil
}

// fillAccounts appends an AccountOpened event for n accounts straight to the store, in
// batches across accounts as ingest appends, and returns events/s.
func fillAccounts(ctx context.Context, store *jetstream.Store, n int, out io.Writer) (float64, error) {
	var done atomic.Int64
	start := time.Now()
	p := startProgress(out, func() string {
		el := time.Since(start)
		return fmt.Sprintf("  memory fill   %6.1fs  opened %s/%s accounts  %s ev/s", el.Seconds(), thousands(float64(done.Load())),
			thousands(float64(n)), thousands(rate(int(done.Load()), el)))
	})
	defer p.stop()
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := 0; i < n; i += memoryOpenBatch {
		evs := make([]events.Envelope, 0, memoryOpenBatch)
		for j := i; j < min(i+memoryOpenBatch, n); j++ {
			id := accountID("mem", j)
			data := events.AccountOpened{Currency: "USD", LowBalanceThreshold: decimal.NewFromInt(10)}
			evs = append(evs, events.Envelope{ID: events.NewID(id, 1, data), AccountID: id, Version: 1, OccurredAt: at, RecordedAt: at, Data: data})
		}
		for k, err := range store.Append(ctx, evs) {
			if err != nil {
				return 0, fmt.Errorf("open %s: %w", evs[k].AccountID, err)
			}
		}
		done.Add(int64(len(evs)))
	}
	return rate(n, time.Since(start)), nil
}

// settledHeap is the live heap after two collections.
func settledHeap() uint64 {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// rss is the process's resident set in bytes (Linux; 0 elsewhere).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}
