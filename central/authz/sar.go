package authz

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/singleflight"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/internal/lru"
)

// Defaults for the zero fields of SARConfig.
const (
	DefaultAllowedTTL   = time.Minute
	DefaultDeniedTTL    = 10 * time.Second
	DefaultSARCacheSize = 10000
	DefaultSARTimeout   = 5 * time.Second
)

// SARConfig configures NewSAR. Every field documents its zero value.
type SARConfig struct {
	// Client reaches the API server; cmd builds it with auth.NewClientset,
	// the client TokenReview uses. Required.
	Client kubernetes.Interface
	// Namespace is where the RoleBindings that grant the actions live: every
	// review asks about this namespace. Required.
	Namespace string
	// AllowedTTL is how long an allowed decision is reused: a revoked
	// binding takes effect within it. Zero: DefaultAllowedTTL.
	AllowedTTL time.Duration
	// DeniedTTL is how long a denied decision is reused: a new binding takes
	// effect within it. Zero: DefaultDeniedTTL.
	DeniedTTL time.Duration
	// CacheSize is the maximum number of cached decisions, least recently
	// used evicted first. Zero: DefaultSARCacheSize.
	CacheSize int
	// Timeout bounds each SubjectAccessReview call. Zero: DefaultSARTimeout.
	Timeout time.Duration
	// Metrics receives datastorage_authz_reviews_total{result=...},
	// datastorage_authz_review_duration_seconds,
	// datastorage_authz_cache_hits_total, datastorage_authz_cache_misses_total
	// and datastorage_authz_cache_entries. Nil: a private set nobody reads.
	Metrics *metrics.Set
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

func (c SARConfig) withDefaults() SARConfig {
	c.AllowedTTL = cmp.Or(c.AllowedTTL, DefaultAllowedTTL)
	c.DeniedTTL = cmp.Or(c.DeniedTTL, DefaultDeniedTTL)
	c.CacheSize = cmp.Or(c.CacheSize, DefaultSARCacheSize)
	c.Timeout = cmp.Or(c.Timeout, DefaultSARTimeout)
	if c.Metrics == nil { // not cmp.Or: it would build a set to throw away
		c.Metrics = metrics.NewSet()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c SARConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Client == nil:
		return errors.New("authz: SARConfig.Client is required")
	case c.Namespace == "":
		return errors.New("authz: SARConfig.Namespace is required")
	case len(validation.IsDNS1123Label(c.Namespace)) > 0:
		return fmt.Errorf("authz: SARConfig.Namespace %q: %s", c.Namespace, strings.Join(validation.IsDNS1123Label(c.Namespace), "; "))
	case c.AllowedTTL < 0:
		return fmt.Errorf("authz: SARConfig.AllowedTTL must not be negative, got %s", c.AllowedTTL)
	case c.DeniedTTL < 0:
		return fmt.Errorf("authz: SARConfig.DeniedTTL must not be negative, got %s", c.DeniedTTL)
	case c.CacheSize < 0:
		return fmt.Errorf("authz: SARConfig.CacheSize must not be negative, got %d", c.CacheSize)
	case c.Timeout < 0:
		return fmt.Errorf("authz: SARConfig.Timeout must not be negative, got %s", c.Timeout)
	}
	return nil
}

// SAR authorizes with Kubernetes RBAC: it asks the API server's
// SubjectAccessReview API (authorization.k8s.io/v1) whether the caller, as
// TokenReview reported it (username, UID, groups), may perform the action's
// Rule in APIGroup in the configured namespace, and caches the decisions.
// Only service accounts are asked about; any other identity is denied
// without a review, as the allow-list denies it. It is safe for concurrent
// use and owns no goroutines, so it needs no Close.
type SAR struct {
	cfg    SARConfig
	cache  *lru.Expiring[decisionKey, bool] // allowed or denied; errors never
	flight singleflight.Group

	hits, misses            *metrics.Counter
	allowed, denied, failed *metrics.Counter
	latency                 *metrics.Histogram
}

// decisionKey is SHA-256 of the identity (username, UID, groups) and the
// action, each length-prefixed so that no two differ only in where one
// field ends.
type decisionKey [32]byte

// NewSAR validates cfg and returns a SAR.
func NewSAR(cfg SARConfig) (*SAR, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &SAR{
		cfg:     cfg,
		cache:   lru.NewExpiring[decisionKey, bool](cfg.CacheSize),
		hits:    cfg.Metrics.GetOrCreateCounter("datastorage_authz_cache_hits_total"),
		misses:  cfg.Metrics.GetOrCreateCounter("datastorage_authz_cache_misses_total"),
		allowed: cfg.Metrics.GetOrCreateCounter(`datastorage_authz_reviews_total{result="allowed"}`),
		denied:  cfg.Metrics.GetOrCreateCounter(`datastorage_authz_reviews_total{result="denied"}`),
		failed:  cfg.Metrics.GetOrCreateCounter(`datastorage_authz_reviews_total{result="error"}`),
		latency: cfg.Metrics.GetOrCreateHistogram("datastorage_authz_review_duration_seconds"),
	}
	cache := s.cache
	cfg.Metrics.GetOrCreateGauge("datastorage_authz_cache_entries", func() float64 { return float64(cache.Len()) })
	return s, nil
}

// Authorize reports whether id may perform act. A cached decision costs
// nothing; otherwise one SubjectAccessReview is made, shared by concurrent
// calls for the same identity and action, and its decision cached (allowed
// for AllowedTTL, denied for DeniedTTL). An error wraps ErrUnavailable and is
// never cached.
func (s *SAR) Authorize(ctx context.Context, id auth.Identity, act Action) (bool, error) {
	rule, known := RuleFor(act)
	if !known || !id.IsServiceAccount() {
		return false, nil
	}
	key := s.key(id, act)
	if ok, hit := s.cache.Get(key, s.cfg.Now()); hit {
		s.hits.Inc()
		return ok, nil
	}
	s.misses.Inc()
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, context.Cause(ctx))
	}
	ch := s.flight.DoChan(string(key[:]), func() (any, error) {
		// A call for this key may have finished between our miss and
		// joining the flight.
		if ok, hit := s.cache.Get(key, s.cfg.Now()); hit {
			return ok, nil
		}
		ok, err := s.review(id, rule)
		if err != nil {
			return false, err
		}
		ttl := s.cfg.DeniedTTL
		if ok {
			ttl = s.cfg.AllowedTTL
		}
		s.cache.Add(key, ok, s.cfg.Now().Add(ttl))
		return ok, nil
	})
	select {
	case <-ctx.Done():
		return false, fmt.Errorf("%w: waiting for SubjectAccessReview: %w", ErrUnavailable, context.Cause(ctx))
	case res := <-ch:
		if res.Err != nil {
			return false, res.Err
		}
		return res.Val.(bool), nil
	}
}

// review makes one SubjectAccessReview call. Like TokenReview's, it runs
// under its own timeout, detached from any caller's context: callers that
// join it through singleflight must not see it cancelled because the first
// caller went away.
//
// A status that is not allowed is a denial, with or without an
// evaluationError: the API server decided, and RBAC reports an evaluation
// error for a binding it could not resolve (a missing role), which a retry
// would not change.
func (s *SAR) review(id auth.Identity, rule Rule) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	review, err := s.cfg.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   id.Username,
			UID:    id.UID,
			Groups: id.Groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace:   s.cfg.Namespace,
				Verb:        rule.Verb,
				Group:       APIGroup,
				Resource:    rule.Resource,
				Subresource: rule.Subresource,
			},
		},
	}, metav1.CreateOptions{})
	s.latency.UpdateDuration(start)
	if err != nil {
		s.failed.Inc()
		// Unreachable, timed out, 5xx, or a 4xx such as the central lacking
		// RBAC to create SubjectAccessReviews: nothing about the caller.
		return false, fmt.Errorf("%w: SubjectAccessReview: %w", ErrUnavailable, err)
	}
	if review.Status.Allowed && !review.Status.Denied {
		s.allowed.Inc()
		return true, nil
	}
	s.denied.Inc()
	return false, nil
}

func (s *SAR) key(id auth.Identity, act Action) decisionKey {
	h := sha256.New()
	field := func(v string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	field(string(act))
	field(id.Username)
	field(id.UID)
	for _, g := range id.Groups {
		field(g)
	}
	var k decisionKey
	h.Sum(k[:0])
	return k
}

// String is a one-line summary for the start-up log.
func (s *SAR) String() string {
	return fmt.Sprintf("authz (sar): SubjectAccessReview in namespace %s, group %s; decisions cached (allowed %s, denied %s, at most %d)",
		s.cfg.Namespace, APIGroup, s.cfg.AllowedTTL, s.cfg.DeniedTTL, s.cfg.CacheSize)
}
