package writer

import (
	"sync"

	"github.com/telephony/creditledger/consumers/intake"
)

// usageCache remembers the content hash of recently charged usages so that the common
// duplicate (a redelivery seconds later) is answered from memory. It is only a cache: the
// usage index is the truth. Two generations bound its memory: when the current one is
// full it becomes the previous one and the oldest generation is dropped.
type usageCache struct {
	mu         sync.Mutex
	current    map[intake.UsageKey]string
	previous   map[intake.UsageKey]string
	entriesMax int
}

func newUsageCache(entriesMax int) *usageCache {
	return &usageCache{current: make(map[intake.UsageKey]string), entriesMax: entriesMax}
}

func (c *usageCache) get(k intake.UsageKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.current[k]; ok {
		return h, true
	}
	h, ok := c.previous[k]
	return h, ok
}

func (c *usageCache) put(k intake.UsageKey, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.current) >= c.entriesMax/2 {
		c.previous, c.current = c.current, make(map[intake.UsageKey]string)
	}
	c.current[k] = hash
}
