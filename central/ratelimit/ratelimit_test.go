package ratelimit_test

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/ratelimit"
)

var t0 = time.Date(2025, 10, 6, 12, 0, 0, 0, time.UTC)

func newLimiter(t *testing.T, cfg ratelimit.Config) *ratelimit.Limiter {
	t.Helper()
	require.NoError(t, cfg.Validate())
	return ratelimit.New(cfg)
}

func allow(t *testing.T, l *ratelimit.Limiter, now time.Time, key string, n int) (bool, time.Duration) {
	t.Helper()
	ok, retry, err := l.Allow(now, key, n)
	require.NoError(t, err)
	return ok, retry
}

func TestConfig_ZeroMeansDefaults(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{})
	assert.Equal(t, ratelimit.Config{Rate: 100, Burst: 1000, MaxKeys: 10000}, l.Config())
}

func TestConfig_ValidateRejectsNonsense(t *testing.T) {
	for name, cfg := range map[string]ratelimit.Config{
		"negative rate":    {Rate: -1},
		"NaN rate":         {Rate: math.NaN()},
		"infinite rate":    {Rate: math.Inf(1)},
		"negative burst":   {Burst: -1},
		"negative maxkeys": {MaxKeys: -5},
	} {
		t.Run(name, func(t *testing.T) {
			err := cfg.Validate()
			require.Error(t, err)
			assert.Panics(t, func() { ratelimit.New(cfg) })
		})
	}
}

func TestAllow_BurstThenRefusalWithRetryAfter(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 10, Burst: 100})

	ok, retry := allow(t, l, t0, "ns/gateway-sa", 60)
	require.True(t, ok)
	assert.Zero(t, retry)
	ok, _ = allow(t, l, t0, "ns/gateway-sa", 40)
	require.True(t, ok, "the rest of the burst passes at the same instant")

	ok, retry = allow(t, l, t0, "ns/gateway-sa", 25)
	require.False(t, ok, "the burst is spent")
	assert.Equal(t, 2500*time.Millisecond, retry, "25 records at 10/s")

	// A refusal takes nothing: a millisecond early still fails with the
	// remaining wait, and at now+retryAfter exactly the request passes.
	ok, retry = allow(t, l, t0.Add(2499*time.Millisecond), "ns/gateway-sa", 25)
	require.False(t, ok)
	assert.Equal(t, time.Millisecond, retry)
	ok, _ = allow(t, l, t0.Add(2500*time.Millisecond), "ns/gateway-sa", 25)
	assert.True(t, ok)
}

func TestAllow_RetryAfterAlwaysSuffices(t *testing.T) {
	// Rates that do not divide a second evenly: the retry time is rounded up
	// so that the retry itself passes.
	for _, r := range []float64{3, 7, 0.3, 33.3, 1000.0 / 7} {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			l := newLimiter(t, ratelimit.Config{Rate: r, Burst: 10})
			ok, _ := allow(t, l, t0, "k", 10)
			require.True(t, ok)
			now := t0.Add(1234567 * time.Nanosecond)
			ok, retry := allow(t, l, now, "k", 7)
			require.False(t, ok)
			require.Positive(t, retry)
			ok, _ = allow(t, l, now.Add(retry), "k", 7)
			assert.True(t, ok, "retry after %v at rate %v", retry, r)
		})
	}
}

func TestAllow_RefillsOverTimeUpToBurst(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 100, Burst: 200})
	ok, _ := allow(t, l, t0, "k", 200)
	require.True(t, ok)

	ok, _ = allow(t, l, t0.Add(time.Second), "k", 100)
	assert.True(t, ok, "one second refills 100")
	ok, _ = allow(t, l, t0.Add(time.Second), "k", 1)
	assert.False(t, ok, "and no more")

	// A long idle period refills to the burst, not beyond.
	later := t0.Add(time.Hour)
	ok, _ = allow(t, l, later, "k", 200)
	require.True(t, ok)
	ok, retry := allow(t, l, later, "k", 1)
	assert.False(t, ok)
	assert.Equal(t, 10*time.Millisecond, retry)
}

func TestAllow_KeysAreIndependent(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 5})
	ok, _ := allow(t, l, t0, "ns/a", 5)
	require.True(t, ok)
	ok, _ = allow(t, l, t0, "ns/a", 1)
	require.False(t, ok)

	ok, _ = allow(t, l, t0, "ns/b", 5)
	assert.True(t, ok, "another key has its own full bucket")
}

func TestAllow_MoreThanBurstIsTooLarge(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 1000, Burst: 500})
	ok, retry, err := l.Allow(t0, "k", 501)
	require.ErrorIs(t, err, ratelimit.ErrTooLarge)
	assert.False(t, ok)
	assert.Zero(t, retry)

	ok, _ = allow(t, l, t0, "k", 500)
	assert.True(t, ok, "a too-large request took nothing; exactly the burst still passes")
}

func TestAllow_ZeroRecordsAlwaysPass(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1})
	ok, _ := allow(t, l, t0, "k", 1)
	require.True(t, ok)
	ok, retry := allow(t, l, t0, "k", 0)
	assert.True(t, ok)
	assert.Zero(t, retry)
}

func TestAllow_LRUBoundsKeysAndForgetsTheOldest(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 10, MaxKeys: 3})
	for _, k := range []string{"a", "b", "c"} {
		ok, _ := allow(t, l, t0, k, 10)
		require.True(t, ok)
	}
	// Touch "a" so that "b" is the least recently used.
	ok, _ := allow(t, l, t0, "a", 1)
	require.False(t, ok)

	ok, _ = allow(t, l, t0, "d", 10)
	require.True(t, ok)
	assert.Equal(t, 3, l.Len(), "never more than MaxKeys")

	ok, _ = allow(t, l, t0, "c", 1)
	assert.False(t, ok, "c is still tracked, its bucket still empty")
	ok, _ = allow(t, l, t0, "a", 1)
	assert.False(t, ok, "a is still tracked, its bucket still empty")
	ok, _ = allow(t, l, t0, "b", 10)
	assert.True(t, ok, "b was evicted and starts again with a full bucket")
	assert.Equal(t, 3, l.Len())

	for i := range 100 {
		_, _ = allow(t, l, t0, fmt.Sprintf("k%d", i), 1)
	}
	assert.Equal(t, 3, l.Len())
}

func TestAllow_ConcurrentUseGrantsExactlyTheBurst(t *testing.T) {
	const burst = 1000
	l := newLimiter(t, ratelimit.Config{Rate: 1, Burst: burst, MaxKeys: 4})
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted = map[string]int{}
	)
	keys := []string{"a", "b", "c"}
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := keys[(g+i)%len(keys)]
				ok, _, err := l.Allow(t0, key, 1)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					granted[key]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, k := range keys {
		assert.LessOrEqual(t, granted[k], burst, k)
		total += granted[k]
	}
	// 4000 requests over 3 keys of 1000 at a frozen instant: exactly 3000 pass.
	assert.Equal(t, 3*burst, total)
}

func TestErrTooLarge_IsASentinel(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Burst: 1})
	_, _, err := l.Allow(t0, "k", 2)
	assert.True(t, errors.Is(err, ratelimit.ErrTooLarge))
	assert.Contains(t, err.Error(), "burst is 1")
}

// BenchmarkAllow measures Allow on a tracked key, and reports in the same run
// the cost of a call that misses the LRU (keys churning beyond MaxKeys, so
// every call evicts one bucket and creates another) as a ratio.
func BenchmarkAllow(b *testing.B) {
	l := ratelimit.New(ratelimit.Config{Rate: 1e9, Burst: 1 << 30, MaxKeys: 1000})
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("ns/sa-%d", i)
	}
	now := t0
	const churnCalls = 200000
	start := time.Now()
	for i := range churnCalls {
		now = now.Add(time.Microsecond)
		_, _, _ = l.Allow(now, keys[i%len(keys)], 1)
	}
	perChurn := time.Since(start) / churnCalls

	b.ResetTimer()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		_, _, _ = l.Allow(now, keys[0], 1)
	}
	perHit := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(perChurn.Nanoseconds()), "ns/churn")
	b.ReportMetric(float64(perChurn)/float64(perHit), "churn/hit")
}

func TestCharge_ReadsOverdrawThenWait(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 100, Burst: 100})
	ok, _ := l.Admit(t0, "ns/reader")
	require.True(t, ok, "a fresh bucket admits")

	assert.Zero(t, l.Charge(t0, "ns/reader", 60), "within the bucket: no debt")
	wait := l.Charge(t0, "ns/reader", 240)
	assert.Equal(t, 2*time.Second, wait, "200 rows of debt at 100 rows/s")

	ok, retry := l.Admit(t0.Add(time.Second), "ns/reader")
	assert.False(t, ok, "still in debt a second later")
	assert.InDelta(t, float64(time.Second+10*time.Millisecond), float64(retry), float64(time.Millisecond),
		"out of debt and one row back at t0+2.01s")
	ok, _ = l.Admit(t0.Add(time.Second+retry), "ns/reader")
	assert.True(t, ok, "admitted at the time the refusal named")

	ok, _ = l.Admit(t0, "ns/other")
	assert.True(t, ok, "another key has its own bucket")
	assert.Zero(t, l.Charge(t0, "ns/reader", 0))
}
