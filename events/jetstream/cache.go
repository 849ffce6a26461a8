package jetstream

import "sync"

// tip is where an account stream ends as far as the store has seen: the version of its
// last event and that event's JetStream stream sequence. The mapping version -> sequence
// never changes once written (the stream is immutable), so a tip is never wrong, only
// possibly behind; a stale tip costs one wrong-last-sequence round trip, never a wrong
// append.
type tip struct {
	version uint64
	seq     uint64
}

// cacheShards spreads the lock of the tip cache: Append updates it once per event from
// several goroutines.
const cacheShards = 64

// tipCache maps account id -> tip with bounded memory. When a shard is full it drops an
// arbitrary entry (Go map iteration order): a dropped account costs one last-message
// lookup on its next append, which is cheaper than keeping LRU order on the hot path.
type tipCache struct {
	perShard int
	shards   [cacheShards]struct {
		sync.Mutex
		m map[string]tip
	}
}

// newTipCache holds up to size accounts; size <= 0 disables the cache (every append
// looks the stream up, which tests use to exercise that path).
func newTipCache(size int) *tipCache {
	c := &tipCache{perShard: (size + cacheShards - 1) / cacheShards}
	if size <= 0 {
		c.perShard = 0
	}
	for i := range c.shards {
		c.shards[i].m = make(map[string]tip)
	}
	return c
}

func (c *tipCache) shard(account string) int {
	// FNV-1a: cheap and good enough to spread account ids.
	h := uint32(2166136261)
	for i := 0; i < len(account); i++ {
		h ^= uint32(account[i])
		h *= 16777619
	}
	return int(h % cacheShards)
}

func (c *tipCache) get(account string) (tip, bool) {
	if c.perShard == 0 {
		return tip{}, false
	}
	s := &c.shards[c.shard(account)]
	s.Lock()
	t, ok := s.m[account]
	s.Unlock()
	return t, ok
}

// put records t unless a later tip of the account is already known: acks of concurrent
// appends can arrive in any order.
func (c *tipCache) put(account string, t tip) {
	if c.perShard == 0 {
		return
	}
	s := &c.shards[c.shard(account)]
	s.Lock()
	old, ok := s.m[account]
	switch {
	case ok && old.version >= t.version:
	case !ok && len(s.m) >= c.perShard:
		for k := range s.m {
			delete(s.m, k)
			break
		}
		s.m[account] = t
	default:
		s.m[account] = t
	}
	s.Unlock()
}
