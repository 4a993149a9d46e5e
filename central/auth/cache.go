package auth

import (
	"container/list"
	"sync"
	"time"
)

// cacheKey is HMAC-SHA256(per-process key, token, audience): never the token.
type cacheKey [32]byte

// cacheEntry is one TokenReview outcome: an identity, or an error wrapping
// ErrUnauthenticated.
type cacheEntry struct {
	key     cacheKey
	id      Identity
	err     error
	expires time.Time
}

// resultCache is a size-bounded LRU of TokenReview outcomes, each with its own
// expiry. Expired entries are dropped when looked up or when they reach the
// cold end of the list.
type resultCache struct {
	mu      sync.Mutex
	max     int
	order   *list.List // of *cacheEntry, most recently used first
	entries map[cacheKey]*list.Element
}

func newResultCache(max int) *resultCache {
	return &resultCache{max: max, order: list.New(), entries: make(map[cacheKey]*list.Element)}
}

// get returns the unexpired entry for k.
func (c *resultCache) get(k cacheKey, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return cacheEntry{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.removeLocked(el)
		return cacheEntry{}, false
	}
	c.order.MoveToFront(el)
	return *e, true
}

// put stores e, evicting the least recently used entry when full.
func (c *resultCache) put(e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		*el.Value.(*cacheEntry) = e
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.max {
		c.removeLocked(c.order.Back())
	}
	c.entries[e.key] = c.order.PushFront(&e)
}

func (c *resultCache) removeLocked(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).key)
	c.order.Remove(el)
}

func (c *resultCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
