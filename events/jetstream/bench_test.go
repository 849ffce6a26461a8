package jetstream

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/events"
)

// The benchmarks come in pairs measured on the same server in the same run, so that
// the ratio DESIGN section 4 asks for reads straight off one `go test -bench` output:
//
//	BenchmarkAppend / BenchmarkRawAsyncPublish   ledger ingest vs raw JetStream publish
//	BenchmarkReadAll / BenchmarkRawOrderedRead   rebuild read vs raw ordered consumer
//
// Both sides of a pair handle the same bodies (events.Marshal of the same envelopes);
// the raw side skips everything the store adds (encoding, headers, expected sequences,
// acks per event, decoding). BenchmarkIngestRatio and BenchmarkRebuildRatio alternate
// the two sides pass by pass and print the ratio directly; prefer them on a busy machine.
//
// Measured 2026-11-25 on the 2-core dev VM while other test suites were running on it
// (load average 5-12, so absolute rates swing 2x between runs; the ratios are steadier):
//
//	ingest  (IngestRatio, batches of 1,000 events over 1,000 accounts)
//	    store 40-55k events/s; raw publish 70-97k msgs/s; ratio 0.45-0.65
//	    raw publish with the same two headers (Nats-Msg-Id, expected last subject
//	    sequence) 47-72k msgs/s: store / raw+occ 0.65-0.85. Any header costs JetStream
//	    about 25% (measured with an unrelated header too); the rest is encoding and
//	    the client's bookkeeping.
//	rebuild (RebuildRatio, 20,000 events per pass)
//	    store 60-125k events/s; raw ordered consumer 80-170k msgs/s; ratio 0.65-0.85
//	    (0.34 before codec.go/flat.go: events.Unmarshal took 9 us an event, the fast
//	    path about 1.5 us on the same busy machine).
//	ReadStream of a 1,000-event account: 6-15 ms from the start, 0.45-0.9 ms for the
//	    last 10 events (links followed back; 1.1-1.3 ms before, with the binary search).
//	SyncAlways (LEDGER_BENCH_SYNC_ALWAYS=1): ingest 1-5k events/s instead of 40-55k,
//	    10-50x slower, for every acknowledged event being fsynced.

const (
	benchAccounts  = 1000 // accounts per append batch: one event each, as ingest does
	benchBatch     = 1000 // events per Append call / per wait for acks on the raw side
	benchReadTotal = 200_000
)

// benchEnv is one server shared by all benchmarks of a run: starting a server and
// filling a stream per b.N round would dwarf what is measured.
var benchEnv struct {
	once  sync.Once
	err   error
	dir   string
	srv   *server.Server
	nc    *nats.Conn
	store *Store
	js    jetstream.JetStream

	fillOnce sync.Once
	fillErr  error
	runs     atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchEnv.srv != nil {
		benchEnv.nc.Close()
		benchEnv.srv.Shutdown()
		benchEnv.srv.WaitForShutdown()
		os.RemoveAll(benchEnv.dir)
	}
	os.Exit(code)
}

func benchSetup(b *testing.B) {
	b.Helper()
	benchEnv.once.Do(func() {
		benchEnv.dir, benchEnv.err = os.MkdirTemp("", "ledger-bench-")
		if benchEnv.err != nil {
			return
		}
		benchEnv.srv, benchEnv.err = StartServer(ServerConfig{
			Port: -1, StoreDir: benchEnv.dir, SyncAlways: os.Getenv("LEDGER_BENCH_SYNC_ALWAYS") != "",
		})
		if benchEnv.err != nil {
			return
		}
		benchEnv.nc, benchEnv.err = nats.Connect(benchEnv.srv.ClientURL())
		if benchEnv.err != nil {
			return
		}
		benchEnv.store, benchEnv.err = New(context.Background(), benchEnv.nc, Options{})
		if benchEnv.err != nil {
			return
		}
		benchEnv.js, benchEnv.err = jetstream.New(benchEnv.nc)
		if benchEnv.err != nil {
			return
		}
		// The raw side's stream: LEDGER's configuration under another name.
		cfg := StreamConfig(Options{})
		cfg.Name, cfg.Subjects = "RAW", []string{"raw.account.>"}
		_, benchEnv.err = benchEnv.js.CreateOrUpdateStream(context.Background(), cfg)
	})
	if benchEnv.err != nil {
		b.Fatalf("bench server: %v", benchEnv.err)
	}
}

// benchBatchOf builds batch round r of a benchmark run: one event per account, each at
// the account's next version, bodies as ingest would write them.
func benchBatchOf(run int64, round, n int) []events.Envelope {
	evs := make([]events.Envelope, n)
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := range evs {
		acct := fmt.Sprintf("bench-%d-%d", run, i%benchAccounts)
		version := uint64(round*benchBatch/benchAccounts + i/benchAccounts + 1)
		var data events.Event = events.UsageCharged{
			UsageID: fmt.Sprintf("call-%d-%d", round, i), UsageType: "call", Reason: "fup_exceeded",
			Cause: "fair_usage_exceeded", UsedAt: at, Amount: decimal.RequireFromString("0.42"),
			Currency: "USD", UserID: "u-7", Quantity: "21", Unit: "minute", Destination: "+447911123456",
			ContentHash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
		}
		if version == 1 {
			data = events.AccountOpened{Currency: "USD", LowBalanceThreshold: decimal.RequireFromString("10")}
		}
		evs[i] = events.Envelope{
			ID: events.NewID(acct, version, data), AccountID: acct, Version: version,
			OccurredAt: at, RecordedAt: at, Data: data,
		}
	}
	return evs
}

func reportRate(b *testing.B, n int, unit string) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit)
}

// BenchmarkAppend is the ingest hot path: batches of benchBatch events across
// benchAccounts accounts, through Append (encode, expected sequence, async publish,
// ack per event).
func BenchmarkAppend(b *testing.B) {
	benchSetup(b)
	ctx := context.Background()
	run := benchEnv.runs.Add(1)
	b.ReportAllocs()
	b.ResetTimer()
	for round, done := 0, 0; done < b.N; round++ {
		b.StopTimer()
		evs := benchBatchOf(run, round, min(benchBatch, b.N-done))
		b.StartTimer()
		for i, err := range benchEnv.store.Append(ctx, evs) {
			if err != nil {
				b.Fatalf("append %s v%d: %v", evs[i].AccountID, evs[i].Version, err)
			}
		}
		done += len(evs)
	}
	reportRate(b, b.N, "events/s")
}

// BenchmarkRawAsyncPublish publishes the same bodies with plain async publishes to a
// stream configured like LEDGER, waiting for all acks per batch as Append does.
func BenchmarkRawAsyncPublish(b *testing.B) {
	benchSetup(b)
	run := benchEnv.runs.Add(1)
	js := benchEnv.js
	b.ReportAllocs()
	b.ResetTimer()
	for round, done := 0, 0; done < b.N; round++ {
		b.StopTimer()
		evs := benchBatchOf(run, round, min(benchBatch, b.N-done))
		msgs := make([]*nats.Msg, len(evs))
		for i, e := range evs {
			body, err := events.Marshal(e)
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = &nats.Msg{Subject: "raw.account." + e.AccountID, Data: body}
		}
		b.StartTimer()
		futures := make([]jetstream.PubAckFuture, len(msgs))
		for i, m := range msgs {
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				b.Fatal(err)
			}
			futures[i] = f
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		done += len(msgs)
	}
	reportRate(b, b.N, "msgs/s")
}

// benchFill puts benchReadTotal events into LEDGER once for the read benchmarks.
func benchFill(b *testing.B) uint64 {
	b.Helper()
	benchSetup(b)
	benchEnv.fillOnce.Do(func() {
		ctx := context.Background()
		run := benchEnv.runs.Add(1)
		for round := 0; round*benchBatch < benchReadTotal; round++ {
			for _, err := range benchEnv.store.Append(ctx, benchBatchOf(run, round, benchBatch)) {
				if err != nil {
					benchEnv.fillErr = err
					return
				}
			}
		}
	})
	if benchEnv.fillErr != nil {
		b.Fatalf("fill: %v", benchEnv.fillErr)
	}
	h, err := benchEnv.store.Head(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// benchReads reads b.N events in passes over the whole stream with read, which reads
// the first n events from the start and reports how many it saw.
func benchReads(b *testing.B, total uint64, read func(n int) int) {
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; {
		n := int(min(uint64(left), total))
		if got := read(n); got != n {
			b.Fatalf("read %d events, want %d", got, n)
		}
		left -= n
	}
	reportRate(b, b.N, "events/s")
}

// BenchmarkReadAll is the rebuild path: ReadAll from position 0, decoding every event.
func BenchmarkReadAll(b *testing.B) {
	total := benchFill(b)
	ctx := context.Background()
	benchReads(b, total, func(n int) int {
		seen := 0
		err := benchEnv.store.ReadAll(ctx, 0, func(e events.Envelope) error {
			seen++
			if seen == n {
				return events.ErrStopped
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return seen
	})
}

// BenchmarkRawOrderedRead reads the same stream with a bare ordered consumer that only
// looks at each message's length, with the same pull size as ReadAll.
func BenchmarkRawOrderedRead(b *testing.B) {
	total := benchFill(b)
	ctx := context.Background()
	b.Run("consume", func(b *testing.B) {
		benchReads(b, total, func(n int) int {
			cons, err := benchEnv.js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			var seen, size int
			done := make(chan struct{})
			cc, err := cons.Consume(func(m jetstream.Msg) {
				if seen == n {
					return // delivered after the stop below
				}
				size += len(m.Data())
				if seen++; seen == n {
					close(done)
				}
			}, jetstream.PullMaxMessages(readBatchSizeDefault))
			if err != nil {
				b.Fatal(err)
			}
			<-done
			cc.Stop()
			return seen
		})
	})
	b.Run("messages", func(b *testing.B) {
		benchReads(b, total, func(n int) int {
			cons, err := benchEnv.js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			it, err := cons.Messages(jetstream.PullMaxMessages(readBatchSizeDefault))
			if err != nil {
				b.Fatal(err)
			}
			defer it.Stop()
			var seen, size int
			for seen < n {
				m, err := it.Next()
				if err != nil {
					b.Fatal(err)
				}
				size += len(m.Data())
				seen++
			}
			return seen
		})
	})
}

// BenchmarkReadStream reads one account of 1,000 events, the reload after a conflict
// and the ledgerctl replay path.
func BenchmarkReadStream(b *testing.B) {
	benchSetup(b)
	ctx := context.Background()
	acct := "bench-stream-" + strconv.FormatInt(benchEnv.runs.Add(1), 10)
	evs := make([]events.Envelope, 1000)
	for i := range evs {
		data := events.AdjustmentApplied{AdjustmentID: strconv.Itoa(i), Amount: decimal.RequireFromString("1"), Reason: "bench"}
		evs[i] = events.Envelope{ID: events.NewID(acct, uint64(i+1), data), AccountID: acct, Version: uint64(i + 1), Data: data}
	}
	for _, err := range benchEnv.store.Append(ctx, evs) {
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, after := range []uint64{0, 990} {
		b.Run(fmt.Sprintf("after=%d", after), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := benchEnv.store.ReadStream(ctx, acct, after)
				if err != nil || len(got) != 1000-int(after) {
					b.Fatalf("read %d events, %v", len(got), err)
				}
			}
		})
	}
}

// The ratio benchmarks alternate the store and the raw engine pass by pass and report
// both rates and their ratio: on a shared 2-core machine the load of other processes
// drifts within seconds, and alternating cancels most of that drift out of the ratio.

// BenchmarkIngestRatio: Append vs raw async publish, one batch of benchBatch events
// each per iteration. A third side, "raw+occ", publishes with the two headers the store
// needs (Nats-Msg-Id, expected last subject sequence, tracked in a map) and nothing
// else: the gap between raw and raw+occ is what JetStream's de-duplication and
// optimistic concurrency cost on the server, the gap between raw+occ and the store is
// the store's own.
func BenchmarkIngestRatio(b *testing.B) {
	benchSetup(b)
	ctx := context.Background()
	storeRun, rawRun, occRun := benchEnv.runs.Add(1), benchEnv.runs.Add(1), benchEnv.runs.Add(1)
	lastSeq := make(map[string]uint64)
	var storeTime, rawTime, occTime time.Duration
	round := 0
	publishAll := func(msgs []*nats.Msg, onAck func(i int, ack *jetstream.PubAck)) time.Duration {
		start := time.Now()
		futures := make([]jetstream.PubAckFuture, len(msgs))
		for i, m := range msgs {
			f, err := benchEnv.js.PublishMsgAsync(m)
			if err != nil {
				b.Fatal(err)
			}
			futures[i] = f
		}
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				if onAck != nil {
					onAck(i, ack)
				}
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	bodies := func(evs []events.Envelope) []*nats.Msg {
		msgs := make([]*nats.Msg, len(evs))
		for i, e := range evs {
			body, err := events.Marshal(e)
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = &nats.Msg{Subject: "raw.account." + e.AccountID, Data: body}
		}
		return msgs
	}
	for b.Loop() {
		evs := benchBatchOf(storeRun, round, benchBatch)
		start := time.Now()
		for i, err := range benchEnv.store.Append(ctx, evs) {
			if err != nil {
				b.Fatalf("append %s v%d: %v", evs[i].AccountID, evs[i].Version, err)
			}
		}
		storeTime += time.Since(start)

		rawTime += publishAll(bodies(benchBatchOf(rawRun, round, benchBatch)), nil)

		occ := benchBatchOf(occRun, round, benchBatch)
		msgs := bodies(occ)
		for i, m := range msgs {
			m.Header = nats.Header{
				jetstream.MsgIDHeader:               []string{occ[i].ID.String()},
				jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(lastSeq[m.Subject], 10)},
			}
		}
		occTime += publishAll(msgs, func(i int, ack *jetstream.PubAck) { lastSeq[msgs[i].Subject] = ack.Sequence })
		round++
	}
	n := float64(round * benchBatch)
	b.ReportMetric(n/storeTime.Seconds(), "store-events/s")
	b.ReportMetric(n/rawTime.Seconds(), "raw-msgs/s")
	b.ReportMetric(n/occTime.Seconds(), "raw+occ-msgs/s")
	b.ReportMetric(rawTime.Seconds()/storeTime.Seconds(), "ratio")
}

// BenchmarkRebuildRatio: ReadAll vs a raw ordered consumer over the same 20,000 events
// per iteration.
func BenchmarkRebuildRatio(b *testing.B) {
	total := benchFill(b)
	const perPass = 20_000
	ctx := context.Background()
	var storeTime, rawTime time.Duration
	passes := 0
	for b.Loop() {
		after := total - perPass
		start := time.Now()
		seen := 0
		if err := benchEnv.store.ReadAll(ctx, after, func(events.Envelope) error { seen++; return nil }); err != nil || seen != perPass {
			b.Fatalf("ReadAll: %d events, %v", seen, err)
		}
		storeTime += time.Since(start)

		start = time.Now()
		cons, err := benchEnv.js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: after + 1,
		})
		if err != nil {
			b.Fatal(err)
		}
		rawSeen, size := 0, 0
		done := make(chan struct{})
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if rawSeen == perPass {
				return
			}
			size += len(m.Data())
			if rawSeen++; rawSeen == perPass {
				close(done)
			}
		}, jetstream.PullMaxMessages(readBatchSizeDefault))
		if err != nil {
			b.Fatal(err)
		}
		<-done
		cc.Stop()
		rawTime += time.Since(start)
		passes++
	}
	n := float64(passes * perPass)
	b.ReportMetric(n/storeTime.Seconds(), "store-events/s")
	b.ReportMetric(n/rawTime.Seconds(), "raw-msgs/s")
	b.ReportMetric(rawTime.Seconds()/storeTime.Seconds(), "ratio")
}
