package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/consumers/writer"
	"github.com/telephony/creditledger/ledger"
)

// Options tune the consumer.
type Options struct {
	// BatchSizeMax is the most messages charged in one batch. Default 1000.
	BatchSizeMax int
	// AckWait is how long the server waits for an ack before redelivering. Default 10s.
	AckWait time.Duration
	// RetryDelay is how long a message waits before redelivery after a passing failure
	// (store unreachable). Default 1s.
	RetryDelay time.Duration
	// Now reads the clock. Default time.Now.
	Now func() time.Time
	// Replicas is the USAGE stream's replication factor, as in EnsureUsageStream.
	// Default 1; 3 on a NATS cluster.
	Replicas int
}

func (o Options) withDefaults() Options {
	if o.BatchSizeMax <= 0 {
		o.BatchSizeMax = 1000
	}
	if o.AckWait <= 0 {
		o.AckWait = 10 * time.Second
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Stats counts what the consumer did, for /metrics.
type Stats struct {
	Charged    atomic.Uint64 // usages charged or recognised as duplicates
	Rejected   atomic.Uint64 // messages recorded as rejections
	Redelivery atomic.Uint64 // messages handed back after a passing failure
}

// Consumer reads USAGE and charges it.
type Consumer struct {
	js     jetstream.JetStream
	writer *writer.Writer
	intake *intake.DB
	log    *zap.Logger
	opts   Options
	// Stats are the running counters.
	Stats Stats
}

// New returns a consumer. Run starts it.
func New(js jetstream.JetStream, w *writer.Writer, db *intake.DB, log *zap.Logger, opts Options) *Consumer {
	return &Consumer{js: js, writer: w, intake: db, log: log, opts: opts.withDefaults()}
}

// Message is one delivery from USAGE: what charge and settle need of a jetstream.Msg.
type Message struct {
	Subject    string
	Data       []byte
	Seq        uint64 // USAGE stream sequence
	ReceivedAt time.Time
	// ack acknowledges without waiting: after a charge, or after a rejection is durably
	// recorded; nak hands the message back for redelivery (a passing failure).
	ack func() error
	// ackConfirmed acknowledges and waits for the server to confirm it.
	ackConfirmed func(ctx context.Context) error
	nak          func(delay time.Duration) error
}

// Run consumes until ctx ends; the batch in hand is finished first.
func (c *Consumer) Run(ctx context.Context) error {
	if _, err := EnsureUsageStream(ctx, c.js, c.opts.Replicas); err != nil {
		return err
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, UsageStream, jetstream.ConsumerConfig{
		Durable:       DurableName,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.opts.AckWait,
		MaxAckPending: 4 * c.opts.BatchSizeMax,
		MaxDeliver:    -1, // never give a message up: a poison message becomes a rejection instead
	})
	if err != nil {
		return fmt.Errorf("ensure consumer %s: %w", DurableName, err)
	}
	inbox := make(chan jetstream.Msg, 2*c.opts.BatchSizeMax)
	cc, err := cons.Consume(func(m jetstream.Msg) { inbox <- m },
		jetstream.PullMaxMessages(2*c.opts.BatchSizeMax),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			c.log.Warn("usage consumer", zap.Error(err))
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", UsageStream, err)
	}
	defer cc.Stop()
	// A batch is settled (its acks sent, the last one confirmed by the server) while the
	// next one is charged: the confirmation waits for the server to handle the whole
	// batch's acks, and charging meanwhile keeps the loop from idling through that round
	// trip. Batches are still charged one after the other, so each account's usages are
	// charged in USAGE order, and settled one after the other, so acks reach the server in
	// order too.
	settled := make(chan struct{})
	close(settled) // nothing to wait for before the first batch
	for {
		batch, ok := c.collect(ctx, inbox)
		if !ok {
			<-settled
			return nil
		}
		// The batch is finished even when shutdown begins meanwhile: its appends may be
		// durable already, and its acks are what keep a restart from redoing work.
		done := c.charge(context.WithoutCancel(ctx), batch)
		<-settled
		settled = make(chan struct{})
		go func(ch chan struct{}) {
			defer close(ch)
			c.settleAll(context.WithoutCancel(ctx), done)
		}(settled)
	}
}

// collect waits for one message, then takes whatever else is already there, up to
// BatchSizeMax: big batches under load, no waiting when idle.
func (c *Consumer) collect(ctx context.Context, inbox <-chan jetstream.Msg) ([]Message, bool) {
	var batch []Message
	select {
	case <-ctx.Done():
		return nil, false
	case m := <-inbox:
		batch = append(batch, toMessage(m))
	}
	for len(batch) < c.opts.BatchSizeMax {
		select {
		case m := <-inbox:
			batch = append(batch, toMessage(m))
		default:
			return batch, true
		}
	}
	return batch, true
}

func toMessage(m jetstream.Msg) Message {
	msg := Message{Subject: m.Subject(), Data: m.Data(), ack: m.Ack, ackConfirmed: m.DoubleAck, nak: m.NakWithDelay}
	if md, err := m.Metadata(); err == nil {
		msg.Seq = md.Sequence.Stream
		msg.ReceivedAt = md.Timestamp
	}
	return msg
}

// chargedBatch is a batch whose outcomes are durable (charged, or recorded as rejections
// unless rejectErr) and that waits to be settled.
type chargedBatch struct {
	batch     []Message
	outcomes  []error
	rejectErr error
}

// charge charges what can be charged and records what cannot; settleAll then acknowledges
// the batch and hands back what failed for a passing reason.
func (c *Consumer) charge(ctx context.Context, batch []Message) chargedBatch {
	usages := make([]ledger.Usage, 0, len(batch))
	owners := make([]int, 0, len(batch))
	outcomes := make([]error, len(batch))
	for i, m := range batch {
		u, err := Decode(m.Subject, m.Data)
		if err != nil {
			outcomes[i] = err
			continue
		}
		usages = append(usages, u)
		owners = append(owners, i)
	}
	for j, err := range c.writer.ChargeUsages(ctx, usages) {
		outcomes[owners[j]] = err
	}
	rejections := c.rejections(batch, outcomes)
	rejectErr := c.intake.AddRejections(ctx, rejections)
	if rejectErr != nil {
		c.log.Error("record rejections", zap.Error(rejectErr), zap.Int("rejections", len(rejections)))
	} else if c.log.Core().Enabled(zap.DebugLevel) {
		for _, r := range rejections {
			c.log.Debug("usage rejected", zap.String("account_id", r.AccountID), zap.String("rejection_id", r.ID),
				zap.Uint64("seq", r.Seq), zap.String("reason", r.Reason))
		}
	}
	return chargedBatch{batch: batch, outcomes: outcomes, rejectErr: rejectErr}
}

// settleAll acknowledges the messages of a charged batch whose outcome is durable and
// hands back the others.
func (c *Consumer) settleAll(ctx context.Context, b chargedBatch) {
	lastAck := -1
	for i := range b.batch {
		if acknowledged(b.outcomes[i], b.rejectErr) {
			lastAck = i
		}
	}
	for i, m := range b.batch {
		c.settle(ctx, m, b.outcomes[i], b.rejectErr, i == lastAck)
	}
}

// ackConfirmWaitMax bounds the wait for the server to confirm a batch's last ack.
const ackConfirmWaitMax = 5 * time.Second

// acknowledged reports whether a message with this outcome is acknowledged: its
// outcome (a charge, a duplicate, a recorded rejection) is durable.
func acknowledged(outcome, rejectErr error) bool {
	return outcome == nil || (isRejection(outcome) && rejectErr == nil)
}

// settle acknowledges a message whose outcome is durable and hands back the others.
// Acks are fire-and-forget except the batch's last one (confirm): the server handles a
// consumer's acks in order, so once it confirms the last, the whole batch is settled.
// That keeps a graceful stop from leaving a charged batch behind in USAGE for one round
// trip per batch.
func (c *Consumer) settle(ctx context.Context, m Message, outcome, rejectErr error, confirm bool) {
	var err error
	switch {
	case acknowledged(outcome, rejectErr) && confirm:
		c.count(outcome)
		ctx, cancel := context.WithTimeout(ctx, ackConfirmWaitMax)
		err = m.ackConfirmed(ctx)
		cancel()
	case acknowledged(outcome, rejectErr):
		c.count(outcome)
		err = m.ack()
	default:
		c.Stats.Redelivery.Add(1)
		if !isRejection(outcome) {
			c.log.Warn("usage handed back for redelivery", zap.String("account_id", AccountOf(m.Subject)), zap.Uint64("seq", m.Seq), zap.Error(outcome))
		}
		err = m.nak(c.opts.RetryDelay)
	}
	if err != nil {
		// The server redelivers after AckWait; the usage index makes that harmless.
		c.log.Warn("settle usage message", zap.Uint64("seq", m.Seq), zap.Error(err))
	}
}

func (c *Consumer) count(outcome error) {
	if outcome == nil {
		c.Stats.Charged.Add(1)
	} else {
		c.Stats.Rejected.Add(1)
	}
}

func (c *Consumer) rejections(batch []Message, outcomes []error) []intake.Rejection {
	var rs []intake.Rejection
	for i, m := range batch {
		if !isRejection(outcomes[i]) {
			continue
		}
		var e *ledger.Error
		errors.As(outcomes[i], &e)
		rs = append(rs, intake.Rejection{
			ID: intake.RejectionID(m.Seq), Seq: m.Seq, ReceivedAt: m.ReceivedAt, Subject: m.Subject,
			AccountID: AccountOf(m.Subject),
			Reason:    e.Reason, Message: e.Message, Payload: m.Data,
		})
	}
	return rs
}

// isRejection tells a usage that can never be charged as sent (a domain error) from a
// passing failure.
func isRejection(err error) bool {
	var e *ledger.Error
	return errors.As(err, &e)
}

// Decode validates one message of USAGE: a usage event whose account_id is the subject's
// account.
func Decode(subject string, data []byte) (ledger.Usage, error) {
	u, err := ledger.ParseUsage(data)
	if err != nil {
		return u, err
	}
	if subject != Subject(u.AccountID) {
		return u, ledger.Errorf(ledger.EINVALID, "subject_mismatch", "account_id %q does not match subject %q", u.AccountID, subject)
	}
	return u, nil
}
