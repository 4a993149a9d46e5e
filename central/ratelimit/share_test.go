package ratelimit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/ratelimit"
)

// The limit is shared by three replicas: 300 records/s and a burst of 90 for
// the service account make 100/s and 30 in each.
func TestSetShare_DividesTheRateAndTheBucket(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 300, Burst: 90})
	l.SetShare(t0, 3)
	assert.Equal(t, 3, l.Share())
	assert.Equal(t, ratelimit.Config{Rate: 300, Burst: 90, MaxKeys: ratelimit.DefaultMaxKeys}, l.Config(),
		"the configuration stays the whole limit")

	ok, _ := allow(t, l, t0, "k", 30)
	require.True(t, ok, "a new bucket starts full, at a third of the burst")
	ok, retry := allow(t, l, t0, "k", 1)
	require.False(t, ok)
	assert.Equal(t, 10*time.Millisecond, retry, "one record at 100/s")
	ok, _ = allow(t, l, t0.Add(time.Hour), "k", 30)
	require.True(t, ok, "an idle bucket refills to a third of the burst")
	ok, _ = allow(t, l, t0.Add(time.Hour), "k", 1)
	assert.False(t, ok, "and no further")
}

func TestSetShare_AppliesToBucketsThatExist(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 300, Burst: 90})
	ok, _ := allow(t, l, t0, "k", 90)
	require.True(t, ok, "the whole burst, before the share")
	l.SetShare(t0, 3)
	ok, _ = allow(t, l, t0.Add(100*time.Millisecond), "k", 10)
	require.True(t, ok, "0.1 s at 100/s refills 10")
	ok, retry := allow(t, l, t0.Add(100*time.Millisecond), "k", 1)
	require.False(t, ok, "not 30 as at 300/s")
	assert.Equal(t, 10*time.Millisecond, retry)
	ok, _ = allow(t, l, t0.Add(time.Hour), "k", 30)
	require.True(t, ok)
	ok, _ = allow(t, l, t0.Add(time.Hour), "k", 1)
	assert.False(t, ok, "the bucket holds a third of the burst")
}

// A batch of up to the whole burst is what agents send; a share smaller than
// it must not refuse it for ever, nor 413 it: it passes once the bucket is
// full, and the bucket goes into debt for the rest.
func TestAllow_ABatchLargerThanTheShareWaitsForAFullBucketThenGoesIntoDebt(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 300, Burst: 90})
	l.SetShare(t0, 3) // 100/s, 30 in the bucket

	ok, retry := allow(t, l, t0, "k", 90)
	require.True(t, ok, "the bucket is full: the whole burst passes")
	assert.Zero(t, retry)
	ok, retry = allow(t, l, t0, "k", 1)
	require.False(t, ok)
	assert.Equal(t, 610*time.Millisecond, retry, "60 records of debt, then one, at 100/s")

	ok, retry = allow(t, l, t0.Add(600*time.Millisecond), "k", 90)
	require.False(t, ok, "out of debt, but the bucket is empty")
	assert.Equal(t, 300*time.Millisecond, retry, "a big batch waits for a full bucket: 30 records at 100/s")
	ok, _ = allow(t, l, t0.Add(899*time.Millisecond), "k", 90)
	require.False(t, ok, "a millisecond early")
	ok, _ = allow(t, l, t0.Add(900*time.Millisecond), "k", 90)
	require.True(t, ok, "at the time the refusal named")

	_, _, err := l.Allow(t0.Add(time.Hour), "k", 91)
	require.ErrorIs(t, err, ratelimit.ErrTooLarge, "more than the whole burst is still too large")
}

// However the batches are sized, big or small, a replica's share holds on
// average: over a minute of constant demand, what passes is 100/s plus at
// most one bucket and one batch's debt.
func TestAllow_TheShareHoldsOnAverageWithBigBatches(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 300, Burst: 90})
	l.SetShare(t0, 3)
	sizes := []int{90, 7, 45, 1, 31, 60}
	passed := 0
	for i, now := 0, t0; now.Before(t0.Add(time.Minute)); i, now = i+1, now.Add(3*time.Millisecond) {
		if ok, _ := allow(t, l, now, "k", sizes[i%len(sizes)]); ok {
			passed += sizes[i%len(sizes)]
		}
	}
	assert.GreaterOrEqual(t, passed, 6000-90, "no less than the share, give or take a batch")
	assert.LessOrEqual(t, passed, 6000+30+90, "no more than the share, a bucket and a batch of debt")
}

// Three replicas see one service account's requests in turn: together they
// pass the configured limit, not three times it.
func TestSetShare_ReplicasTogetherHoldTheLimit(t *testing.T) {
	cfg := ratelimit.Config{Rate: 200, Burst: 50}
	replicas := []*ratelimit.Limiter{newLimiter(t, cfg), newLimiter(t, cfg), newLimiter(t, cfg)}
	for _, l := range replicas {
		l.SetShare(t0, len(replicas))
	}
	passed := 0
	for i, now := 0, t0; now.Before(t0.Add(30 * time.Second)); i, now = i+1, now.Add(time.Millisecond) {
		n := []int{10, 25, 50}[i%3]
		if ok, _ := allow(t, replicas[i%len(replicas)], now, "k", n); ok {
			passed += n
		}
	}
	assert.InDelta(t, 200*30, passed, 0.02*200*30, "the limit, within 2%%")
}

// When a replica leaves, the others' shares grow: the rate at once, the
// bucket's capacity too, but not its tokens (no free burst at the change).
// When one joins, they shrink: tokens beyond the new capacity are gone.
func TestSetShare_ChangesUpAndDown(t *testing.T) {
	t.Run("fewer replicas: a larger share, refilled at the new rate", func(t *testing.T) {
		l := newLimiter(t, ratelimit.Config{Rate: 300, Burst: 90})
		l.SetShare(t0, 3)
		ok, _ := allow(t, l, t0, "k", 30)
		require.True(t, ok)
		l.SetShare(t0, 1)
		ok, retry := allow(t, l, t0, "k", 30)
		require.False(t, ok, "the change gives no tokens")
		assert.Equal(t, 100*time.Millisecond, retry, "30 records at the whole 300/s")
		ok, _ = allow(t, l, t0.Add(300*time.Millisecond), "k", 90)
		assert.True(t, ok, "the bucket now holds the whole burst")
	})
	t.Run("more replicas: a smaller share, tokens capped", func(t *testing.T) {
		l := newLimiter(t, ratelimit.Config{Rate: 300, Burst: 90})
		l.SetShare(t0, 3)
		ok, _ := allow(t, l, t0, "k", 1) // the bucket exists, full at 30
		require.True(t, ok)
		l.SetShare(t0, 1)
		ok, _ = allow(t, l, t0.Add(time.Second), "k", 90)
		require.True(t, ok, "a second at 300/s fills the whole burst")

		ok, _ = allow(t, l, t0.Add(2*time.Second), "k", 1) // full again
		require.True(t, ok)
		l.SetShare(t0.Add(2*time.Second), 2) // 150/s, 45
		ok, _ = allow(t, l, t0.Add(2*time.Second), "k", 45)
		require.True(t, ok, "89 tokens, capped at 45")
		ok, retry := allow(t, l, t0.Add(2*time.Second), "k", 15)
		require.False(t, ok)
		assert.Equal(t, 100*time.Millisecond, retry, "15 records at 150/s")
	})
	t.Run("a debt is repaid at the rate of the moment", func(t *testing.T) {
		l := newLimiter(t, ratelimit.Config{Rate: 300, Burst: 90})
		l.SetShare(t0, 3)
		ok, _ := allow(t, l, t0, "k", 90) // 60 in debt at 100/s
		require.True(t, ok)
		l.SetShare(t0.Add(300*time.Millisecond), 1) // 30 repaid, 30 owed at 300/s
		ok, retry := allow(t, l, t0.Add(300*time.Millisecond), "k", 30)
		require.False(t, ok)
		assert.Equal(t, 200*time.Millisecond, retry, "30 owed and 30 wanted at 300/s")
	})
	t.Run("back to one: exactly as without a share", func(t *testing.T) {
		shared, plain := newLimiter(t, ratelimit.Config{Rate: 10, Burst: 100}), newLimiter(t, ratelimit.Config{Rate: 10, Burst: 100})
		shared.SetShare(t0, 4)
		shared.SetShare(t0, 1)
		assert.Equal(t, 1, shared.Share())
		for i, n := range []int{60, 40, 25, 3, 100} {
			now := t0.Add(time.Duration(i) * 700 * time.Millisecond)
			okS, retryS := allow(t, shared, now, "new", n)
			okP, retryP := allow(t, plain, now, "new", n)
			assert.Equal(t, okP, okS, "request %d", i)
			assert.Equal(t, retryP, retryS, "request %d", i)
		}
	})
	t.Run("zero or less counts as one", func(t *testing.T) {
		l := newLimiter(t, ratelimit.Config{Rate: 10, Burst: 100})
		l.SetShare(t0, 0)
		assert.Equal(t, 1, l.Share())
		ok, _ := allow(t, l, t0, "k", 100)
		assert.True(t, ok)
	})
}

// A share smaller than a record still lets a record through: the bucket holds
// at least one.
func TestSetShare_MoreReplicasThanTheBurstKeepsABucketOfOne(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 10, Burst: 3})
	l.SetShare(t0, 10)
	ok, _ := allow(t, l, t0, "k", 1)
	require.True(t, ok)
	ok, retry := allow(t, l, t0, "k", 1)
	require.False(t, ok)
	assert.Equal(t, time.Second, retry, "1 record at 1/s")
	ok, _ = allow(t, l, t0.Add(time.Second), "k", 3)
	assert.True(t, ok, "a request of the whole burst passes on a full bucket of one")
}

// Reads are limited per service account too: the read budget is shared the
// same way, a read's rows charged against the share.
func TestSetShare_DividesTheReadBudget(t *testing.T) {
	l := newLimiter(t, ratelimit.Config{Rate: 100, Burst: 100})
	l.SetShare(t0, 2) // 50/s, 50
	assert.Zero(t, l.Charge(t0, "ns/reader", 50), "within the share's bucket")
	assert.Equal(t, 2*time.Second, l.Charge(t0, "ns/reader", 100), "100 rows of debt at 50 rows/s")
	ok, retry := l.Admit(t0.Add(time.Second), "ns/reader")
	assert.False(t, ok)
	assert.Equal(t, time.Second+20*time.Millisecond, retry, "out of debt and one row back at 50/s")
}
