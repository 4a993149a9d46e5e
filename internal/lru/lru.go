// Package lru is a map bounded in size that forgets its least recently used
// entry first. It is the one LRU of the module: the central's token and
// authorization caches, its per-peer authentication budgets and its
// per-caller rate limits use it.
//
// A Cache is not safe for concurrent use: each user holds its own lock, which
// guards more than the map (a bucket's arithmetic). It knows nothing of time.
// Expiring is a Cache of answers that each expire, with its lock: the caches
// of TokenReview outcomes and SubjectAccessReview decisions, whose lock
// guards the map alone. It imports only the standard library.
package lru

import (
	"container/list"
	"iter"
)

// Cache maps keys to values and holds at most Max entries.
type Cache[K comparable, V any] struct {
	max   int
	order *list.List // of *entry[K, V], most recently used first
	items map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// New returns an empty Cache of at most max entries. It panics if max < 1:
// sizes come from validated configuration.
func New[K comparable, V any](max int) *Cache[K, V] {
	if max < 1 {
		panic("lru: max must be at least 1")
	}
	return &Cache[K, V]{max: max, order: list.New(), items: make(map[K]*list.Element)}
}

// Get returns the value of k and marks it most recently used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	el, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry[K, V]).val, true
}

// Add sets the value of k, marks it most recently used and, when that makes
// one entry too many, forgets the least recently used one.
func (c *Cache[K, V]) Add(k K, v V) {
	if el, ok := c.items[k]; ok {
		el.Value.(*entry[K, V]).val = v
		c.order.MoveToFront(el)
		return
	}
	c.items[k] = c.order.PushFront(&entry[K, V]{key: k, val: v})
	if c.order.Len() > c.max {
		c.removeElement(c.order.Back())
	}
}

// Remove forgets k, if present.
func (c *Cache[K, V]) Remove(k K) {
	if el, ok := c.items[k]; ok {
		c.removeElement(el)
	}
}

// Len is the number of entries, at most Max.
func (c *Cache[K, V]) Len() int { return c.order.Len() }

// Values yields every value, most recently used first, without marking any
// of them used. The Cache must not change while it yields.
func (c *Cache[K, V]) Values() iter.Seq[V] {
	return func(yield func(V) bool) {
		for el := c.order.Front(); el != nil; el = el.Next() {
			if !yield(el.Value.(*entry[K, V]).val) {
				return
			}
		}
	}
}

// Max is the most entries the Cache holds.
func (c *Cache[K, V]) Max() int { return c.max }

func (c *Cache[K, V]) removeElement(el *list.Element) {
	delete(c.items, el.Value.(*entry[K, V]).key)
	c.order.Remove(el)
}
