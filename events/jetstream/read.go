package jetstream

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/telephony/creditledger/events"
)

const (
	// chunkSizeMax is how many messages travel together from the consumer to the
	// decoders and on to the caller: large enough that channel hand-offs cost nothing
	// per event, small enough that a live subscriber is not kept waiting (a chunk is
	// also handed on as soon as the consumer has nothing more pending).
	chunkSizeMax = 256
	// decodeWorkersMax bounds the goroutines decoding events for one read.
	decodeWorkersMax = 4
	// consumerInactiveThreshold lets the server drop a read's consumer that the store
	// could not delete (process killed); an active reader keeps it alive.
	consumerInactiveThreshold = time.Minute
	// consumerDeleteWait bounds the clean-up of a finished read's consumer.
	consumerDeleteWait = 2 * time.Second
)

// ReadStream returns the events of one account after afterVersion, in order; see
// events.Store. It looks up the account's last event first, so it knows where to stop
// and returns at once for an unknown or unchanged account.
func (s *Store) ReadStream(ctx context.Context, accountID string, afterVersion uint64) ([]events.Envelope, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if err := checkAccountID(accountID); err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	subject := Subject(accountID)
	last, found, err := s.lastOf(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", subject, err)
	}
	if !found || last.version <= afterVersion {
		return nil, nil
	}
	s.tips.put(accountID, tip{version: last.version, seq: last.seq})

	count := last.version - afterVersion
	out := make([]events.Envelope, 0, count)
	collect := func(e events.Envelope) error {
		want := afterVersion + uint64(len(out)) + 1
		if e.Version != want || e.AccountID != accountID {
			return fmt.Errorf("read %s: seq %d holds %s v%d, want %s v%d", subject, e.Position, e.AccountID, e.Version, accountID, want)
		}
		out = append(out, e)
		return nil
	}
	// A short tail (a reload after a conflict) is fetched by following the links back
	// from the last event: a round trip per event and no consumer to set up.
	if count <= walkBackMax {
		recs, ok, err := s.walkBack(ctx, subject, last, afterVersion+1)
		if err != nil {
			return nil, err
		}
		if ok {
			for _, r := range recs {
				e, err := decodeEnvelope(r.msg.Data)
				if err != nil {
					return nil, fmt.Errorf("read %s at seq %d: %w", subject, r.seq, err)
				}
				e.Position = r.seq
				if err := collect(e); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
	}
	start := uint64(1)
	if afterVersion > 0 {
		// Skip to the first wanted event instead of reading the account from its start:
		// an old account holds millions of events and a reload wants the last few.
		first, found, err := s.search(ctx, subject, afterVersion+1, last.seq)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", subject, err)
		}
		if !found {
			return nil, fmt.Errorf("read %s: v%d not found below v%d at seq %d", subject, afterVersion+1, last.version, last.seq)
		}
		start = first.seq
	}
	err = s.consume(ctx, readSpec{
		filter: subject, start: start, stop: last.seq,
		batch: int(min(count, uint64(s.opts.ReadBatchSize))),
	}, collect)
	if err != nil {
		return nil, err
	}
	if uint64(len(out)) != count {
		return nil, fmt.Errorf("read %s: got %d events after v%d, want %d", subject, len(out), afterVersion, count)
	}
	return out, nil
}

// ReadAll delivers every event after position after up to the head at call time; see
// events.Store. It is the rebuild path: one ordered consumer with large pulls, decoding
// spread over the cores while fn sees the events in stream order.
func (s *Store) ReadAll(ctx context.Context, after uint64, fn func(events.Envelope) error) error {
	head, err := s.Head(ctx)
	if err != nil {
		return fmt.Errorf("read all: %w", err)
	}
	if head <= after {
		return nil
	}
	err = s.consume(ctx, readSpec{start: after + 1, stop: head, batch: s.opts.ReadBatchSize}, fn)
	if errors.Is(err, events.ErrStopped) {
		return nil
	}
	return err
}

// Subscribe is ReadAll that stays live; see events.Store. The ordered consumer
// recreates itself after a reconnect or a lost consumer and resumes after the last
// event it delivered. It returns ctx.Err() when ctx ends, and an error at once when after
// is beyond the head of the store.
func (s *Store) Subscribe(ctx context.Context, after uint64, fn func(events.Envelope) error) error {
	head, err := s.Head(ctx)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if after > head {
		// A checkpoint the store has never reached means the read model belongs to
		// another store (or this one lost data); waiting for the store to get there
		// would silently skip every event until then.
		return fmt.Errorf("subscribe after %d: store %s ends at %d", after, StreamName, head)
	}
	err = s.consume(ctx, readSpec{start: after + 1, batch: s.opts.ReadBatchSize}, fn)
	if errors.Is(err, events.ErrStopped) {
		return nil
	}
	return err
}

// readSpec says which part of the stream a read covers.
type readSpec struct {
	filter string // one literal subject, or "" for the whole stream
	start  uint64 // first stream sequence to deliver, >= 1
	stop   uint64 // last stream sequence to deliver; 0 reads on forever
	batch  int    // messages per pull request
}

// chunk is a run of consecutive messages on their way to the caller.
type chunk struct {
	raws  []rawMsg
	evs   []events.Envelope
	err   error
	ready chan struct{} // closed when evs (or err) is set
}

type rawMsg struct {
	data []byte
	seq  uint64
}

func (c *chunk) decode() {
	c.evs = make([]events.Envelope, len(c.raws))
	for i, r := range c.raws {
		e, err := decodeEnvelope(r.data)
		if err != nil {
			c.err = fmt.Errorf("read %s at seq %d: %w", StreamName, r.seq, err)
			c.evs = c.evs[:i]
			return
		}
		e.Position = r.seq
		c.evs[i] = e
	}
	c.raws = nil
}

// consume runs one ordered consumer over spec and calls fn for each event in stream
// order. Three stages keep the cores busy: the consumer callback cuts messages into
// chunks, decoders turn chunks into events in parallel, and the caller's goroutine runs
// fn over the chunks in the order they were cut.
func (s *Store) consume(ctx context.Context, spec readSpec, fn func(events.Envelope) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.life, cancel)()

	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       spec.start,
		InactiveThreshold: consumerInactiveThreshold,
	}
	if spec.filter != "" {
		cfg.FilterSubjects = []string{spec.filter}
	}
	cons, err := s.js.OrderedConsumer(ctx, StreamName, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", StreamName, err)
	}

	workers := min(runtime.GOMAXPROCS(0), decodeWorkersMax)
	work := make(chan *chunk, workers*2)
	ordered := make(chan *chunk, workers*4)
	for range workers {
		go func() {
			for {
				select {
				case c := <-work:
					c.decode()
					close(c.ready)
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	// The callback runs on the subscription's goroutine; the mutex only matters in the
	// instant an ordered consumer hands over to its replacement after a reset.
	var (
		mu      sync.Mutex
		cur     *chunk
		lastSeq = spec.start - 1
		stopped bool
	)
	send := func(c *chunk) bool {
		select {
		case work <- c:
		case <-ctx.Done():
			return false
		}
		select {
		case ordered <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	handler := func(m jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		seq, pending, ok := ackInfo(m.Reply())
		if !ok {
			c := &chunk{err: fmt.Errorf("read %s: not a JetStream message: reply %q", StreamName, m.Reply()), ready: make(chan struct{})}
			close(c.ready)
			stopped = true
			select {
			case ordered <- c:
			case <-ctx.Done():
			}
			return
		}
		if seq <= lastSeq {
			return // redelivered across a consumer reset; already handed on
		}
		lastSeq = seq
		if cur == nil {
			cur = &chunk{raws: make([]rawMsg, 0, chunkSizeMax), ready: make(chan struct{})}
		}
		cur.raws = append(cur.raws, rawMsg{data: m.Data(), seq: seq})
		end := spec.stop > 0 && seq >= spec.stop
		if len(cur.raws) < chunkSizeMax && pending > 0 && !end {
			return
		}
		c := cur
		cur = nil
		if !send(c) {
			stopped = true
			return
		}
		if end {
			stopped = true
			close(ordered)
		}
	}
	cc, err := cons.Consume(handler,
		jetstream.PullMaxMessages(max(spec.batch, 1)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// The ordered consumer recovers from these by itself (new consumer after
			// the last delivered sequence); only a closed connection ends the read.
			s.log.Debug("ledger read: consumer error", zap.Error(err))
		}),
	)
	if err != nil {
		return fmt.Errorf("read %s: %w", StreamName, err)
	}
	defer func() {
		cc.Stop()
		s.deleteConsumer(cons)
	}()
	closed := cc.Closed()

	// ended says why ctx is done: the caller's context, or Close.
	ended := func() error {
		if s.life.Err() != nil {
			return errClosed
		}
		return ctx.Err()
	}
	for {
		select {
		case c, ok := <-ordered:
			if !ok {
				return nil
			}
			select {
			case <-c.ready:
			case <-ctx.Done():
				return ended()
			}
			for _, e := range c.evs {
				if err := fn(e); err != nil {
					return err
				}
			}
			if c.err != nil {
				return c.err
			}
		case <-ctx.Done():
			return ended()
		case <-closed:
			if ctx.Err() != nil {
				return ended()
			}
			return fmt.Errorf("read %s: consumer closed (connection closed?)", StreamName)
		}
	}
}

// deleteConsumer removes a finished read's consumer now rather than leaving it on the
// server until its inactivity threshold: ReadStream runs on every conflict.
func (s *Store) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil || info.Name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), consumerDeleteWait)
	defer cancel()
	if err := s.js.DeleteConsumer(ctx, StreamName, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Debug("ledger read: delete consumer", zap.String("consumer", info.Name), zap.Error(err))
	}
}

// ackInfo reads the stream sequence and the pending count from the reply subject of a
// JetStream message without allocating (the library's Metadata allocates per message,
// which shows on the rebuild path). Two layouts exist:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
//	$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<more>]
func ackInfo(reply string) (seq, pending uint64, ok bool) {
	var tokens [12]string
	n, start := 0, 0
	for i := 0; i <= len(reply); i++ {
		if i == len(reply) || reply[i] == '.' {
			if n == len(tokens) {
				break
			}
			tokens[n] = reply[start:i]
			n++
			start = i + 1
		}
	}
	if n < 9 || tokens[0] != "$JS" || tokens[1] != "ACK" {
		return 0, 0, false
	}
	seqTok, pendingTok := tokens[5], tokens[8]
	if n >= 11 {
		seqTok, pendingTok = tokens[7], tokens[10]
	} else if n != 9 {
		return 0, 0, false
	}
	var okSeq, okPending bool
	seq, okSeq = parseUint(seqTok)
	pending, okPending = parseUint(pendingTok)
	return seq, pending, okSeq && okPending
}

func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
