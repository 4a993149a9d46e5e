package lru_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/lru"
)

func TestCache_ForgetsLeastRecentlyUsedBeyondMax(t *testing.T) {
	c := lru.New[string, int](2)
	c.Add("a", 1)
	c.Add("b", 2)
	_, ok := c.Get("a") // b is now the least recently used
	require.True(t, ok)
	c.Add("c", 3)

	assert.Equal(t, 2, c.Len())
	_, ok = c.Get("b")
	assert.False(t, ok, "b was forgotten")
	v, ok := c.Get("a")
	assert.True(t, ok)
	assert.Equal(t, 1, v)
	v, ok = c.Get("c")
	assert.True(t, ok)
	assert.Equal(t, 3, v)
}

func TestCache_AddReplacesAndMarksUsed(t *testing.T) {
	c := lru.New[string, int](2)
	c.Add("a", 1)
	c.Add("b", 2)
	c.Add("a", 10) // replaces, and b becomes the least recently used
	c.Add("c", 3)

	v, ok := c.Get("a")
	require.True(t, ok)
	assert.Equal(t, 10, v)
	_, ok = c.Get("b")
	assert.False(t, ok)
	assert.Equal(t, 2, c.Len())
}

func TestCache_RemoveForgetsOnlyThatKey(t *testing.T) {
	c := lru.New[int, string](3)
	c.Add(1, "one")
	c.Add(2, "two")
	c.Remove(1)
	c.Remove(42) // absent: nothing happens

	_, ok := c.Get(1)
	assert.False(t, ok)
	_, ok = c.Get(2)
	assert.True(t, ok)
	assert.Equal(t, 1, c.Len())
}

func TestCache_NeverHoldsMoreThanMax(t *testing.T) {
	c := lru.New[string, int](10)
	for i := range 1000 {
		c.Add(fmt.Sprint(i), i)
		require.LessOrEqual(t, c.Len(), 10)
	}
	assert.Equal(t, 10, c.Max())
	for i := 990; i < 1000; i++ {
		_, ok := c.Get(fmt.Sprint(i))
		assert.True(t, ok, "the ten most recent stay")
	}
}

func TestNew_RefusesAnEmptyCache(t *testing.T) {
	assert.Panics(t, func() { lru.New[string, int](0) })
}

func TestCache_ValuesYieldsAllWithoutMarkingThemUsed(t *testing.T) {
	c := lru.New[string, int](2)
	c.Add("a", 1)
	c.Add("b", 2)
	var got []int
	for v := range c.Values() {
		got = append(got, v)
	}
	assert.Equal(t, []int{2, 1}, got, "most recently used first")
	c.Add("c", 3)
	_, ok := c.Get("a")
	assert.False(t, ok, "a stayed the least recently used")
	for range c.Values() {
		break // stopping early is allowed
	}
}
