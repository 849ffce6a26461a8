package writer

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/telephony/creditledger/consumers/intake"
)

// usageFilterProbes is the number of bits set per usage key.
const usageFilterProbes = 4

// usageFilter is a Bloom filter over every usage ever charged in the ledger stream: when
// it says a key is absent, the key is in neither the usage index nor the ledger, and the
// index lookup can be skipped. The ingest profile showed that lookup (an SQLite query per
// 400 keys, about 5.7 µs per new usage) as the largest cost of a batch's decision, and
// almost every key it looks up is new.
//
// It never answers "absent" for a charged usage, because every usage the index can hold
// passes through add first: Load adds every usage of the whole stream (it reads the
// stream from its start), and indexUsages adds each usage this writer appends or reloads.
// A false "maybe" only costs the lookup. Its memory is fixed (Options.UsageFilterBits):
// the false-positive rate grows with the number of usages, never the memory.
type usageFilter struct {
	words []atomic.Uint64
	mask  uint64 // bits-1; bits is a power of two
	seed  maphash.Seed
}

// newUsageFilter returns a filter of bits bits (rounded up to a power of two), or nil
// (no filtering) when bits <= 0.
func newUsageFilter(bits int) *usageFilter {
	if bits <= 0 {
		return nil
	}
	n := uint64(64)
	for n < uint64(bits) {
		n <<= 1
	}
	return &usageFilter{words: make([]atomic.Uint64, n/64), mask: n - 1, seed: maphash.MakeSeed()}
}

func (f *usageFilter) hash(k intake.UsageKey) (uint64, uint64) {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(k.AccountID)
	h.WriteByte(0)
	h.WriteString(k.UsageID)
	sum := h.Sum64()
	// Double hashing (Kirsch-Mitzenmacher): probe i is h1 + i*h2.
	return sum, (sum>>32 | sum<<32) | 1
}

// add records k. It is safe to call from any goroutine.
func (f *usageFilter) add(k intake.UsageKey) {
	if f == nil {
		return
	}
	h1, h2 := f.hash(k)
	for i := range uint64(usageFilterProbes) {
		b := (h1 + i*h2) & f.mask
		f.words[b/64].Or(1 << (b % 64))
	}
}

// mayContain is false only when k was never added.
func (f *usageFilter) mayContain(k intake.UsageKey) bool {
	if f == nil {
		return true
	}
	h1, h2 := f.hash(k)
	for i := range uint64(usageFilterProbes) {
		b := (h1 + i*h2) & f.mask
		if f.words[b/64].Load()&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}
