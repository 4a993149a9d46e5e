package lru_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/kubernaut/datastorage/internal/lru"
)

func TestExpiring_AnswersUntilItsExpiryThenForgets(t *testing.T) {
	c := lru.NewExpiring[string, int](2)
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	c.Add("a", 1, now.Add(time.Minute))

	v, ok := c.Get("a", now.Add(59*time.Second))
	assert.True(t, ok)
	assert.Equal(t, 1, v)
	_, ok = c.Get("a", now.Add(time.Minute))
	assert.False(t, ok, "expired at its expiry")
	assert.Zero(t, c.Len(), "an expired entry looked up is dropped")
}

func TestExpiring_ForgetsLeastRecentlyUsedBeyondMax(t *testing.T) {
	c := lru.NewExpiring[string, int](2)
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	c.Add("a", 1, later)
	c.Add("b", 2, later)
	c.Get("a", now)
	c.Add("c", 3, later)

	assert.Equal(t, 2, c.Len())
	_, ok := c.Get("b", now)
	assert.False(t, ok, "b was forgotten")
	_, ok = c.Get("a", now)
	assert.True(t, ok)
}
