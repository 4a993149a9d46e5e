package ratelimit

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kubernaut/datastorage/internal/lru"
)

// Defaults for the zero fields of Config.
const (
	DefaultRate    = 100   // records per second per key
	DefaultBurst   = 1000  // records
	DefaultMaxKeys = 10000 // keys tracked at once
)

// ErrTooLarge refuses a request of more records than the burst: it could
// never pass, however long the caller waited. The HTTP edge answers 413.
var ErrTooLarge = errors.New("ratelimit: request larger than burst")

// Config sizes a Limiter. Every field documents its zero value.
type Config struct {
	// Rate is the sustained number of records per second per key. Zero:
	// DefaultRate.
	Rate float64
	// Burst is the bucket size in records: the most a key may write at once
	// after being idle, and the largest request that can ever pass. Zero:
	// DefaultBurst.
	Burst int
	// MaxKeys bounds the number of keys tracked; the least recently used is
	// forgotten beyond it (and starts again with a full bucket). Zero:
	// DefaultMaxKeys.
	MaxKeys int
}

func (c Config) withDefaults() Config {
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	c.Burst = cmp.Or(c.Burst, DefaultBurst)
	c.MaxKeys = cmp.Or(c.MaxKeys, DefaultMaxKeys)
	return c
}

// Validate reports the first invalid field. Zero fields are valid: they mean
// the defaults.
func (c Config) Validate() error {
	switch {
	case math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0:
		return fmt.Errorf("ratelimit: Rate must be a positive number of records per second (0 for %d), got %v", DefaultRate, c.Rate)
	case c.Burst < 0:
		return fmt.Errorf("ratelimit: Burst must be positive (0 for %d), got %d", DefaultBurst, c.Burst)
	case c.MaxKeys < 0:
		return fmt.Errorf("ratelimit: MaxKeys must be positive (0 for %d), got %d", DefaultMaxKeys, c.MaxKeys)
	}
	return nil
}

// Limiter is a set of per-key token buckets, bounded by an LRU. It is safe for
// concurrent use.
//
// Its limit may be shared by several limiters (the central's replicas, each
// seeing part of a key's traffic): SetShare(n) makes this one enforce 1/n of
// it, so that n of them together hold the configured limit.
type Limiter struct {
	cfg Config

	mu       sync.Mutex
	buckets  *lru.Cache[string, *rate.Limiter]
	share    int        // n of SetShare; 1 until it is called
	rate     rate.Limit // cfg.Rate / share
	capacity int        // of each bucket: cfg.Burst / share, at least 1
}

// New returns a Limiter for cfg, its zero fields set to the defaults. It
// panics if cfg.Validate fails: callers validate configuration first, where
// they can report it (cmd does).
func New(cfg Config) *Limiter {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	return &Limiter{cfg: cfg, buckets: lru.New[string, *rate.Limiter](cfg.MaxKeys),
		share: 1, rate: rate.Limit(cfg.Rate), capacity: cfg.Burst}
}

// Config is the effective configuration, defaults filled in: the limit the
// sharers hold together, whatever this one's share.
func (l *Limiter) Config() Config { return l.cfg }

// SetShare makes this limiter enforce 1/n of the configured limit from now
// on (n < 1 counts as 1): every bucket, those that exist and those yet to
// be made, refills at Rate/n and holds at most Burst/n (rounded, at least
// one) records. A bucket keeps the tokens it had, or its debt, up to its new
// capacity: a change hands out no extra burst. What a single request may
// ask is still bounded by the whole Burst (Allow).
func (l *Limiter) SetShare(now time.Time, n int) {
	n = max(n, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if n == l.share {
		return
	}
	l.share = n
	l.rate = rate.Limit(l.cfg.Rate / float64(n))
	l.capacity = max(1, int(math.Round(float64(l.cfg.Burst)/float64(n))))
	for lim := range l.buckets.Values() {
		lim.SetLimitAt(now, l.rate)
		lim.SetBurstAt(now, l.capacity)
	}
}

// Share is n of the last SetShare, 1 before any.
func (l *Limiter) Share() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.share
}

// Allow takes n tokens from key's bucket at now. ok=false leaves the bucket
// untouched and retryAfter says when n tokens will be there (rounding up to
// whole seconds for a Retry-After header is the caller's job). n > Burst
// returns ErrTooLarge, since such a request could never pass; n <= 0 takes
// nothing and is allowed.
//
// With a share (SetShare), a bucket holds less than Burst; a request larger
// than the bucket passes when the bucket is full, and the bucket goes into
// debt for the rest, so that whatever the share, a request of up to Burst
// records eventually passes and the rate holds on average. retryAfter is
// then the time until the bucket is full.
func (l *Limiter) Allow(now time.Time, key string, n int) (ok bool, retryAfter time.Duration, err error) {
	if n > l.cfg.Burst {
		return false, 0, fmt.Errorf("%w: %d records, burst is %d", ErrTooLarge, n, l.cfg.Burst)
	}
	if n <= 0 {
		return true, 0, nil
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.bucketLocked(key)
	// Under l.mu nobody else touches lim between the look and the take, so a
	// refusal never has to give tokens back.
	have := lim.TokensAt(now)
	// need is what must be there: n, or a full bucket for more than it holds.
	need := min(n, l.capacity)
	if have < float64(need) {
		return false, l.waitLocked(lim, now, have, need), nil
	}
	if n > l.capacity {
		l.takeLocked(lim, now, n)
		return true, 0, nil
	}
	if !lim.AllowN(now, n) {
		// Cannot happen: TokensAt and AllowN see the same state.
		return false, 0, fmt.Errorf("ratelimit: bucket %q refused %d records with %.3f available", key, n, have)
	}
	return true, 0, nil
}

// takeLocked takes n tokens from lim at now, going into debt when it holds
// fewer, and returns how long until it is out of debt (zero when it never
// was). ReserveN refuses more than the bucket holds at once, so n goes in
// pieces, each reservation adding its debt to the last.
func (l *Limiter) takeLocked(lim *rate.Limiter, now time.Time, n int) time.Duration {
	var wait time.Duration
	for n > 0 {
		take := min(n, l.capacity)
		r := lim.ReserveN(now, take)
		if !r.OK() {
			return rate.InfDuration
		}
		wait = r.DelayFrom(now)
		n -= take
	}
	return wait
}

// waitLocked is how long until lim holds n tokens, rounded up so that a retry
// at now+wait passes.
func (l *Limiter) waitLocked(lim *rate.Limiter, now time.Time, have float64, n int) time.Duration {
	ns := math.Ceil((float64(n) - have) / float64(l.rate) * float64(time.Second))
	if ns >= math.MaxInt64/2 {
		return rate.InfDuration // a rate so low the wait is centuries
	}
	wait := time.Duration(ns)
	// Float rounding in the bucket's own arithmetic can leave it a hair short
	// at exactly now+wait; step forward until it is not.
	for i := 0; i < 1000 && lim.TokensAt(now.Add(wait)) < float64(n); i++ {
		wait += time.Microsecond
	}
	return wait
}

// bucketLocked returns key's limiter, creating it with a full bucket and
// evicting the least recently used key beyond MaxKeys.
func (l *Limiter) bucketLocked(key string) *rate.Limiter {
	if lim, ok := l.buckets.Get(key); ok {
		return lim
	}
	lim := rate.NewLimiter(l.rate, l.capacity)
	l.buckets.Add(key, lim)
	return lim
}

// Len is the number of keys tracked, at most MaxKeys.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buckets.Len()
}

// Admit reports whether key may start a read at now: its bucket is not in
// debt. Reads are charged after the fact (Charge), for the rows they
// returned, since a query's size is known only once it has run; a caller
// that overdrew waits until the bucket has refilled. ok=false comes with the
// wait.
func (l *Limiter) Admit(now time.Time, key string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.bucketLocked(key)
	have := lim.TokensAt(now)
	if have >= 1 {
		return true, 0
	}
	return false, l.waitLocked(lim, now, have, 1)
}

// Charge takes n tokens from key's bucket at now, going into debt when it
// holds fewer, and returns how long until the bucket is out of debt again
// (zero when it never was): a streaming reader sleeps that long before it
// goes on, which holds it to the rate on average. n may exceed Burst.
func (l *Limiter) Charge(now time.Time, key string, n int) time.Duration {
	if n <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.takeLocked(l.bucketLocked(key), now, n)
}
