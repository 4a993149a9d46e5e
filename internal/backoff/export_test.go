package backoff

import "time"

// SetRandN makes b draw its jitter from randN instead of rand.N.
func (b *Backoff) SetRandN(randN func(time.Duration) time.Duration) { b.randN = randN }
