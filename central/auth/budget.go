package auth

import (
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/kubernaut/datastorage/internal/lru"
)

// ThrottledError is returned instead of a review when the peer the token
// came from has spent its budget of failed reviews (see
// TokenReviewConfig.PeerFailureRate). It wraps neither ErrUnauthenticated nor
// ErrUnavailable: the token was not examined, and the API server is fine. The
// HTTP edge answers 429 with Retry-After.
type ThrottledError struct {
	Peer netip.Addr
	// RetryAfter is when the peer may have one more token reviewed.
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("auth: %s has spent its budget of failed token reviews; retry after %s", e.Peer, e.RetryAfter)
}

// peerBudgets are token buckets of reviews per peer, in an LRU bounded by
// MaxPeers: a review takes a token before it is made, and a review that
// proves the token valid gives it back, so only failures cost.
//
// golang.org/x/time/rate cannot do this: a Reservation's Cancel gives
// nothing back once its time has come, and a review is over only after it.
type peerBudgets struct {
	rate  float64 // tokens regained per second
	burst float64

	mu    sync.Mutex
	peers *lru.Cache[netip.Addr, *bucket]
}

// bucket is one peer's budget: tokens as of last.
type bucket struct {
	tokens float64
	last   time.Time
}

func newPeerBudgets(rate float64, burst, maxPeers int) *peerBudgets {
	return &peerBudgets{rate: rate, burst: float64(burst), peers: lru.New[netip.Addr, *bucket](maxPeers)}
}

// take spends one review of peer's budget at now, or says how long until
// there is one. A peer not seen before (or forgotten) has a full budget.
func (p *peerBudgets) take(peer netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.bucketLocked(peer, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	// Capped: at a tiny rate the wait would overflow a Duration.
	wait := math.Ceil((1 - b.tokens) / p.rate * float64(time.Second))
	return false, time.Duration(min(wait, float64(24*time.Hour)))
}

// refund gives back a review taken from peer's budget.
func (p *peerBudgets) refund(peer netip.Addr, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.bucketLocked(peer, now)
	b.tokens = min(p.burst, b.tokens+1)
}

// bucketLocked returns peer's bucket, refilled up to now.
func (p *peerBudgets) bucketLocked(peer netip.Addr, now time.Time) *bucket {
	b, ok := p.peers.Get(peer)
	if !ok {
		b = &bucket{tokens: p.burst, last: now}
		p.peers.Add(peer, b)
		return b
	}
	if now.After(b.last) {
		b.tokens = min(p.burst, b.tokens+now.Sub(b.last).Seconds()*p.rate)
		b.last = now
	}
	return b
}

func (p *peerBudgets) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peers.Len()
}
