package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

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
	ReadRate float64  `json:"read_all_events_per_s"`
	RawCPU   cpuUsage `json:"raw_cpu"`
	CPU      cpuUsage `json:"cpu"`
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
