package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/ledger"
	"github.com/telephony/creditledger/projections"
)

// ingestResult compares the ledger's ingest with raw JetStream publishing of the same
// payloads on the same server.
type ingestResult struct {
	Events    int     `json:"events"`
	Bytes     int     `json:"bytes"`
	RawRate   float64 `json:"raw_msgs_per_s"`
	Rate      float64 `json:"ledger_events_per_s"`
	Ratio     float64 `json:"ratio"`
	Published float64 `json:"publish_seconds"` // first to last publish ack into USAGE
	Seconds   float64 `json:"seconds"`         // first publish until every balance is exact
	// Charged is first publish until the writer had charged every usage (the command side
	// alone); the rest of Seconds is the read models catching up.
	Charged     float64  `json:"charged_seconds"`
	ChargedRate float64  `json:"charged_events_per_s"`
	RawCPU      cpuUsage `json:"raw_cpu"`
	CPU         cpuUsage `json:"cpu"`
	// The engine floor (see floor.go): the same usages through the JetStream work of the
	// ledger's design alone; zero when the floor phase did not run.
	FloorRate  float64  `json:"floor_events_per_s,omitempty"`
	FloorRatio float64  `json:"floor_ratio,omitempty"`
	FloorCPU   cpuUsage `json:"floor_cpu"`
}

// rawStream is where the raw side publishes: USAGE's configuration under another name.
const (
	rawStream        = "RAWUSAGE"
	rawSubjectPrefix = "rawusage."
)

// openAccounts opens the workload's accounts through the writer, as PUT /v1/accounts does.
func openAccounts(ctx context.Context, sys *system, accounts []string) error {
	const workers = 32
	next := atomic.Int64{}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(accounts) {
					return
				}
				cmd := ledger.OpenAccount{Currency: "USD", LowBalanceThreshold: decimal.NewFromInt(10)}
				if _, err := sys.writer.Execute(ctx, accounts[i], cmd); err != nil {
					errs <- fmt.Errorf("open %s: %w", accounts[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// publishAll publishes every usage of w under subjectPrefix with async publishes and a
// message id each, at most pendingMax unacknowledged, and waits for the last ack. sent
// counts the publishes handed to the connection.
func publishAll(ctx context.Context, nc *nats.Conn, subjectPrefix string, w *workload, pendingMax int, sent *atomic.Int64) error {
	var failed atomic.Int64
	var firstErr atomic.Value
	js, err := natsjs.New(nc,
		natsjs.WithPublishAsyncMaxPending(pendingMax),
		natsjs.WithPublishAsyncTimeout(time.Minute),
		natsjs.WithPublishAsyncErrHandler(func(_ natsjs.JetStream, _ *nats.Msg, err error) {
			if failed.Add(1) == 1 {
				firstErr.Store(err)
			}
		}))
	if err != nil {
		return err
	}
	for i, body := range w.bodies {
		m := &nats.Msg{Subject: subjectPrefix + w.subjects[i], Data: body,
			Header: nats.Header{natsjs.MsgIDHeader: []string{w.ids[i]}}}
		if _, err := js.PublishMsgAsync(m, natsjs.WithStallWait(time.Minute)); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
		sent.Add(1)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d publishes failed, first: %v", n, firstErr.Load())
	}
	return nil
}

// measureRawPublish publishes w to a stream configured like USAGE and returns msgs/s.
func measureRawPublish(ctx context.Context, sys *system, w *workload, pendingMax int, out io.Writer) (float64, cpuUsage, error) {
	var cpu cpuUsage
	usage, err := sys.js.Stream(ctx, ingest.UsageStream)
	if err != nil {
		return 0, cpu, err
	}
	cfg := usage.CachedInfo().Config
	cfg.Name, cfg.Subjects = rawStream, []string{rawSubjectPrefix + ">"}
	if _, err := sys.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return 0, cpu, err
	}
	defer sys.js.DeleteStream(context.WithoutCancel(ctx), rawStream)
	nc, err := connect(sys.srv.ClientURL(), "ledgerbench-raw-publisher")
	if err != nil {
		return 0, cpu, err
	}
	defer nc.Close()
	var sent atomic.Int64
	meter := startCPU()
	start := time.Now()
	p := startProgress(out, func() string {
		el := time.Since(start)
		return fmt.Sprintf("  raw publish   %6.1fs  published %s/%s  %s msgs/s", el.Seconds(),
			thousands(float64(sent.Load())), thousands(float64(len(w.bodies))), thousands(rate(int(sent.Load()), el)))
	})
	err = publishAll(ctx, nc, rawSubjectPrefix, w, pendingMax, &sent)
	elapsed := time.Since(start)
	cpu = meter.stop()
	p.stop()
	if err != nil {
		return 0, cpu, fmt.Errorf("raw publish: %w", err)
	}
	return rate(len(w.bodies), elapsed), cpu, nil
}

// measureIngest publishes w to USAGE at full speed and measures from the first publish
// until every account's read model shows its exact balance and version.
func measureIngest(ctx context.Context, sys *system, w *workload, pendingMax int, out io.Writer) (ingestResult, error) {
	res := ingestResult{Events: len(w.bodies), Bytes: w.bytes}
	nc, err := connect(sys.srv.ClientURL(), "ledgerbench-platform")
	if err != nil {
		return res, err
	}
	defer nc.Close()
	base := sys.consumer.Stats.Charged.Load()
	baseRejected := sys.consumer.Stats.Rejected.Load()
	var sent atomic.Int64
	pubDone := make(chan error, 1)
	var published time.Duration
	meter := startCPU()
	start := time.Now()
	go func() {
		err := publishAll(ctx, nc, ingest.UsageSubjectPrefix, w, pendingMax, &sent)
		published = time.Since(start)
		pubDone <- err
	}()
	p := startProgress(out, func() string {
		el := time.Since(start)
		charged := sys.consumer.Stats.Charged.Load() - base
		return fmt.Sprintf("  ledger ingest %6.1fs  published %s  charged %s  projected to %s  %s ev/s", el.Seconds(),
			thousands(float64(sent.Load())), thousands(float64(charged)), thousands(float64(sys.projector.Position())),
			thousands(rate(int(charged), el)))
	})
	defer p.stop()

	// Wait until the command side has charged everything (every account at its final
	// version), then until the read models have applied the store up to its head.
	pubErr := error(nil)
	pubFinished := false
	for {
		if !pubFinished {
			select {
			case pubErr = <-pubDone:
				pubFinished = true
				if pubErr != nil {
					return res, pubErr
				}
			default:
			}
		}
		if err := sys.failed(); err != nil {
			return res, err
		}
		if n := sys.consumer.Stats.Rejected.Load() - baseRejected; n > 0 {
			return res, fmt.Errorf("%d usages were rejected", n)
		}
		if pubFinished && sys.consumer.Stats.Charged.Load()-base >= uint64(len(w.bodies)) && allCharged(sys, w) {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		time.Sleep(time.Millisecond)
	}
	charged := time.Since(start)
	res.Charged, res.ChargedRate = charged.Seconds(), rate(len(w.bodies), charged)
	head, err := sys.store.Head(ctx)
	if err != nil {
		return res, err
	}
	if err := sys.projector.WaitFor(ctx, head); err != nil {
		return res, err
	}
	elapsed := time.Since(start)
	res.CPU = meter.stop()
	p.stop()
	res.Seconds, res.Published = elapsed.Seconds(), published.Seconds()
	res.Rate = rate(len(w.bodies), elapsed)
	return res, verifyBalances(ctx, sys.reads, w)
}

// allCharged tells whether the writer holds every account at its final version.
func allCharged(sys *system, w *workload) bool {
	for _, a := range w.accounts {
		v, ok := sys.writer.View(a)
		if !ok || v.Version < w.version[a] {
			return false
		}
	}
	return true
}

// verifyBalances checks every account's read model against the workload's sums.
func verifyBalances(ctx context.Context, reads *projections.DB, w *workload) error {
	var bad []string
	seen := 0
	err := reads.Accounts(ctx, func(a projections.Account) error {
		want, ok := w.balance[a.AccountID]
		if !ok {
			return nil
		}
		seen++
		if !a.Balance.Equal(want) || a.Version != w.version[a.AccountID] {
			bad = append(bad, fmt.Sprintf("%s: balance %s v%d, want %s v%d", a.AccountID, a.Balance, a.Version, want, w.version[a.AccountID]))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if seen != len(w.accounts) {
		bad = append(bad, fmt.Sprintf("%d of %d accounts in the read models", seen, len(w.accounts)))
	}
	if len(bad) > 0 {
		return errors.New("read models are not exact: " + strings.Join(bad[:min(len(bad), 5)], "; "))
	}
	return nil
}
