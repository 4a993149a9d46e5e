package auth

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/singleflight"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubernaut/datastorage/internal/lru"
)

// Defaults for the zero fields of TokenReviewConfig.
const (
	DefaultCacheTTL          = 2 * time.Minute
	DefaultNegativeTTL       = 10 * time.Second
	DefaultCacheSize         = 10000
	DefaultNegativeCacheSize = 10000
	DefaultTimeout           = 5 * time.Second
	DefaultPeerFailureRate   = 1.0 // failed reviews a second, per peer
	DefaultPeerFailureBurst  = 10
	DefaultMaxPeers          = 10000
)

// TokenReviewConfig configures NewTokenReview. Every field documents its zero
// value.
type TokenReviewConfig struct {
	// Client reaches the API server; cmd builds it with NewClientset. Required.
	Client kubernetes.Interface
	// Audience is this service's audience. Required. It is sent in
	// spec.audiences, and status.audiences must contain it: an empty
	// status.audiences means the API server's default audience, which is not
	// ours, so the token is rejected. It must be the central's own, never the
	// API server's (see the package doc).
	Audience string
	// CacheTTL bounds how long a positive answer is reused, never beyond the
	// token's own expiry when the token is a JWT with an "exp" claim. Zero:
	// DefaultCacheTTL.
	CacheTTL time.Duration
	// NegativeTTL bounds how long a failed authentication is reused;
	// unavailability (ErrUnavailable) is never cached. Zero:
	// DefaultNegativeTTL.
	NegativeTTL time.Duration
	// CacheSize is the maximum number of cached identities, least recently
	// used evicted first. Failed authentications have a cache of their own
	// and never take this one's room. Zero: DefaultCacheSize.
	CacheSize int
	// NegativeCacheSize is the maximum number of cached failed
	// authentications, least recently used evicted first. Zero:
	// DefaultNegativeCacheSize.
	NegativeCacheSize int
	// Timeout bounds each TokenReview call. Zero: DefaultTimeout.
	Timeout time.Duration
	// PeerFailureRate and PeerFailureBurst are each peer's budget of reviews
	// of uncached tokens: a token bucket of PeerFailureBurst reviews, refilled
	// at PeerFailureRate a second. A review is taken from the budget before it
	// is made and given back when it proves the token valid, so only failures
	// (rejected tokens, and reviews the API server did not answer) spend it.
	// A peer with an empty budget gets a *ThrottledError. Zero:
	// DefaultPeerFailureRate, DefaultPeerFailureBurst.
	PeerFailureRate  float64
	PeerFailureBurst int
	// MaxPeers bounds the number of peers whose budgets are tracked; the
	// least recently seen is forgotten beyond it and starts again with a full
	// budget. Zero: DefaultMaxPeers.
	MaxPeers int
	// Metrics receives auth_cache_hits_total, auth_cache_misses_total,
	// auth_cache_entries, auth_negative_cache_entries,
	// auth_tokenreview_requests_total{result=...},
	// auth_tokenreview_duration_seconds,
	// auth_prescreen_rejections_total{reason=...}, auth_peer_throttled_total
	// and auth_peer_budgets. Nil: a private set nobody reads.
	Metrics *metrics.Set
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

func (c TokenReviewConfig) withDefaults() TokenReviewConfig {
	c.CacheTTL = cmp.Or(c.CacheTTL, DefaultCacheTTL)
	c.NegativeTTL = cmp.Or(c.NegativeTTL, DefaultNegativeTTL)
	c.CacheSize = cmp.Or(c.CacheSize, DefaultCacheSize)
	c.NegativeCacheSize = cmp.Or(c.NegativeCacheSize, DefaultNegativeCacheSize)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.PeerFailureRate = cmp.Or(c.PeerFailureRate, DefaultPeerFailureRate)
	c.PeerFailureBurst = cmp.Or(c.PeerFailureBurst, DefaultPeerFailureBurst)
	c.MaxPeers = cmp.Or(c.MaxPeers, DefaultMaxPeers)
	if c.Metrics == nil { // not cmp.Or: it would build a set to throw away
		c.Metrics = metrics.NewSet()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c TokenReviewConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Client == nil:
		return errors.New("auth: TokenReviewConfig.Client is required")
	case strings.TrimSpace(c.Audience) == "":
		return errors.New("auth: TokenReviewConfig.Audience is required")
	case c.CacheTTL < 0:
		return fmt.Errorf("auth: TokenReviewConfig.CacheTTL must not be negative, got %s", c.CacheTTL)
	case c.NegativeTTL < 0:
		return fmt.Errorf("auth: TokenReviewConfig.NegativeTTL must not be negative, got %s", c.NegativeTTL)
	case c.CacheSize < 0:
		return fmt.Errorf("auth: TokenReviewConfig.CacheSize must not be negative, got %d", c.CacheSize)
	case c.NegativeCacheSize < 0:
		return fmt.Errorf("auth: TokenReviewConfig.NegativeCacheSize must not be negative, got %d", c.NegativeCacheSize)
	case c.Timeout < 0:
		return fmt.Errorf("auth: TokenReviewConfig.Timeout must not be negative, got %s", c.Timeout)
	case math.IsNaN(c.PeerFailureRate) || math.IsInf(c.PeerFailureRate, 0) || c.PeerFailureRate < 0:
		return fmt.Errorf("auth: TokenReviewConfig.PeerFailureRate must be a positive number of reviews per second, got %v", c.PeerFailureRate)
	case c.PeerFailureBurst < 0:
		return fmt.Errorf("auth: TokenReviewConfig.PeerFailureBurst must not be negative, got %d", c.PeerFailureBurst)
	case c.MaxPeers < 0:
		return fmt.Errorf("auth: TokenReviewConfig.MaxPeers must not be negative, got %d", c.MaxPeers)
	}
	return nil
}

// cacheKey is HMAC-SHA256(per-process key, token, audience): never the token.
type cacheKey [32]byte

// cacheEntry is one TokenReview outcome: an identity, or an error wrapping
// ErrUnauthenticated, until it expires.
type cacheEntry struct {
	id      Identity
	err     error
	expires time.Time
}

// TokenReview authenticates bearer tokens with the Kubernetes TokenReview API
// and caches the answers. It is safe for concurrent use and owns no
// goroutines, so it needs no Close.
type TokenReview struct {
	cfg       TokenReviewConfig
	hmacKey   []byte
	positive  *lru.Expiring[cacheKey, cacheEntry] // identities
	negative  *lru.Expiring[cacheKey, cacheEntry] // failed authentications, apart so they never evict an identity
	budgets   *peerBudgets
	flight    singleflight.Group
	prescreen map[string]*metrics.Counter // by reason

	hits, misses                  *metrics.Counter
	authenticated, rejected, errs *metrics.Counter
	throttled                     *metrics.Counter
	latency                       *metrics.Histogram
}

// NewTokenReview validates cfg and returns a TokenReview.
func NewTokenReview(cfg TokenReviewConfig) (*TokenReview, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("auth: cache key: %w", err)
	}
	t := &TokenReview{
		cfg:           cfg,
		hmacKey:       key,
		positive:      lru.NewExpiring[cacheKey, cacheEntry](cfg.CacheSize),
		negative:      lru.NewExpiring[cacheKey, cacheEntry](cfg.NegativeCacheSize),
		budgets:       newPeerBudgets(cfg.PeerFailureRate, cfg.PeerFailureBurst, cfg.MaxPeers),
		hits:          cfg.Metrics.GetOrCreateCounter("auth_cache_hits_total"),
		misses:        cfg.Metrics.GetOrCreateCounter("auth_cache_misses_total"),
		authenticated: cfg.Metrics.GetOrCreateCounter(`auth_tokenreview_requests_total{result="authenticated"}`),
		rejected:      cfg.Metrics.GetOrCreateCounter(`auth_tokenreview_requests_total{result="unauthenticated"}`),
		errs:          cfg.Metrics.GetOrCreateCounter(`auth_tokenreview_requests_total{result="error"}`),
		throttled:     cfg.Metrics.GetOrCreateCounter("auth_peer_throttled_total"),
		latency:       cfg.Metrics.GetOrCreateHistogram("auth_tokenreview_duration_seconds"),
		prescreen:     map[string]*metrics.Counter{},
	}
	for _, reason := range []string{reasonMalformed, reasonExpired, reasonNotYetValid, reasonAudience} {
		t.prescreen[reason] = cfg.Metrics.GetOrCreateCounter(`auth_prescreen_rejections_total{reason="` + reason + `"}`)
	}
	positive, negative, budgets := t.positive, t.negative, t.budgets
	cfg.Metrics.GetOrCreateGauge("auth_cache_entries", func() float64 { return float64(positive.Len()) })
	cfg.Metrics.GetOrCreateGauge("auth_negative_cache_entries", func() float64 { return float64(negative.Len()) })
	cfg.Metrics.GetOrCreateGauge("auth_peer_budgets", func() float64 { return float64(budgets.len()) })
	return t, nil
}

// Audience is the audience tokens must carry.
func (t *TokenReview) Audience() string { return t.cfg.Audience }

// Authenticate returns the identity of token, presented by peer.
//
// In order: a cached answer (positive for CacheTTL, negative for
// NegativeTTL) costs nothing; a token that cannot pass (see prescreen) is
// rejected without a review; otherwise the review is charged to peer's
// budget (a *ThrottledError when it is spent) and refunded if the token
// proves valid. Concurrent calls for one token share one review, charged to
// the peer that started it. The returned error wraps ErrUnauthenticated or
// ErrUnavailable, or is a *ThrottledError, and never contains the token.
func (t *TokenReview) Authenticate(ctx context.Context, token string, peer netip.Addr) (Identity, error) {
	if token == "" {
		return Identity{}, fmt.Errorf("%w: empty token", ErrUnauthenticated)
	}
	key := t.key(token)
	if e, ok := t.cached(key); ok {
		t.hits.Inc()
		return e.id.clone(), e.err
	}
	t.misses.Inc()
	claims, err := prescreen(token, t.cfg.Audience, t.cfg.Now())
	if err != nil {
		var pe *prescreenError
		if errors.As(err, &pe) {
			t.prescreen[pe.reason].Inc()
		}
		return Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if err := ctx.Err(); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, context.Cause(ctx))
	}

	peer = peer.Unmap()
	ch := t.flight.DoChan(string(key[:]), func() (any, error) {
		// Re-check: a call for this token may have finished between our
		// cache miss and joining the flight.
		if e, ok := t.cached(key); ok {
			return e, nil
		}
		return t.reviewCharged(token, key, claims, peer)
	})
	select {
	case <-ctx.Done():
		return Identity{}, fmt.Errorf("%w: waiting for TokenReview: %w", ErrUnavailable, context.Cause(ctx))
	case res := <-ch:
		if res.Err != nil {
			return Identity{}, res.Err
		}
		e := res.Val.(cacheEntry)
		return e.id.clone(), e.err
	}
}

// cached is the unexpired answer for key, positive or negative.
func (t *TokenReview) cached(key cacheKey) (cacheEntry, bool) {
	now := t.cfg.Now()
	if e, ok := t.positive.Get(key, now); ok {
		return e, true
	}
	return t.negative.Get(key, now)
}

// reviewCharged reviews token on peer's budget and caches the answer: an
// identity in the positive cache (and the review refunded), a failed
// authentication in the negative one. Unavailability is not cached and not
// refunded: the call was made all the same.
func (t *TokenReview) reviewCharged(token string, key cacheKey, claims jwtClaims, peer netip.Addr) (cacheEntry, error) {
	if ok, wait := t.budgets.take(peer, t.cfg.Now()); !ok {
		t.throttled.Inc()
		return cacheEntry{}, &ThrottledError{Peer: peer, RetryAfter: wait}
	}
	e, err := t.review(token, claims)
	if err != nil {
		return cacheEntry{}, err
	}
	now := t.cfg.Now()
	cache := t.negative
	if e.err == nil {
		cache = t.positive
		t.budgets.refund(peer, now)
	}
	if e.expires.After(now) {
		cache.Add(key, e, e.expires)
	}
	return e, nil
}

// review makes one TokenReview call and turns its answer into a cache entry
// (an identity, or an error wrapping ErrUnauthenticated, with its expiry), or
// returns an error wrapping ErrUnavailable.
//
// The call runs under its own timeout, detached from any caller's context:
// callers that join it through singleflight must not see it cancelled because
// the first caller went away, and the caller's context may be a request
// context (fasthttp's) that is recycled once its handler returns.
func (t *TokenReview) review(token string, claims jwtClaims) (cacheEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.Timeout)
	defer cancel()

	start := time.Now()
	tr, err := t.cfg.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{t.cfg.Audience}},
	}, metav1.CreateOptions{})
	t.latency.UpdateDuration(start)
	if err != nil {
		t.errs.Inc()
		// Any failure of the call itself (unreachable, timeout, 5xx, or a 4xx
		// such as the central lacking RBAC to create TokenReviews) says
		// nothing about the token: the caller should retry, not give up.
		return cacheEntry{}, fmt.Errorf("%w: %w", ErrUnavailable, redactError(err, token))
	}

	now := t.cfg.Now()
	st := tr.Status
	reject := func(reason string) (cacheEntry, error) {
		t.rejected.Inc()
		return cacheEntry{
			err:     fmt.Errorf("%w: %s", ErrUnauthenticated, redact(reason, token)),
			expires: now.Add(t.cfg.NegativeTTL),
		}, nil
	}
	switch {
	case !st.Authenticated:
		reason := "rejected by the API server"
		if st.Error != "" {
			reason += ": " + st.Error
		}
		return reject(reason)
	case len(st.Audiences) == 0:
		return reject(fmt.Sprintf("token is for the API server's default audience, not %q", t.cfg.Audience))
	case !slices.Contains(st.Audiences, t.cfg.Audience):
		return reject(fmt.Sprintf("token audiences %q do not include %q", st.Audiences, t.cfg.Audience))
	case st.User.Username == "":
		return reject("the API server authenticated the token without a username")
	}

	t.authenticated.Inc()
	expires := now.Add(t.cfg.CacheTTL)
	if !claims.exp.IsZero() && claims.exp.Before(expires) {
		expires = claims.exp
	}
	return cacheEntry{
		id:      NewIdentity(st.User.Username, st.User.UID, st.User.Groups),
		expires: expires,
	}, nil
}

// key is the cache key of token: an HMAC with a per-process random key, so
// that neither the cache nor a heap dump yields a usable token or a hash that
// can be checked against guesses offline.
func (t *TokenReview) key(token string) cacheKey {
	m := hmac.New(sha256.New, t.hmacKey)
	m.Write([]byte(token))
	m.Write([]byte{0})
	m.Write([]byte(t.cfg.Audience))
	var k cacheKey
	m.Sum(k[:0])
	return k
}

// redactedError keeps err's chain for errors.Is/As but never prints the token.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactError(err error, token string) error {
	return &redactedError{msg: redact(err.Error(), token), err: err}
}

// redact removes the token from a message that is about to leave the package,
// in case a server or transport echoed it.
func redact(msg, token string) string {
	if token == "" {
		return msg
	}
	return strings.ReplaceAll(msg, token, "[redacted]")
}
