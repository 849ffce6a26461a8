package intake

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/shopspring/decimal"
)

// UsageKey names one usage: unique within an account.
type UsageKey struct {
	AccountID string
	UsageID   string
}

// IndexedUsage is a charged usage as the index keeps it.
type IndexedUsage struct {
	UsageKey
	ContentHash string
	Amount      decimal.Decimal
	// Position is where the usage's event sits in the ledger store.
	Position uint64
}

// The usage index is a Pebble store (an LSM tree) in its own directory next to the
// SQLite file. It was a SQLite table, where each usage was an insert at a random key
// of a B-tree: page writes, WAL frames and checkpoints. An LSM appends a batch to its
// log and a sorted memtable, and merges it into sorted files later in sequential
// passes. BenchmarkPutUsages (300,000 usages onto a 300,000-usage index, 16,384 per
// batch, CPU of the process including Pebble's flushes and compactions): SQLite 9.8 µs
// per usage, Pebble 3.0-3.4 µs. BenchmarkLookupUsages, 1,000 keys at a time: absent
// keys 3.2 µs (SQLite) and 2.2 µs (Pebble), present keys 5.4 and 3.2 µs.
//
// Keys:
//
//	'u' uvarint(len(account_id)) account_id usage_id   a charged usage
//	'c' "usage_index"                                   the checkpoint
//
// The usage key is the ids themselves rather than a hash of them: no collision can
// ever make two usages one, the store stays readable with a dump, and the keys of
// one account sit together, which block prefix compression shrinks.
//
// A usage's value: one byte saying how the content hash is kept (hashHex16: the 32
// lowercase hex digits ledger.ParseUsage writes, as 16 raw bytes; hashVerbatim: any
// other string, length-prefixed, as tests and older events may carry), the position
// as a uvarint, and the amount's decimal string to the end.
const (
	usageKeyPrefix      = 'u'
	checkpointKeyPrefix = 'c'

	hashHex16    = 0
	hashVerbatim = 1
)

// indexCheckpointKey holds the usage index's checkpoint in the index's own store, so
// that the two cannot disagree: a fresh index directory (deleted, lost, or the first
// start after the move from SQLite) has no checkpoint, and the writer's Load re-indexes
// the whole stream into it.
var indexCheckpointKey = []byte{checkpointKeyPrefix, 'u', 's', 'a', 'g', 'e', '_', 'i', 'n', 'd', 'e', 'x'}

// Pebble sizing. The index is written off the hot path and read only for usages the
// writer's Bloom filter and cache cannot answer, so it gets modest memory: the
// ledger's target is at most 1 KiB per account for the whole process.
const (
	// indexCacheBytes is the block cache. Pebble charges its memtables to this cache
	// (up to two of them, the one being written and the one being flushed), so what
	// is left for blocks is this minus 2*indexMemTableBytes: with 32 MiB and 16 MiB
	// memtables nothing was left, every lookup read each table's index block with a
	// pread, and a lookup of an absent key cost 20 µs instead of 3.
	indexCacheBytes = 64 << 20
	// indexMemTableBytes is the largest memtable (Pebble starts smaller and doubles up
	// to it): a flush writes an L0 file of about this size. 8 MiB is twice Pebble's
	// default; the cost per usage did not change between 8 and 16 MiB.
	indexMemTableBytes = 8 << 20
	// indexBloomBitsPerKey sizes the per-table Bloom filters: 10 bits give about 1%
	// false positives, so the lookup of a usage that is not in the index (the common
	// case, the reason for the lookup) reads a data block of about one table in a
	// hundred that it asks.
	indexBloomBitsPerKey = 10
)

// indexDir is the directory of the usage index of the intake database at path.
func indexDir(path string) string {
	return filepath.Join(filepath.Dir(path), filepath.Base(path)+".usage-index")
}

// usageIndex is the durable index of charged usages.
type usageIndex struct {
	// mu is held shared by every operation and exclusively by close: Pebble panics
	// when a closed DB is used, and the writer's flusher and lookups may still run
	// while the process stops. After close, operations return ErrClosed.
	mu     sync.RWMutex
	db     *pebble.DB
	closed bool
}

// keepFirst is the index's merge operator: a usage is written with Merge, and of all
// the values merged into one key the oldest wins. Re-indexing a usage is then a no-op,
// as the SQLite table's ON CONFLICT DO NOTHING was, without a read before each write
// (that read would cost a lookup per usage, about what the write costs).
var keepFirst = &pebble.Merger{
	Name: "creditledger.usage_index.keep_first.v1",
	Merge: func(_, value []byte) (pebble.ValueMerger, error) {
		return &keepFirstMerger{value: bytes.Clone(value)}, nil
	},
}

// keepFirstMerger keeps the oldest operand it is given. Pebble may hand operands from
// newest to oldest (reads) or in other orders (compactions); keeping the oldest is
// associative, which is all Pebble asks of a merge operator.
type keepFirstMerger struct{ value []byte }

func (m *keepFirstMerger) MergeNewer([]byte) error { return nil }

func (m *keepFirstMerger) MergeOlder(value []byte) error {
	m.value = append(m.value[:0], value...)
	return nil
}

func (m *keepFirstMerger) Finish(bool) ([]byte, io.Closer, error) { return m.value, nil, nil }

// openUsageIndex opens (creating if needed) the Pebble store in dir.
func openUsageIndex(dir string) (*usageIndex, error) {
	cache := pebble.NewCache(indexCacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: indexMemTableBytes,
		Merger:       keepFirst,
		Logger:       quietLogger{},
	}
	// Set on L0; every other level inherits it.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(indexBloomBitsPerKey)
	// No block compression: usage ids and content hashes are random, so Snappy found
	// little to shrink, and it cost about 0.5 µs of CPU per usage in flushes and
	// compactions (BenchmarkPutUsages: 3.0 µs per usage without, 3.5 with) and made
	// each block read from disk a decompression.
	opts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open usage index %s: %w", dir, err)
	}
	return &usageIndex{db: db}, nil
}

// quietLogger drops Pebble's informational lines (WAL recovery, compactions), which
// nobody reads, and keeps its errors and fatal errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(format string, a ...any) { pebble.DefaultLogger.Errorf(format, a...) }
func (quietLogger) Fatalf(format string, a ...any) { pebble.DefaultLogger.Fatalf(format, a...) }

// close closes the store and makes every later operation return ErrClosed. It waits
// for the operations running.
func (x *usageIndex) close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil
	}
	x.closed = true
	// Pebble's Close writes the WAL's buffered tail to the file and syncs it, so a
	// graceful stop keeps every usage written before it.
	if err := x.db.Close(); err != nil {
		return fmt.Errorf("close usage index: %w", err)
	}
	return nil
}

// usageKey appends the index key of k to dst.
func usageKey(dst []byte, k UsageKey) []byte {
	dst = append(dst, usageKeyPrefix)
	dst = binary.AppendUvarint(dst, uint64(len(k.AccountID)))
	dst = append(dst, k.AccountID...)
	return append(dst, k.UsageID...)
}

// appendUsageValue appends the index value of u to dst.
func appendUsageValue(dst []byte, u IndexedUsage) []byte {
	if len(u.ContentHash) == 32 && isLowerHex(u.ContentHash) {
		dst = append(dst, hashHex16)
		dst, _ = hex.AppendDecode(dst, []byte(u.ContentHash))
	} else {
		dst = append(dst, hashVerbatim)
		dst = binary.AppendUvarint(dst, uint64(len(u.ContentHash)))
		dst = append(dst, u.ContentHash...)
	}
	dst = binary.AppendUvarint(dst, u.Position)
	return append(dst, u.Amount.String()...)
}

// isLowerHex reports whether s is lowercase hex only: what hex.EncodeToString gives
// back, so a hash kept as raw bytes reads back as the same string.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !lowerHexDigit[s[i]] {
			return false
		}
	}
	return true
}

// lowerHexDigit says which bytes are lowercase hex digits (isLowerHex runs for every
// usage written).
var lowerHexDigit = func() (t [256]bool) {
	for _, c := range "0123456789abcdef" {
		t[c] = true
	}
	return t
}()

// decodeUsageValue decodes an index value into u (whose key is set by the caller).
func decodeUsageValue(v []byte, u *IndexedUsage) error {
	if len(v) == 0 {
		return errors.New("empty value")
	}
	kind, v := v[0], v[1:]
	switch kind {
	case hashHex16:
		if len(v) < 16 {
			return errors.New("short content hash")
		}
		u.ContentHash, v = hex.EncodeToString(v[:16]), v[16:]
	case hashVerbatim:
		n, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < n {
			return errors.New("bad content hash length")
		}
		u.ContentHash, v = string(v[w:w+int(n)]), v[w+int(n):]
	default:
		return fmt.Errorf("unknown content hash kind %d", kind)
	}
	p, w := binary.Uvarint(v)
	if w <= 0 {
		return errors.New("bad position")
	}
	u.Position = p
	amount, err := decimal.NewFromString(string(v[w:]))
	if err != nil {
		return fmt.Errorf("amount %q: %w", v[w:], err)
	}
	u.Amount = amount
	return nil
}

// LookupUsages returns the indexed usages among keys.
func (db *DB) LookupUsages(ctx context.Context, keys []UsageKey) (map[UsageKey]IndexedUsage, error) {
	x := db.index
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return nil, fmt.Errorf("look up usage index: %w", ErrClosed)
	}
	found := make(map[UsageKey]IndexedUsage)
	var key []byte
	for _, k := range keys {
		key = usageKey(key[:0], k)
		// Get consults each table's Bloom filter first, so a key that is not in the
		// index (most lookups) reads a data block only on a false positive.
		v, closer, err := x.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up usage %s/%s: %w", k.AccountID, k.UsageID, err)
		}
		u := IndexedUsage{UsageKey: k}
		err = decodeUsageValue(v, &u)
		closer.Close()
		if err != nil {
			return nil, fmt.Errorf("usage index %s/%s: %w", k.AccountID, k.UsageID, err)
		}
		found[k] = u
	}
	return found, nil
}

// PutUsages indexes charged usages in one atomic batch. Re-indexing a usage is a no-op
// (the first content stays), so the catch-up after a crash may overlap what was
// already written.
//
// The batch is committed without fsync (pebble.NoSync): it is in Pebble's WAL buffer
// and memtable, reaches the OS within a WAL block (32 KiB) or at the next sync, and the
// disk at the next sync, flush or Close. A crash of the process or the machine can
// therefore lose the last usages written, but never a usage at or below the
// checkpoint: the WAL is replayed in order, and SetCheckpoint syncs the WAL up to and
// including itself. What is lost is above the checkpoint, and Load re-indexes it from
// the ledger stream before any new usage is accepted. An fsync per batch would buy
// nothing the stream does not already give.
func (db *DB) PutUsages(ctx context.Context, usages []IndexedUsage) error {
	if len(usages) == 0 {
		return nil
	}
	x := db.index
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return fmt.Errorf("index usages: %w", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("index usages: %w", err)
	}
	b := x.db.NewBatch()
	defer b.Close()
	var key, value []byte
	for _, u := range usages {
		key = usageKey(key[:0], u.UsageKey)
		value = appendUsageValue(value[:0], u)
		// Merge with keepFirst, not Set: an index that already holds the usage keeps
		// the content it holds. The batch copies key and value.
		if err := b.Merge(key, value, nil); err != nil {
			return fmt.Errorf("index usage %s/%s: %w", u.AccountID, u.UsageID, err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("index usages: %w", err)
	}
	return nil
}

// Checkpoint is the ledger position up to which every usage is known to be indexed.
func (db *DB) Checkpoint(ctx context.Context) (uint64, error) {
	x := db.index
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return 0, fmt.Errorf("read usage index checkpoint: %w", ErrClosed)
	}
	v, closer, err := x.db.Get(indexCheckpointKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read usage index checkpoint: %w", err)
	}
	defer closer.Close()
	p, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, fmt.Errorf("read usage index checkpoint: bad value %x", v)
	}
	return p, nil
}

// SetCheckpoint records that every usage up to position is indexed. The caller has
// written those usages with PutUsages before; this write syncs the store's WAL, which
// makes them durable together with the checkpoint that covers them (see PutUsages).
// It is called once per start, so its fsync costs nothing that matters.
func (db *DB) SetCheckpoint(ctx context.Context, position uint64) error {
	x := db.index
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return fmt.Errorf("write usage index checkpoint: %w", ErrClosed)
	}
	if err := x.db.Set(indexCheckpointKey, binary.AppendUvarint(nil, position), pebble.Sync); err != nil {
		return fmt.Errorf("write usage index checkpoint: %w", err)
	}
	return nil
}
