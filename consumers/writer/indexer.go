package writer

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/telephony/creditledger/consumers/intake"
)

// Limits of the background index writer.
const (
	// indexRowsPerTxMax bounds the usages written in one index batch. The index (an
	// LSM, see intake) costs about the same per usage at 1,000, 16,384 or 65,536 per
	// batch (BenchmarkPutUsages), unlike the B-tree before it, which wanted the largest
	// transactions. 16,384 keeps a batch (about 1 MB) under half of Pebble's memtable,
	// above which Pebble turns a batch into a memtable of its own and flushes it, and
	// keeps indexPendingMax, which is twice this, to a few MB of queued usages.
	indexRowsPerTxMax = 16_384
	// indexGatherDelay is how long the flusher lets usages gather before its first write.
	// Under load it never waits: whatever arrived while it wrote is the next batch.
	indexGatherDelay = 20 * time.Millisecond
	// indexRetryDelayBase is the pause after a failed index write; it doubles up to
	// indexRetryDelayMax.
	indexRetryDelayBase = 100 * time.Millisecond
	indexRetryDelayMax  = 5 * time.Second
)

// indexer writes charged usages to the durable usage index behind the hot path. The
// ingest profile showed the index write as the largest cost of a batch (then a SQLite
// transaction of random-key inserts, about 19 µs per usage, on the batch's critical path);
// now a batch hands its usages over and goes on, and one flusher goroutine writes them in
// large batches while the next batch is decided and appended.
//
// Exactly-once holds meanwhile because a usage waiting here can still be looked up here
// (lookup), whatever the cache has dropped. A crash loses nothing: Load re-indexes from
// the stream every usage after the index's checkpoint.
type indexer struct {
	db         *intake.DB
	log        *zap.Logger
	pendingMax int

	mu       sync.Mutex
	changed  *sync.Cond // pending shrank or flushing stopped
	pending  []intake.IndexedUsage
	queued   map[intake.UsageKey]intake.IndexedUsage // pending, by key
	flushing bool
	// hurry wakes a gathering flusher: sync wants the index written now.
	hurry chan struct{}
}

// newIndexer returns an indexer that holds at most pendingMax unwritten usages before
// add waits for the flusher.
func newIndexer(db *intake.DB, log *zap.Logger, pendingMax int) *indexer {
	x := &indexer{db: db, log: log, pendingMax: pendingMax, queued: make(map[intake.UsageKey]intake.IndexedUsage),
		hurry: make(chan struct{}, 1)}
	x.changed = sync.NewCond(&x.mu)
	return x
}

// add queues usages for the index and starts the flusher if it is not running. It waits
// while pendingMax usages are unwritten, so a stalled index stalls charging instead of
// growing memory without bound.
func (x *indexer) add(usages []intake.IndexedUsage) {
	if len(usages) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for len(x.pending) >= x.pendingMax {
		x.changed.Wait()
	}
	x.pending = append(x.pending, usages...)
	for _, u := range usages {
		x.queued[u.UsageKey] = u
	}
	if !x.flushing {
		x.flushing = true
		go x.flush()
	}
}

// flush writes what is pending until nothing is, then ends. A failed write is retried
// with a growing pause; the usages stay pending (and in the cache) meanwhile.
func (x *indexer) flush() {
	select {
	case <-time.After(indexGatherDelay):
	case <-x.hurry:
	}
	delay := indexRetryDelayBase
	x.mu.Lock()
	for len(x.pending) > 0 {
		n := min(len(x.pending), indexRowsPerTxMax)
		batch := x.pending[:n:n]
		x.mu.Unlock()
		err := x.db.PutUsages(context.Background(), batch)
		if errors.Is(err, intake.ErrClosed) {
			// Stopping: the next Load indexes these from the stream.
			x.mu.Lock()
			break
		}
		if err != nil {
			x.log.Error("usage index write failed; retrying", zap.Error(err), zap.Int("usages", n), zap.Duration("retry_in", delay))
			time.Sleep(delay)
			delay = min(2*delay, indexRetryDelayMax)
		}
		x.mu.Lock()
		if err == nil {
			delay = indexRetryDelayBase
			for _, u := range batch {
				delete(x.queued, u.UsageKey)
			}
			x.pending = x.pending[n:]
			if len(x.pending) == 0 {
				x.pending = nil // let the backing array go
			}
			x.changed.Broadcast()
		}
	}
	if len(x.pending) > 0 {
		x.pending, x.queued = nil, make(map[intake.UsageKey]intake.IndexedUsage) // closed
	}
	x.flushing = false
	x.changed.Broadcast()
	x.mu.Unlock()
}

// lookup adds the usages among keys that are waiting to be written to found and
// returns the other keys.
func (x *indexer) lookup(keys []intake.UsageKey, found map[intake.UsageKey]intake.IndexedUsage) (misses []intake.UsageKey) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, k := range keys {
		if u, ok := x.queued[k]; ok {
			found[k] = u
		} else {
			misses = append(misses, k)
		}
	}
	return misses
}

// sync waits until every usage added before it is in the durable index, or ctx ends.
func (x *indexer) sync(ctx context.Context) error {
	select {
	case x.hurry <- struct{}{}:
	default:
	}
	done := make(chan struct{})
	go func() {
		x.mu.Lock()
		for x.flushing || len(x.pending) > 0 {
			x.changed.Wait()
		}
		x.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
