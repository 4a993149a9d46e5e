package auth

import (
	"sync"
	"time"

	"github.com/kubernaut/datastorage/internal/lru"
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
	entries *lru.Cache[cacheKey, cacheEntry]
}

func newResultCache(max int) *resultCache {
	return &resultCache{entries: lru.New[cacheKey, cacheEntry](max)}
}

// get returns the unexpired entry for k.
func (c *resultCache) get(k cacheKey, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries.Get(k)
	if !ok {
		return cacheEntry{}, false
	}
	if !now.Before(e.expires) {
		c.entries.Remove(k)
		return cacheEntry{}, false
	}
	return e, true
}

// put stores e, evicting the least recently used entry when full.
func (c *resultCache) put(e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries.Add(e.key, e)
}

func (c *resultCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Len()
}
