package auth_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/kubernaut/datastorage/central/auth"
)

func TestTokenReview_AuthenticatesServiceAccount(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:kubernaut-system:gateway-sa", "uid-1",
		"system:serviceaccounts", "system:serviceaccounts:kubernaut-system", "system:authenticated")
	tr, _, _ := newReviewer(t, f, nil)

	id, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, auth.Identity{
		Username:       "system:serviceaccount:kubernaut-system:gateway-sa",
		UID:            "uid-1",
		Groups:         []string{"system:serviceaccounts", "system:serviceaccounts:kubernaut-system", "system:authenticated"},
		Namespace:      "kubernaut-system",
		ServiceAccount: "gateway-sa",
	}, id)
	assert.Equal(t, "kubernaut-system/gateway-sa", id.Key())
}

func TestTokenReview_SendsTokenAndAudienceWithOwnCredential(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1")
	tr, _, _ := newReviewer(t, f, nil)

	_, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.NoError(t, err)
	spec, bearer := f.lastRequest()
	assert.Equal(t, gatewayToken, spec.Token)
	assert.Equal(t, []string{audience}, spec.Audiences)
	assert.Equal(t, "Bearer "+centralToken, bearer, "the review is made with the central's credential, not the caller's")
}

func TestTokenReview_UserIsNotAServiceAccount(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(aliceToken, "alice", "uid-a", "devs")
	tr, _, _ := newReviewer(t, f, nil)

	id, err := tr.Authenticate(context.Background(), aliceToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, "alice", id.Username)
	assert.Empty(t, id.Namespace)
	assert.Empty(t, id.ServiceAccount)
	assert.Equal(t, "user:alice", id.Key())
}

func TestTokenReview_RejectsUnauthenticatedToken(t *testing.T) {
	f := newFakeAPI(t)
	tr, set, _ := newReviewer(t, f, nil)

	unknown := projectedToken("ns", "deleted-sa")
	_, err := tr.Authenticate(context.Background(), unknown, testPeer)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	assert.NotErrorIs(t, err, auth.ErrUnavailable)
	assert.NotContains(t, err.Error(), unknown)
	assert.Contains(t, err.Error(), "invalid bearer token", "the API server's reason is kept")
	assert.Equal(t, uint64(1), counter(set, `auth_tokenreview_requests_total{result="unauthenticated"}`))
}

func TestTokenReview_RejectsEmptyTokenWithoutAsking(t *testing.T) {
	f := newFakeAPI(t)
	tr, _, _ := newReviewer(t, f, nil)
	_, err := tr.Authenticate(context.Background(), "", testPeer)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	assert.Zero(t, f.count())
}

func TestTokenReview_RejectsWrongOrDefaultAudience(t *testing.T) {
	for name, audiences := range map[string][]string{
		"another audience":                 {"https://kubernetes.default.svc"},
		"empty means the default audience": nil,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.setAnswer(func(spec authenticationv1.TokenReviewSpec) (int, authenticationv1.TokenReviewStatus) {
				return http.StatusCreated, authenticationv1.TokenReviewStatus{
					Authenticated: true,
					User:          authenticationv1.UserInfo{Username: "system:serviceaccount:ns:gateway-sa"},
					Audiences:     audiences,
				}
			})
			tr, _, _ := newReviewer(t, f, nil)
			id, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
			require.ErrorIs(t, err, auth.ErrUnauthenticated)
			assert.Zero(t, id)
			assert.Contains(t, err.Error(), "audience")
		})
	}
}

func TestTokenReview_AcceptsOurAudienceAmongOthers(t *testing.T) {
	f := newFakeAPI(t)
	f.setAnswer(func(spec authenticationv1.TokenReviewSpec) (int, authenticationv1.TokenReviewStatus) {
		return http.StatusCreated, authenticationv1.TokenReviewStatus{
			Authenticated: true,
			User:          authenticationv1.UserInfo{Username: "system:serviceaccount:ns:gateway-sa"},
			Audiences:     []string{"other", audience},
		}
	})
	tr, _, _ := newReviewer(t, f, nil)
	id, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, "ns/gateway-sa", id.Key())
}

func TestTokenReview_ServerErrorIsUnavailableAndNotCached(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusForbidden} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			f := newFakeAPI(t)
			f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1")
			f.setAnswer(func(authenticationv1.TokenReviewSpec) (int, authenticationv1.TokenReviewStatus) {
				return code, authenticationv1.TokenReviewStatus{}
			})
			tr, set, _ := newReviewer(t, f, nil)

			_, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
			require.ErrorIs(t, err, auth.ErrUnavailable)
			assert.NotErrorIs(t, err, auth.ErrUnauthenticated)
			assert.NotContains(t, err.Error(), gatewayToken)
			assert.Equal(t, uint64(1), counter(set, `auth_tokenreview_requests_total{result="error"}`))

			// The API server recovers: the next call asks again and succeeds.
			f.setAnswer(nil)
			id, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
			require.NoError(t, err)
			assert.Equal(t, "ns/gateway-sa", id.Key())
			assert.Equal(t, 2, f.count())
		})
	}
}

func TestTokenReview_UnreachableServerIsUnavailable(t *testing.T) {
	f := newFakeAPI(t)
	tr, _, _ := newReviewer(t, f, nil)
	f.srv.Close()

	_, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.ErrorIs(t, err, auth.ErrUnavailable)
	assert.NotContains(t, err.Error(), gatewayToken)
}

func TestTokenReview_SlowServerTimesOutAsUnavailable(t *testing.T) {
	f := newFakeAPI(t)
	gate := f.hold()
	defer close(gate)
	tr, _, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) { c.Timeout = 100 * time.Millisecond })

	_, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.ErrorIs(t, err, auth.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestTokenReview_ServerEchoingTheTokenIsRedacted(t *testing.T) {
	f := newFakeAPI(t)
	f.setAnswer(func(spec authenticationv1.TokenReviewSpec) (int, authenticationv1.TokenReviewStatus) {
		return http.StatusCreated, authenticationv1.TokenReviewStatus{Error: "token " + spec.Token + " is revoked"}
	})
	tr, _, _ := newReviewer(t, f, nil)
	_, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	assert.NotContains(t, err.Error(), gatewayToken)
	assert.Contains(t, err.Error(), "is revoked")
}

func TestTokenReview_CachesPositiveAnswerUntilTTL(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1")
	tr, set, clk := newReviewer(t, f, func(c *auth.TokenReviewConfig) { c.CacheTTL = time.Minute })
	ctx := context.Background()

	first, err := tr.Authenticate(ctx, gatewayToken, testPeer)
	require.NoError(t, err)
	clk.Advance(time.Minute - time.Second)
	second, err := tr.Authenticate(ctx, gatewayToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, first, second)
	assert.Equal(t, 1, f.count(), "the second call is answered from the cache")
	assert.Equal(t, uint64(1), counter(set, "auth_cache_hits_total"))
	assert.Equal(t, uint64(1), counter(set, "auth_cache_misses_total"))

	clk.Advance(time.Second)
	_, err = tr.Authenticate(ctx, gatewayToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, 2, f.count(), "after the TTL the API server is asked again")
}

func TestTokenReview_CachedIdentityCannotBeAlteredByACaller(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1", "g1")
	tr, _, _ := newReviewer(t, f, nil)
	id, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.NoError(t, err)
	id.Groups[0] = "system:masters"
	again, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, []string{"g1"}, again.Groups)
}

func TestTokenReview_CachesNegativeAnswerForNegativeTTL(t *testing.T) {
	f := newFakeAPI(t)
	tr, _, clk := newReviewer(t, f, func(c *auth.TokenReviewConfig) { c.NegativeTTL = 10 * time.Second })
	ctx := context.Background()

	_, err := tr.Authenticate(ctx, aliceToken, testPeer)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	clk.Advance(9 * time.Second)
	_, err = tr.Authenticate(ctx, aliceToken, testPeer)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	assert.Equal(t, 1, f.count())

	// The token becomes valid (say, its pod was just created): after the
	// negative TTL it is accepted.
	f.addUser(aliceToken, "alice", "uid-a")
	clk.Advance(time.Second)
	id, err := tr.Authenticate(ctx, aliceToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, "user:alice", id.Key())
	assert.Equal(t, 2, f.count())
}

func TestTokenReview_CacheNeverOutlivesTheTokensExpiry(t *testing.T) {
	f := newFakeAPI(t)
	clk := newClock()
	token := projectedToken("ns", "gateway-sa", func(c map[string]any) { c["exp"] = clk.Now().Add(30 * time.Second).Unix() })
	f.addUser(token, "system:serviceaccount:ns:gateway-sa", "uid-1")
	tr, _, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) {
		c.CacheTTL = 2 * time.Minute
		c.Now = clk.Now
	})
	ctx := context.Background()

	_, err := tr.Authenticate(ctx, token, testPeer)
	require.NoError(t, err)
	clk.Advance(29 * time.Second)
	_, err = tr.Authenticate(ctx, token, testPeer)
	require.NoError(t, err)
	assert.Equal(t, 1, f.count())

	clk.Advance(time.Second)
	_, err = tr.Authenticate(ctx, token, testPeer)
	require.NoError(t, err)
	assert.Equal(t, 2, f.count(), "the cache entry ended with the token's exp, not the 2m TTL")
}

func TestTokenReview_CacheIsBoundedLRU(t *testing.T) {
	f := newFakeAPI(t)
	tokA, tokB, tokC := projectedToken("ns", "sa-a"), projectedToken("ns", "sa-b"), projectedToken("ns", "sa-c")
	for i, tok := range []string{tokA, tokB, tokC} {
		f.addUser(tok, fmt.Sprintf("system:serviceaccount:ns:sa-%d", i), "")
	}
	tr, set, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) { c.CacheSize = 2 })
	ctx := context.Background()
	authn := func(tok string) {
		t.Helper()
		_, err := tr.Authenticate(ctx, tok, testPeer)
		require.NoError(t, err)
	}

	authn(tokA)
	authn(tokB)
	authn(tokA) // hit: B is now the least recently used
	require.Equal(t, 2, f.count())
	authn(tokC) // evicts B
	require.Equal(t, 3, f.count())
	assert.Contains(t, metricsText(set), "auth_cache_entries 2")

	authn(tokA)
	assert.Equal(t, 3, f.count(), "token A stayed")
	authn(tokB)
	assert.Equal(t, 4, f.count(), "token B was evicted")
	assert.Contains(t, metricsText(set), "auth_cache_entries 2")
}

func TestTokenReview_ConcurrentLookupsOfOneTokenMakeOneReview(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1")
	gate := f.hold()
	tr, set, _ := newReviewer(t, f, nil)

	const callers = 50
	var wg sync.WaitGroup
	ids := make([]auth.Identity, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { ids[i], errs[i] = tr.Authenticate(context.Background(), gatewayToken, testPeer) })
	}
	// Hold the API server until every caller has missed the cache.
	require.Eventually(t, func() bool { return counter(set, "auth_cache_misses_total") == callers },
		5*time.Second, time.Millisecond)
	close(gate)
	wg.Wait()

	for i := range callers {
		require.NoError(t, errs[i])
		assert.Equal(t, "ns/gateway-sa", ids[i].Key())
	}
	assert.Equal(t, 1, f.count())
	assert.Equal(t, uint64(1), counter(set, `auth_tokenreview_requests_total{result="authenticated"}`))
}

func TestTokenReview_CallerGivingUpDoesNotCancelTheSharedReview(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1")
	gate := f.hold()
	tr, _, _ := newReviewer(t, f, nil)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := tr.Authenticate(ctx, gatewayToken, testPeer)
		done <- err
	}()
	require.Eventually(t, func() bool { return f.count() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	err := <-done
	require.ErrorIs(t, err, auth.ErrUnavailable)
	require.ErrorIs(t, err, context.Canceled)

	// The review goes on without the caller and its answer is cached.
	second := make(chan error, 1)
	go func() {
		_, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
		second <- err
	}()
	close(gate)
	require.NoError(t, <-second)
	_, err = tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, 1, f.count())
}

func TestTokenReview_DifferentTokensAreReviewedSeparately(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1")
	f.addUser(aliceToken, "alice", "uid-a")
	tr, _, _ := newReviewer(t, f, nil)

	a, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.NoError(t, err)
	b, err := tr.Authenticate(context.Background(), aliceToken, testPeer)
	require.NoError(t, err)
	assert.Equal(t, "ns/gateway-sa", a.Key())
	assert.Equal(t, "user:alice", b.Key())
	assert.Equal(t, 2, f.count())
}

func TestNewTokenReview_ValidatesConfig(t *testing.T) {
	f := newFakeAPI(t)
	cs := f.clientset()
	for name, cfg := range map[string]auth.TokenReviewConfig{
		"no client":                    {Audience: audience},
		"no audience":                  {Client: cs},
		"negative TTL":                 {Client: cs, Audience: audience, CacheTTL: -time.Second},
		"negative size":                {Client: cs, Audience: audience, CacheSize: -1},
		"negative timeout":             {Client: cs, Audience: audience, Timeout: -time.Second},
		"negative negative":            {Client: cs, Audience: audience, NegativeTTL: -time.Second},
		"negative negative cache size": {Client: cs, Audience: audience, NegativeCacheSize: -1},
		"negative peer failure rate":   {Client: cs, Audience: audience, PeerFailureRate: -1},
		"NaN peer failure rate":        {Client: cs, Audience: audience, PeerFailureRate: math.NaN()},
		"infinite peer failure rate":   {Client: cs, Audience: audience, PeerFailureRate: math.Inf(1)},
		"negative peer failure burst":  {Client: cs, Audience: audience, PeerFailureBurst: -1},
		"negative max peers":           {Client: cs, Audience: audience, MaxPeers: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := auth.NewTokenReview(cfg)
			assert.Error(t, err)
		})
	}
	_, err := auth.NewTokenReview(auth.TokenReviewConfig{Client: cs, Audience: audience})
	assert.NoError(t, err, "every other field has a default")
}

func TestTokenReview_ExportsLatencyHistogram(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:ns:gateway-sa", "uid-1")
	tr, set, _ := newReviewer(t, f, nil)
	_, err := tr.Authenticate(context.Background(), gatewayToken, testPeer)
	require.NoError(t, err)
	text := metricsText(set)
	assert.Contains(t, text, "auth_tokenreview_duration_seconds_count 1")
	assert.NotContains(t, text, gatewayToken)
}

func metricsText(set *metrics.Set) string {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	return b.String()
}
