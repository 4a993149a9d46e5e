package lru

import (
	"sync"
	"time"
)

// Expiring is a Cache whose entries each carry an expiry, behind a lock of
// its own: the shape of the central's answer caches (TokenReview outcomes,
// SubjectAccessReview decisions). An expired entry is dropped when it is
// looked up, or when it reaches the cold end of the list. It is safe for
// concurrent use; time is the caller's, passed in.
type Expiring[K comparable, V any] struct {
	mu      sync.Mutex
	entries *Cache[K, timed[V]]
}

type timed[V any] struct {
	val     V
	expires time.Time
}

// NewExpiring returns an empty Expiring of at most max entries; it panics
// if max < 1, as New does.
func NewExpiring[K comparable, V any](max int) *Expiring[K, V] {
	return &Expiring[K, V]{entries: New[K, timed[V]](max)}
}

// Get returns the value of k if it has not expired at now.
func (c *Expiring[K, V]) Get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries.Get(k)
	if ok && now.Before(e.expires) {
		return e.val, true
	}
	if ok {
		c.entries.Remove(k)
	}
	var zero V
	return zero, false
}

// Add stores v under k until expires, evicting the least recently used
// entry when full.
func (c *Expiring[K, V]) Add(k K, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries.Add(k, timed[V]{val: v, expires: expires})
}

// Len is the number of entries, expired ones not yet dropped included.
func (c *Expiring[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Len()
}
