package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff: the ceiling is Min after the first
// failure and doubles after each further one, up to Max; the wait is drawn
// from [ceiling/2, ceiling] (full jitter in [d/2, d]). Reset starts again
// from Min. A Backoff is not safe for concurrent use: each retry loop holds
// its own.
type Backoff struct {
	min, max time.Duration
	cur      time.Duration                     // the last ceiling; 0: no failure yet
	randN    func(time.Duration) time.Duration // rand.N; tests fix the draw
}

// New returns a Backoff from min to max. min must be positive; a max below
// min caps every ceiling, the first included.
func New(min, max time.Duration) *Backoff {
	return &Backoff{min: min, max: max, randN: rand.N[time.Duration]}
}

// Step counts one more failure and returns its ceiling, without jitter:
// min the first time, then twice the one before, never more than max.
func (b *Backoff) Step() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = min(b.min, b.max)
	case b.cur > b.max/2: // doubling would pass max (or overflow)
		b.cur = b.max
	default:
		b.cur *= 2
	}
	return b.cur
}

// Next counts one more failure and returns the wait: Step, jittered.
func (b *Backoff) Next() time.Duration { return b.Jitter(b.Step()) }

// Jitter draws a wait from [d/2, d]; a d too short to halve is returned as is.
func (b *Backoff) Jitter(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + b.randN(half+1)
}

// Reset forgets the failures after a success: the next ceiling is min.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d, or less when ctx ends or, if wake is not nil, when wake
// receives (an idle worker told there is new work). It returns false when
// ctx ended first, true otherwise; d <= 0 does not wait.
func Sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	case <-wake:
		return true
	}
}
