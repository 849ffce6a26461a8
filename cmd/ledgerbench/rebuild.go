package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/events/jetstream"
	"github.com/telephony/creditledger/projections"
)

// rebuildResult compares rebuilding the read models from the store with a raw ordered
// consumer reading the same stream.
type rebuildResult struct {
	Events  int     `json:"events"`
	RawRate float64 `json:"raw_msgs_per_s"`
	Rate    float64 `json:"rebuild_events_per_s"`
	Ratio   float64 `json:"ratio"`
	// ReadRate is ReadAll alone (decode, no read-model writes): where the time goes.
	ReadRate float64 `json:"read_all_events_per_s"`
	// MemoryRate is a rebuild from events already in memory (the read models' writes
	// alone); MemoryRatio is it divided by RawRate, the ceiling of Ratio.
	MemoryRate  float64  `json:"from_memory_events_per_s"`
	MemoryRatio float64  `json:"from_memory_ratio"`
	MemoryCPU   cpuUsage `json:"from_memory_cpu"`
	// RestartSeconds is a new writer's Load over the whole store: what a restart of
	// ledgerd reads before it takes intake.
	RestartSeconds float64  `json:"restart_load_seconds"`
	RawCPU         cpuUsage `json:"raw_cpu"`
	CPU            cpuUsage `json:"cpu"`
}

// readPullMax is the pull size of the raw read: the store's ReadBatchSize default.
const readPullMax = 4096

// measureRawRead reads LEDGER from its start with a bare ordered consumer that only looks
// at each message's size, until total messages.
func measureRawRead(ctx context.Context, sys *system, total uint64, out io.Writer) (float64, cpuUsage, error) {
	var cpu cpuUsage
	nc, err := connect(sys.srv.ClientURL(), "ledgerbench-raw-reader")
	if err != nil {
		return 0, cpu, err
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		return 0, cpu, err
	}
	cons, err := js.OrderedConsumer(ctx, jetstream.StreamName, natsjs.OrderedConsumerConfig{})
	if err != nil {
		return 0, cpu, err
	}
	var seen atomic.Uint64
	var size int
	done := make(chan struct{})
	meter := startCPU()
	start := time.Now()
	p := startProgress(out, func() string {
		return fmt.Sprintf("  raw read      %6.1fs  %s/%s msgs", time.Since(start).Seconds(), thousands(float64(seen.Load())), thousands(float64(total)))
	})
	cc, err := cons.Consume(func(m natsjs.Msg) {
		size += len(m.Data())
		if seen.Add(1) == total {
			close(done)
		}
	}, natsjs.PullMaxMessages(readPullMax))
	if err != nil {
		p.stop()
		return 0, cpu, err
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	elapsed := time.Since(start)
	cpu = meter.stop()
	cc.Stop()
	p.stop()
	if err := ctx.Err(); err != nil {
		return 0, cpu, err
	}
	return rate(int(total), elapsed), cpu, nil
}

// measureReadAll runs the store's ReadAll over the whole store without writing anything.
func measureReadAll(ctx context.Context, sys *system, total uint64) (float64, error) {
	n := 0
	start := time.Now()
	err := sys.store.ReadAll(ctx, 0, func(events.Envelope) error { n++; return nil })
	elapsed := time.Since(start)
	if err != nil {
		return 0, err
	}
	if uint64(n) != total {
		return 0, fmt.Errorf("read all: %d events, want %d", n, total)
	}
	return rate(n, elapsed), nil
}

// measureRebuild runs projections.Rebuild, as `ledgerctl rebuild` does, on the live
// read models while the Projector keeps running: every event is applied into a fresh file,
// which is then swapped in. The rebuilt read models must show every balance exactly.
func measureRebuild(ctx context.Context, sys *system, w *workload, total uint64, out io.Writer) (float64, cpuUsage, error) {
	var done atomic.Uint64
	meter := startCPU()
	start := time.Now()
	p := startProgress(out, func() string {
		el := time.Since(start)
		return fmt.Sprintf("  rebuild       %6.1fs  %s/%s events  %s ev/s", el.Seconds(), thousands(float64(done.Load())),
			thousands(float64(total)), thousands(rate(int(done.Load()), el)))
	})
	defer p.stop()
	err := projections.Rebuild(ctx, sys.store, sys.reads.Path(), func(d, _ uint64) { done.Store(d) })
	elapsed := time.Since(start)
	cpu := meter.stop()
	p.stop()
	if err != nil {
		return 0, cpu, err
	}
	return rate(int(total), elapsed), cpu, verifyBalances(ctx, sys.reads, w)
}

// measureRebuildFromMemory runs projections.Rebuild from the store's events already read
// and decoded into memory: the read models' share of a rebuild alone, with reading free.
// Rebuild can never beat it, so its ratio to the raw read is the rebuild ratio's ceiling
// with these read models. Like the rebuild it bounds, it rebuilds a file that already
// holds every row (an untimed first Rebuild fills it), so that its swap replaces as many
// rows as the live rebuild's does.
func measureRebuildFromMemory(ctx context.Context, sys *system, w *workload, total uint64) (float64, cpuUsage, error) {
	var cpu cpuUsage
	mem := &memoryStore{}
	if err := sys.store.ReadAll(ctx, 0, func(e events.Envelope) error {
		mem.evs = append(mem.evs, e)
		return nil
	}); err != nil {
		return 0, cpu, err
	}
	if uint64(len(mem.evs)) != total {
		return 0, cpu, fmt.Errorf("read %d events, want %d", len(mem.evs), total)
	}
	path := filepath.Join(sys.dir, "readmodels-from-memory.db")
	defer removeDB(path)
	if err := projections.Rebuild(ctx, mem, path, nil); err != nil {
		return 0, cpu, err
	}
	meter := startCPU()
	start := time.Now()
	err := projections.Rebuild(ctx, mem, path, nil)
	elapsed := time.Since(start)
	cpu = meter.stop()
	if err != nil {
		return 0, cpu, err
	}
	reads, err := projections.Open(path)
	if err != nil {
		return 0, cpu, err
	}
	defer reads.Close()
	return rate(int(total), elapsed), cpu, verifyBalances(ctx, reads, w)
}

// removeDB deletes a SQLite file with its WAL and shared-memory files.
func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}

// memoryStore is a read-only events.Store over events held in memory, in store order.
type memoryStore struct{ evs []events.Envelope }

var _ events.Store = (*memoryStore)(nil)

// errReadOnly is what appending to a memoryStore returns.
var errReadOnly = errors.New("ledgerbench: the in-memory store is read-only")

func (s *memoryStore) Append(_ context.Context, evs []events.Envelope) []error {
	errs := make([]error, len(evs))
	for i := range errs {
		errs[i] = errReadOnly
	}
	return errs
}

func (s *memoryStore) ReadStream(_ context.Context, accountID string, afterVersion uint64) ([]events.Envelope, error) {
	var out []events.Envelope
	for _, e := range s.evs {
		if e.AccountID == accountID && e.Version > afterVersion {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *memoryStore) ReadAll(ctx context.Context, after uint64, fn func(events.Envelope) error) error {
	for _, e := range s.evs {
		if e.Position <= after {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Subscribe delivers what there is, then waits for ctx: nothing is ever appended.
func (s *memoryStore) Subscribe(ctx context.Context, after uint64, fn func(events.Envelope) error) error {
	if err := s.ReadAll(ctx, after, fn); err != nil {
		if errors.Is(err, events.ErrStopped) {
			return nil
		}
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s *memoryStore) Head(context.Context) (uint64, error) {
	if len(s.evs) == 0 {
		return 0, nil
	}
	return s.evs[len(s.evs)-1].Position, nil
}

func (s *memoryStore) Close() error { return nil }

// measureRestartLoad times what a restart of ledgerd reads before it takes intake: a new
// writer's Load over the whole store, on the live writer's usage index (whose checkpoint,
// as after a real restart, is where the previous start left it; Load re-indexes what lies
// after it, which changes nothing for the live writer). The loaded writer must hold every
// account at its final version and balance.
func measureRestartLoad(ctx context.Context, sys *system, w *workload) (float64, error) {
	restarted := writer.New(sys.store, sys.intake, zap.NewNop(), writer.Options{})
	start := time.Now()
	if err := restarted.Load(ctx); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	for _, a := range w.accounts {
		if v, ok := restarted.View(a); !ok || v.Version != w.version[a] || !v.Balance.Equal(w.balance[a]) {
			return 0, fmt.Errorf("after Load, %s is %+v, want version %d balance %s", a, v, w.version[a], w.balance[a])
		}
	}
	return elapsed.Seconds(), nil
}
