package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/events/jetstream"
)

// The engine floor is the JetStream work that the ledger's design asks of one usage, done
// by the thinnest code that can do it, with none of the ledger's own work: no decoding,
// no decision, no usage index, no read models. The ingest ratio can never beat the floor's
// ratio on the same server; the gap between the two is what the ledger's code costs.
//
// Per usage, as the ledger does it:
//   - the platform's publish into a stream configured like USAGE (work queue);
//   - a delivery to a durable pull consumer configured as the ingest consumer's;
//   - an async append to a stream configured like LEDGER, on the account's own subject,
//     with a message id and the expected last sequence of that subject, appended in rounds
//     of one message per account as the writer does;
//   - the usage's ack (which makes the work queue delete it), the batch's last one
//     confirmed, settled while the next batch is relayed, as ingest does;
//   - a delivery of the appended message to an ordered consumer, as the Projector reads.
const (
	floorUsageStream   = "FLOORUSAGE"
	floorUsagePrefix   = "floorusage."
	floorLedgerStream  = "FLOORLEDGER"
	floorLedgerPrefix  = "floorledger.account."
	floorBatchSizeMax  = 1000 // ingest.Options.BatchSizeMax's default
	floorDurableName   = "floor-relay"
	floorAppendWaitMax = time.Minute
)

// measureEngineFloor runs w through the floor pipeline and returns usages/s from the first
// publish until the ordered reader has seen every appended message.
func measureEngineFloor(ctx context.Context, sys *system, w *workload, pendingMax int, out io.Writer) (float64, cpuUsage, error) {
	var cpu cpuUsage
	if err := createFloorStreams(ctx, sys); err != nil {
		return 0, cpu, err
	}
	defer sys.js.DeleteStream(context.WithoutCancel(ctx), floorUsageStream)
	defer sys.js.DeleteStream(context.WithoutCancel(ctx), floorLedgerStream)
	// One connection for the relay and the reader, as ledgerd shares one between ingest,
	// the store and the Projector; the publisher has its own, as the platform would.
	nc, err := connect(sys.srv.ClientURL(), "ledgerbench-floor")
	if err != nil {
		return 0, cpu, err
	}
	defer nc.Close()
	pub, err := connect(sys.srv.ClientURL(), "ledgerbench-floor-publisher")
	if err != nil {
		return 0, cpu, err
	}
	defer pub.Close()
	js, err := natsjs.New(nc, natsjs.WithPublishAsyncMaxPending(4*floorBatchSizeMax))
	if err != nil {
		return 0, cpu, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := uint64(len(w.bodies))
	var sent atomic.Int64
	var relayed, seen atomic.Uint64
	failed := make(chan error, 3)
	allSeen := make(chan struct{})

	meter := startCPU()
	start := time.Now()
	p := startProgress(out, func() string {
		el := time.Since(start)
		return fmt.Sprintf("  engine floor  %6.1fs  published %s  relayed %s  read %s  %s ev/s", el.Seconds(),
			thousands(float64(sent.Load())), thousands(float64(relayed.Load())), thousands(float64(seen.Load())),
			thousands(rate(int(seen.Load()), el)))
	})
	defer p.stop()

	reader, err := readFloorLedger(ctx, js, total, &seen, allSeen)
	if err != nil {
		return 0, cpu, err
	}
	defer reader.Stop()
	go func() {
		if err := relayFloor(ctx, js, &relayed); err != nil && !errors.Is(err, context.Canceled) {
			failed <- fmt.Errorf("relay: %w", err)
		}
	}()
	go func() {
		if err := publishAll(ctx, pub, floorUsagePrefix, w, pendingMax, &sent); err != nil {
			failed <- fmt.Errorf("publish: %w", err)
		}
	}()
	select {
	case <-allSeen:
	case err := <-failed:
		return 0, cpu, err
	case <-ctx.Done():
		return 0, cpu, ctx.Err()
	}
	elapsed := time.Since(start)
	cpu = meter.stop()
	p.stop()
	// Not timed: the floor must have done all of its work, the acks (and so the work
	// queue's deletes) included, or it would be cheaper than what it bounds.
	if err := waitDrained(ctx, sys.js, floorUsageStream); err != nil {
		return 0, cpu, err
	}
	return rate(len(w.bodies), elapsed), cpu, nil
}

// floorDrainWaitMax bounds the wait for the last acks to empty the floor's work queue.
const floorDrainWaitMax = 10 * time.Second

// waitDrained waits until the work-queue stream holds no message: every one was acked.
func waitDrained(ctx context.Context, js natsjs.JetStream, stream string) error {
	deadline := time.Now().Add(floorDrainWaitMax)
	for {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if s.CachedInfo().State.Msgs == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still holds %d messages %s after the last was read: acks are missing", stream, s.CachedInfo().State.Msgs, floorDrainWaitMax)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// createFloorStreams creates the floor's two streams with USAGE's and LEDGER's
// configurations under other names.
func createFloorStreams(ctx context.Context, sys *system) error {
	usage, err := sys.js.Stream(ctx, ingest.UsageStream)
	if err != nil {
		return err
	}
	cfg := usage.CachedInfo().Config
	cfg.Name, cfg.Subjects = floorUsageStream, []string{floorUsagePrefix + ">"}
	if _, err := sys.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return err
	}
	ledgerCfg := jetstream.StreamConfig(jetstream.Options{Replicas: 1})
	ledgerCfg.Name, ledgerCfg.Subjects = floorLedgerStream, []string{floorLedgerPrefix + ">"}
	_, err = sys.js.CreateOrUpdateStream(ctx, ledgerCfg)
	return err
}

// readFloorLedger counts the appended messages through an ordered consumer and closes
// allSeen at total.
func readFloorLedger(ctx context.Context, js natsjs.JetStream, total uint64, seen *atomic.Uint64, allSeen chan struct{}) (natsjs.ConsumeContext, error) {
	cons, err := js.OrderedConsumer(ctx, floorLedgerStream, natsjs.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	return cons.Consume(func(m natsjs.Msg) {
		if seen.Add(1) == total {
			close(allSeen)
		}
	}, natsjs.PullMaxMessages(readPullMax))
}

// relayFloor moves every usage message into the floor's ledger stream until ctx ends.
func relayFloor(ctx context.Context, js natsjs.JetStream, relayed *atomic.Uint64) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, floorUsageStream, natsjs.ConsumerConfig{
		Durable:       floorDurableName,
		AckPolicy:     natsjs.AckExplicitPolicy,
		AckWait:       10 * time.Second,
		MaxAckPending: 4 * floorBatchSizeMax,
		MaxDeliver:    -1,
	})
	if err != nil {
		return err
	}
	inbox := make(chan natsjs.Msg, 2*floorBatchSizeMax)
	cc, err := cons.Consume(func(m natsjs.Msg) { inbox <- m }, natsjs.PullMaxMessages(2*floorBatchSizeMax))
	if err != nil {
		return err
	}
	defer cc.Stop()
	heads := map[string]floorHead{} // per ledger subject, as the writer keeps each account's
	settled := make(chan error, 1)
	settled <- nil
	for {
		batch, err := collectFloor(ctx, inbox)
		if err != nil {
			return err
		}
		if err := appendFloor(ctx, js, batch, heads); err != nil {
			return err
		}
		relayed.Add(uint64(len(batch)))
		if err := <-settled; err != nil {
			return err
		}
		go func() { settled <- settleFloor(ctx, batch) }()
	}
}

// collectFloor waits for one message and takes what else is there, as ingest's collect.
func collectFloor(ctx context.Context, inbox <-chan natsjs.Msg) ([]natsjs.Msg, error) {
	var batch []natsjs.Msg
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case m := <-inbox:
		batch = append(batch, m)
	}
	for len(batch) < floorBatchSizeMax {
		select {
		case m := <-inbox:
			batch = append(batch, m)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// floorHead is what the relay knows of one ledger subject: its last sequence, for the
// next append's expectation, and its last version, for the version header.
type floorHead struct{ seq, version uint64 }

// appendFloor appends a batch in rounds: each round appends the next message of every
// account that has one, all at once, and waits for their acks, so that each append can
// name its subject's last sequence.
func appendFloor(ctx context.Context, js natsjs.JetStream, batch []natsjs.Msg, heads map[string]floorHead) error {
	queues := map[string][]natsjs.Msg{}
	var order []string
	for _, m := range batch {
		subject := floorLedgerPrefix + m.Subject()[len(floorUsagePrefix):]
		if _, ok := queues[subject]; !ok {
			order = append(order, subject)
		}
		queues[subject] = append(queues[subject], m)
	}
	type pending struct {
		subject string
		ack     natsjs.PubAckFuture
	}
	for round := 0; len(order) > 0; round++ {
		var inFlight []pending
		next := order[:0]
		for _, subject := range order {
			m, head := queues[subject][round], heads[subject]
			out := &nats.Msg{Subject: subject, Data: m.Data(), Header: nats.Header{
				natsjs.MsgIDHeader:               []string{m.Headers().Get(natsjs.MsgIDHeader)},
				natsjs.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(head.seq, 10)},
				jetstream.VersionHeader:          []string{strconv.FormatUint(head.version+1, 10)},
			}}
			f, err := js.PublishMsgAsync(out, natsjs.WithStallWait(floorAppendWaitMax))
			if err != nil {
				return fmt.Errorf("append to %s: %w", subject, err)
			}
			inFlight = append(inFlight, pending{subject, f})
			if len(queues[subject]) > round+1 {
				next = append(next, subject)
			}
		}
		for _, p := range inFlight {
			select {
			case ack := <-p.ack.Ok():
				heads[p.subject] = floorHead{seq: ack.Sequence, version: heads[p.subject].version + 1}
			case err := <-p.ack.Err():
				return fmt.Errorf("append to %s: %w", p.subject, err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		order = next
	}
	return nil
}

// settleFloor acks a relayed batch, the last ack confirmed, as ingest settles.
func settleFloor(ctx context.Context, batch []natsjs.Msg) error {
	for _, m := range batch[:len(batch)-1] {
		if err := m.Ack(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return batch[len(batch)-1].DoubleAck(ctx)
}
