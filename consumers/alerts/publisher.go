package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/intake"
	"github.com/telephony/creditledger/events"
	"github.com/telephony/creditledger/ledger"
)

// Options tune a Publisher. Zero values are the defaults stated per field.
type Options struct {
	// Duplicates is the ALERTS stream's de-duplication window: a publish repeated within
	// it (after a crash between the publish and the checkpoint) is dropped by the
	// server. Default 24h, so that a publisher down for most of a day still repeats
	// nothing.
	Duplicates time.Duration
	// MaxAge is how long ALERTS keeps an alert (at least Duplicates). Default 30 days.
	MaxAge time.Duration
	// CheckpointInterval is how long the checkpoint may lag behind events that published
	// nothing; an event that published an alert is checkpointed at once. Replaying the
	// lag after a crash publishes nothing. Default 1s.
	CheckpointInterval time.Duration
	// RetryDelayMax caps the growing wait between tries of a failed publish or
	// checkpoint write. Default 5s.
	RetryDelayMax time.Duration
	// Replicas is the ALERTS stream's replication factor. Default 1; 3 on a NATS
	// cluster, like LEDGER and USAGE (ledgerd --replicas).
	Replicas int
}

// retryDelayFirst is the first wait after a failed publish or checkpoint write.
const retryDelayFirst = 50 * time.Millisecond

func (o Options) withDefaults() Options {
	if o.Duplicates <= 0 {
		o.Duplicates = 24 * time.Hour
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 30 * 24 * time.Hour
	}
	o.MaxAge = max(o.MaxAge, o.Duplicates) // the server refuses a window longer than the age
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Second
	}
	if o.RetryDelayMax <= 0 {
		o.RetryDelayMax = 5 * time.Second
	}
	return o
}

// Stats are the publisher's running counters, for /metrics.
type Stats struct {
	// Published counts alerts stored by the server; Duplicates those it had already.
	Published, Duplicates atomic.Uint64
	// Position is the ledger position up to which alerts are published (the stored
	// checkpoint may lag it by CheckpointInterval over events without alerts).
	Position atomic.Uint64
}

// Publisher publishes alerts. Create it with NewPublisher, then call Run once.
type Publisher struct {
	store events.Store
	js    jetstream.JetStream
	db    *intake.DB
	log   *zap.Logger
	opts  Options
	// Stats are the running counters.
	Stats Stats

	// The fields below belong to Run's goroutine.
	stream jetstream.Stream
	// accounts is every account's state, evolved from the whole store: a level change
	// needs the level before it.
	accounts map[string]*ledger.Account
	// checkpoint is the stored position: events up to it published their alerts before.
	checkpoint uint64
	// position is the last event handled; savedAt when checkpoint last caught up with it.
	position uint64
	savedAt  time.Time
	// inDoubt holds until the first event after the checkpoint that has alerts: a crash
	// may have come after some of its alerts were stored and before the checkpoint.
	inDoubt bool
	// afterPublish and beforeCheckpoint, when set (by tests), run after an alert is
	// acknowledged and before a checkpoint write; an error ends Run as a crash there would.
	afterPublish     func(Alert) error
	beforeCheckpoint func(position uint64) error
}

// NewPublisher returns a publisher that follows store, publishes through js and keeps
// its checkpoint in db.
func NewPublisher(store events.Store, js jetstream.JetStream, db *intake.DB, log *zap.Logger, opts Options) *Publisher {
	return &Publisher{store: store, js: js, db: db, log: log, opts: opts.withDefaults(), accounts: make(map[string]*ledger.Account)}
}

// StreamConfig is the configuration of the ALERTS stream.
func StreamConfig(opts Options) jetstream.StreamConfig {
	opts = opts.withDefaults()
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Balance alerts of the credit ledger (API.md section 6), de-duplicated by Nats-Msg-Id",
		Subjects:    []string{StreamSubjects},
		Storage:     jetstream.FileStorage,
		MaxAge:      opts.MaxAge,
		Duplicates:  opts.Duplicates,
		Replicas:    max(opts.Replicas, 1),
	}
}

// EnsureStream creates the ALERTS stream, or updates it to StreamConfig(opts).
func EnsureStream(ctx context.Context, js jetstream.JetStream, opts Options) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, StreamConfig(opts))
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	return s, nil
}

// Run ensures the ALERTS stream, then follows the store from its start: events up to the
// checkpoint only rebuild the account levels, later ones publish their alerts. It
// returns nil when ctx ends, or an error if it could not start or a checkpoint test hook
// failed.
func (p *Publisher) Run(ctx context.Context) error {
	stream, err := EnsureStream(ctx, p.js, p.opts)
	if err != nil {
		return err
	}
	checkpoint, err := p.db.NamedCheckpoint(ctx, intake.AlertsCheckpointName)
	if err != nil {
		return err
	}
	p.stream, p.checkpoint, p.inDoubt, p.savedAt = stream, checkpoint, true, time.Now()
	p.Stats.Position.Store(checkpoint)
	p.log.Info("alert publisher started", zap.Uint64("checkpoint", checkpoint))
	for {
		err := p.store.Subscribe(ctx, p.position, func(e events.Envelope) error { return p.handle(ctx, e) })
		if ctx.Err() != nil {
			p.saveOnStop()
			return nil
		}
		if errors.Is(err, errCrash) {
			return err
		}
		p.log.Error("alert publisher: store subscription ended; subscribing again", zap.Error(err),
			zap.Uint64("after", p.position), zap.Duration("delay", p.opts.RetryDelayMax))
		if !sleep(ctx, p.opts.RetryDelayMax) {
			p.saveOnStop()
			return nil
		}
	}
}

// handle evolves the account with one event and, past the checkpoint, publishes the
// alerts it causes and then moves the checkpoint.
func (p *Publisher) handle(ctx context.Context, e events.Envelope) error {
	acc := p.accounts[e.AccountID]
	if acc == nil {
		acc = ledger.NewAccount(e.AccountID)
		p.accounts[e.AccountID] = acc
	}
	alerts := Derive(acc, e)
	if e.Position <= p.checkpoint {
		p.position = e.Position
		return nil // published before the checkpoint was stored
	}
	published := len(alerts) > 0
	if published && p.inDoubt {
		var err error
		if alerts, err = p.notYetStored(ctx, e, alerts); err != nil {
			return err
		}
		p.inDoubt = false
	}
	for _, al := range alerts {
		if err := p.publish(ctx, e, al); err != nil {
			return err
		}
		if p.afterPublish != nil {
			if err := p.afterPublish(al); err != nil {
				return fmt.Errorf("%w: %w", errCrash, err)
			}
		}
	}
	p.position = e.Position
	p.Stats.Position.Store(e.Position)
	if published || time.Since(p.savedAt) >= p.opts.CheckpointInterval {
		return p.save(ctx)
	}
	return nil
}

// notYetStored drops the alerts of e that the stream already holds. It runs for the one
// event whose alerts a crash may have cut in two: they are published in order on the
// account's subject, so the last alert stored there tells how far the publish got.
func (p *Publisher) notYetStored(ctx context.Context, e events.Envelope, alerts []Alert) ([]Alert, error) {
	var lastID string
	err := p.retry(ctx, "look up the last alert of "+e.AccountID, func() error {
		m, err := p.stream.GetLastMsgForSubject(ctx, Subject(e.AccountID))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return nil
		case err != nil:
			return err
		}
		lastID = m.Header.Get(jetstream.MsgIDHeader)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, al := range alerts {
		if MsgID(e.ID.String(), al.Alert) == lastID {
			p.log.Info("alerts found already published after a restart", zap.String("account_id", e.AccountID),
				zap.String("event_id", e.ID.String()), zap.Int("skipped", i+1))
			return alerts[i+1:], nil
		}
	}
	return alerts, nil
}

// publish stores one alert in ALERTS, trying until the server acknowledges it or ctx ends.
func (p *Publisher) publish(ctx context.Context, e events.Envelope, al Alert) error {
	body, err := json.Marshal(al)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	id := MsgID(e.ID.String(), al.Alert)
	return p.retry(ctx, "publish alert "+id, func() error {
		ack, err := p.js.Publish(ctx, Subject(al.AccountID), body, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamName))
		if err != nil {
			return err
		}
		if ack.Duplicate {
			p.Stats.Duplicates.Add(1)
		} else {
			p.Stats.Published.Add(1)
		}
		return nil
	})
}

// errCrash wraps what a test hook returns to stop Run as a crash would.
var errCrash = errors.New("simulated crash")

// save stores the position handled so far as the checkpoint.
func (p *Publisher) save(ctx context.Context) error {
	if p.beforeCheckpoint != nil {
		if err := p.beforeCheckpoint(p.position); err != nil {
			return fmt.Errorf("%w: %w", errCrash, err)
		}
	}
	err := p.retry(ctx, "store the alerts checkpoint", func() error {
		return p.db.SetNamedCheckpoint(ctx, intake.AlertsCheckpointName, p.position)
	})
	if err != nil {
		return err
	}
	p.checkpoint, p.savedAt = p.position, time.Now()
	return nil
}

// saveOnStop stores the last position on a clean stop, so a restart replays less.
func (p *Publisher) saveOnStop() {
	if p.position <= p.checkpoint {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.db.SetNamedCheckpoint(ctx, intake.AlertsCheckpointName, p.position); err != nil {
		p.log.Warn("alerts checkpoint not stored at stop; the restart replays a little more", zap.Error(err))
	}
}

// retry runs fn until it succeeds or ctx ends, waiting longer after each failure: a NATS
// or disk outage holds the alerts back, it never skips one.
func (p *Publisher) retry(ctx context.Context, what string, fn func() error) error {
	delay := retryDelayFirst
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn("alert publisher: "+what+" failed; trying again", zap.Error(err), zap.Duration("delay", delay))
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, p.opts.RetryDelayMax)
	}
}

// sleep waits d, or less when ctx ends first (then it returns false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
