package backoff_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/kubernaut/datastorage/internal/backoff"
)

// steps is the next n ceilings of b.
func steps(b *backoff.Backoff, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = b.Step()
	}
	return out
}

func TestStep_DoublesFromMinUpToMax(t *testing.T) {
	b := backoff.New(100*time.Millisecond, time.Second)
	got := steps(b, 6)
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second}
	assert.Equal(t, want, got)
}

func TestStep_MaxBelowMinCapsTheFirstCeiling(t *testing.T) {
	b := backoff.New(2*time.Second, time.Second)
	assert.Equal(t, []time.Duration{time.Second, time.Second}, steps(b, 2))
}

func TestStep_NeverOverflowsAHugeMax(t *testing.T) {
	b := backoff.New(time.Second, math.MaxInt64)
	prev := time.Duration(0)
	for range 100 {
		d := b.Step()
		assert.GreaterOrEqual(t, d, prev, "ceilings never shrink")
		prev = d
	}
	assert.Equal(t, time.Duration(math.MaxInt64), prev)
}

func TestReset_StartsAgainFromMin(t *testing.T) {
	b := backoff.New(time.Millisecond, time.Second)
	steps(b, 5)
	b.Reset()
	assert.Equal(t, []time.Duration{time.Millisecond, 2 * time.Millisecond}, steps(b, 2))
}

func TestNext_DrawsBetweenHalfTheCeilingAndTheCeiling(t *testing.T) {
	var asked []time.Duration
	lowest := func(n time.Duration) time.Duration { asked = append(asked, n); return 0 }
	highest := func(n time.Duration) time.Duration { asked = append(asked, n); return n - 1 }

	b := backoff.New(100*time.Millisecond, time.Second)
	b.SetRandN(lowest)
	assert.Equal(t, 50*time.Millisecond, b.Next(), "the lowest draw is half the first ceiling")
	b.SetRandN(highest)
	assert.Equal(t, 200*time.Millisecond, b.Next(), "the highest draw is the second ceiling")
	assert.Equal(t, []time.Duration{50*time.Millisecond + 1, 100*time.Millisecond + 1}, asked,
		"the draw is from [0, d/2] inclusive")
}

func TestNext_WithTheRealSourceStaysInRange(t *testing.T) {
	b := backoff.New(10*time.Millisecond, 80*time.Millisecond)
	for i := range 200 {
		if i%5 == 0 {
			b.Reset()
		}
		d := b.Next()
		assert.GreaterOrEqual(t, d, 5*time.Millisecond)
		assert.LessOrEqual(t, d, 80*time.Millisecond)
	}
}

func TestJitter_KeepsADurationTooShortToHalve(t *testing.T) {
	b := backoff.New(time.Second, time.Second)
	b.SetRandN(func(time.Duration) time.Duration { panic("no draw expected") })
	assert.Equal(t, time.Duration(1), b.Jitter(1))
	assert.Equal(t, time.Duration(0), b.Jitter(0))
}

func TestSleep_ReturnsFalseWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.False(t, backoff.Sleep(ctx, time.Hour, nil))
}

func TestSleep_ReturnsTrueWhenWoken(t *testing.T) {
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	assert.True(t, backoff.Sleep(t.Context(), time.Hour, wake))
}

func TestSleep_ReturnsTrueOnceTheWaitIsOver(t *testing.T) {
	assert.True(t, backoff.Sleep(t.Context(), time.Millisecond, nil))
}

func TestSleep_DoesNotWaitForANonPositiveDuration(t *testing.T) {
	assert.True(t, backoff.Sleep(t.Context(), 0, nil))
	assert.True(t, backoff.Sleep(t.Context(), -time.Second, nil))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.False(t, backoff.Sleep(ctx, 0, nil))
}
