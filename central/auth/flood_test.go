package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/kubernaut/datastorage/central/auth"
)

// Issue 11, defect 6: unknown tokens cost a TokenReview each. A flood of
// distinct bogus tokens must neither evict good cache entries nor starve
// legitimate reviews. The tests below count what reaches the API server;
// the latency under a flood is BenchmarkTokenReview_LegitimateReviewDuringBogusFlood.

// bogusToken is a well-formed token for our audience that the API server
// does not know: it passes every check but the review.
func bogusToken() string { return projectedToken("kubernaut-system", "nobody") }

// peerN is the n-th of many distinct peers.
func peerN(n int) netip.Addr { return netip.AddrFrom4([4]byte{10, 9, byte(n >> 8), byte(n)}) }

var (
	floodPeer = netip.MustParseAddr("203.0.113.66")
	otherPeer = netip.MustParseAddr("198.51.100.7")
)

// authnOK authenticates token from peer and requires success.
func authnOK(t *testing.T, tr *auth.TokenReview, token string, peer netip.Addr) auth.Identity {
	t.Helper()
	id, err := tr.Authenticate(context.Background(), token, peer)
	require.NoError(t, err)
	return id
}

// throttled returns the *auth.ThrottledError in err, failing the test if there is none.
func throttled(t *testing.T, err error) *auth.ThrottledError {
	t.Helper()
	var te *auth.ThrottledError
	require.ErrorAs(t, err, &te)
	return te
}

func TestTokenReview_FloodOfBogusTokensDoesNotEvictCachedIdentities(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:kubernaut-system:gateway-sa", "uid-1")
	const cacheSize = 10
	tr, _, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) { c.CacheSize = cacheSize })
	authnOK(t, tr, gatewayToken, testPeer)

	// Ten times the cache size of bogus tokens, each from its own peer so
	// that every one is reviewed and rejected.
	for i := range 10 * cacheSize {
		_, err := tr.Authenticate(context.Background(), bogusToken(), peerN(i))
		require.ErrorIs(t, err, auth.ErrUnauthenticated)
	}
	reviews := f.count()
	require.Equal(t, 1+10*cacheSize, reviews)

	authnOK(t, tr, gatewayToken, testPeer)
	assert.Equal(t, reviews, f.count(), "the good token is still cached: failures never evict it")
}

func TestTokenReview_NegativeCacheIsBoundedApart(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:kubernaut-system:gateway-sa", "uid-1")
	tr, set, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) { c.NegativeCacheSize = 3 })
	authnOK(t, tr, gatewayToken, testPeer)
	first := bogusToken()
	_, err := tr.Authenticate(context.Background(), first, peerN(0))
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	_, err = tr.Authenticate(context.Background(), first, peerN(0))
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	require.Equal(t, 2, f.count(), "a rejection is cached")

	for i := 1; i <= 10; i++ {
		_, err := tr.Authenticate(context.Background(), bogusToken(), peerN(i))
		require.ErrorIs(t, err, auth.ErrUnauthenticated)
	}
	text := metricsText(set)
	assert.Contains(t, text, "auth_negative_cache_entries 3")
	assert.Contains(t, text, "auth_cache_entries 1")
	_, err = tr.Authenticate(context.Background(), first, peerN(0))
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	assert.Equal(t, 2+10+1, f.count(), "the oldest rejection was forgotten and asked again")
}

// segments is a compact JWS of raw segments, base64url-encoded as given.
func segments(parts ...string) string {
	enc := make([]string, len(parts))
	for i, p := range parts {
		enc[i] = base64.RawURLEncoding.EncodeToString([]byte(p))
	}
	return strings.Join(enc, ".")
}

func TestTokenReview_RejectsTokensThatCannotPassWithoutAReview(t *testing.T) {
	now := newClock().Now() // the reviewer's clock
	header := `{"alg":"RS256","kid":"k"}`
	claims := fmt.Sprintf(`{"aud":[%q],"exp":%d}`, audience, now.Add(time.Hour).Unix())
	for name, tc := range map[string]struct {
		token, reason string
	}{
		"an opaque string":          {"d0c8a4f6e1b2c3d4e5f60718293a4b5c", "malformed"},
		"a bootstrap token":         {"abcdef.0123456789abcdef", "malformed"},
		"two segments":              {segments(header, claims), "malformed"},
		"four segments":             {segments(header, claims, "sig", "extra"), "malformed"},
		"a header not base64url":    {"e30*." + segments(claims, "sig"), "malformed"},
		"a header not JSON":         {segments("RS256", claims, "sig"), "malformed"},
		"a header without alg":      {segments(`{"kid":"k"}`, claims, "sig"), "malformed"},
		"claims that are null":      {segments(header, "null", "sig"), "malformed"},
		"claims that are an array":  {segments(header, "[1,2]", "sig"), "malformed"},
		"no signature":              {segments(header, claims, ""), "malformed"},
		"exp not a number":          {segments(header, `{"exp":"tomorrow"}`, "sig"), "malformed"},
		"aud not strings":           {segments(header, `{"aud":42}`, "sig"), "malformed"},
		"expired an hour ago":       {projectedToken("ns", "sa", func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), "expired"},
		"not valid for an hour":     {projectedToken("ns", "sa", func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), "not_yet_valid"},
		"for the API server only":   {projectedToken("ns", "sa", func(c map[string]any) { c["aud"] = []string{"https://kubernetes.default.svc"} }), "audience"},
		"for one other audience":    {projectedToken("ns", "sa", func(c map[string]any) { c["aud"] = "vault" }), "audience"},
		"for no audience (aud: [])": {projectedToken("ns", "sa", func(c map[string]any) { c["aud"] = []string{} }), "audience"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.addUser(tc.token, "system:serviceaccount:ns:sa", "uid") // even if the API server would say yes
			tr, set, _ := newReviewer(t, f, nil)

			_, err := tr.Authenticate(context.Background(), tc.token, testPeer)
			require.ErrorIs(t, err, auth.ErrUnauthenticated)
			assert.NotContains(t, err.Error(), tc.token)
			assert.Zero(t, f.count(), "no review for a token that cannot pass")
			assert.Equal(t, uint64(1), counter(set, `auth_prescreen_rejections_total{reason="`+tc.reason+`"}`))
		})
	}
}

func TestTokenReview_ReviewsEveryTokenThatMightPass(t *testing.T) {
	now := newClock().Now()
	for name, token := range map[string]string{
		"a projected service-account token": projectedToken("kubernaut-system", "gateway-sa"),
		"a user's token, aud a string":      userToken("alice"),
		"a legacy secret token (no aud, no exp)": jws(map[string]any{"alg": "RS256", "kid": ""}, map[string]any{
			"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:ns:sa",
			"kubernetes.io/serviceaccount/namespace": "ns", "kubernetes.io/serviceaccount/service-account.name": "sa",
		}),
		"padded base64url segments": func() string {
			parts := strings.Split(projectedToken("ns", "sa"), ".")
			for i, p := range parts {
				parts[i] = p + strings.Repeat("=", (4-len(p)%4)%4)
			}
			return strings.Join(parts, ".")
		}(),
		"expired 30 s ago, within the API server's leeway": projectedToken("ns", "sa", func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() }),
		"valid in 30 s, within the API server's leeway":    projectedToken("ns", "sa", func(c map[string]any) { c["nbf"] = now.Add(30 * time.Second).Unix() }),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.addUser(token, "system:serviceaccount:ns:sa", "uid")
			tr, _, _ := newReviewer(t, f, nil)
			id := authnOK(t, tr, token, testPeer)
			assert.Equal(t, "ns/sa", id.Key())
			assert.Equal(t, 1, f.count())
		})
	}
}

func TestTokenReview_FailedReviewsFromOnePeerAreBoundedByItsBudget(t *testing.T) {
	f := newFakeAPI(t)
	tr, set, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) {
		c.PeerFailureRate, c.PeerFailureBurst = 1, 5
	})
	refused := 0
	for range 100 {
		token := bogusToken()
		_, err := tr.Authenticate(context.Background(), token, floodPeer)
		require.Error(t, err)
		if errors.Is(err, auth.ErrUnauthenticated) {
			continue
		}
		te := throttled(t, err)
		refused++
		assert.Equal(t, floodPeer, te.Peer)
		assert.Positive(t, te.RetryAfter)
		assert.LessOrEqual(t, te.RetryAfter, time.Second, "one failure regained at 1/s")
		assert.NotErrorIs(t, err, auth.ErrUnavailable)
		assert.NotContains(t, err.Error(), token)
	}
	assert.Equal(t, 5, f.count(), "the API server saw the burst, no more")
	assert.Equal(t, 95, refused)
	assert.Equal(t, uint64(95), counter(set, "auth_peer_throttled_total"))
}

func TestTokenReview_PeerBudgetRefillsAtItsRate(t *testing.T) {
	f := newFakeAPI(t)
	tr, _, clk := newReviewer(t, f, func(c *auth.TokenReviewConfig) {
		c.PeerFailureRate, c.PeerFailureBurst = 2, 1
	})
	_, err := tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	_, err = tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	assert.Equal(t, 500*time.Millisecond, throttled(t, err).RetryAfter)

	clk.Advance(500 * time.Millisecond)
	_, err = tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	require.ErrorIs(t, err, auth.ErrUnauthenticated, "after Retry-After, one more review")
	_, err = tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	throttled(t, err)
	assert.Equal(t, 2, f.count())
}

func TestTokenReview_RetryAfterOfATinyRateIsCapped(t *testing.T) {
	f := newFakeAPI(t)
	tr, _, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) {
		c.PeerFailureRate, c.PeerFailureBurst = 1e-300, 1
	})
	_, err := tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	_, err = tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	assert.Equal(t, 24*time.Hour, throttled(t, err).RetryAfter, "not an overflowed, negative Duration")
}

func TestTokenReview_ValidTokensCostThePeerNothing(t *testing.T) {
	f := newFakeAPI(t)
	tr, _, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) {
		c.PeerFailureRate, c.PeerFailureBurst = 0.001, 2
	})
	for i := range 20 { // a node's worth of pods behind one address, say
		token := projectedToken("ns", fmt.Sprintf("sa-%d", i))
		f.addUser(token, fmt.Sprintf("system:serviceaccount:ns:sa-%d", i), "")
		authnOK(t, tr, token, floodPeer)
	}
	for range 2 {
		_, err := tr.Authenticate(context.Background(), bogusToken(), floodPeer)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, "the whole failure budget is left")
	}
	_, err := tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	throttled(t, err)
	assert.Equal(t, 22, f.count())
}

func TestTokenReview_ThrottledPeerKeepsCachedTokensAndOtherPeersAreReviewed(t *testing.T) {
	f := newFakeAPI(t)
	f.addUser(gatewayToken, "system:serviceaccount:kubernaut-system:gateway-sa", "uid-1")
	tr, _, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) {
		c.PeerFailureRate, c.PeerFailureBurst = 0.001, 3
	})
	authnOK(t, tr, gatewayToken, floodPeer)
	for range 10 {
		_, _ = tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	}
	fresh := projectedToken("kubernaut-system", "aianalysis-controller-sa")
	f.addUser(fresh, "system:serviceaccount:kubernaut-system:aianalysis-controller-sa", "uid-2")
	_, err := tr.Authenticate(context.Background(), fresh, floodPeer)
	throttled(t, err) // the price of sharing an address with a flood: a new token waits
	reviews := f.count()

	assert.Equal(t, "kubernaut-system/gateway-sa", authnOK(t, tr, gatewayToken, floodPeer).Key(),
		"a cached token still works from the throttled peer")
	assert.Equal(t, reviews, f.count())
	assert.Equal(t, "kubernaut-system/aianalysis-controller-sa", authnOK(t, tr, fresh, otherPeer).Key(),
		"another peer's new token is reviewed at once")
	assert.Equal(t, reviews+1, f.count())
}

func TestTokenReview_ConcurrentBogusTokensCannotOutrunThePeerBudget(t *testing.T) {
	f := newFakeAPI(t)
	gate := f.hold()
	tr, set, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) {
		c.PeerFailureRate, c.PeerFailureBurst = 0.001, 4
	})
	const callers = 40
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			_, err := tr.Authenticate(context.Background(), bogusToken(), floodPeer)
			errs <- err
		})
	}
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	// While the first reviews are held at the API server, every other
	// caller is refused: the budget is taken before a review, not after.
	for range callers - 4 {
		select {
		case err := <-errs:
			throttled(t, err)
		case <-time.After(10 * time.Second):
			release()
			t.Fatalf("callers wait for the API server instead of being refused (%d reviews)", f.count())
		}
	}
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.ErrorIs(t, err, auth.ErrUnauthenticated)
	}
	assert.Equal(t, 4, f.count())
	assert.Equal(t, uint64(callers-4), counter(set, "auth_peer_throttled_total"))
}

func TestTokenReview_UnansweredReviewsSpendTheBudgetToo(t *testing.T) {
	f := newFakeAPI(t)
	f.setAnswer(func(authenticationv1.TokenReviewSpec) (int, authenticationv1.TokenReviewStatus) {
		return http.StatusServiceUnavailable, authenticationv1.TokenReviewStatus{}
	})
	tr, _, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) {
		c.PeerFailureRate, c.PeerFailureBurst = 0.001, 2
	})
	for range 2 {
		_, err := tr.Authenticate(context.Background(), bogusToken(), floodPeer)
		require.ErrorIs(t, err, auth.ErrUnavailable)
	}
	// Only a token proven valid earns its review back; one the API server
	// did not judge did cost a call.
	_, err := tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	throttled(t, err)
	assert.Equal(t, 2, f.count())
}

func TestTokenReview_TracksABoundedNumberOfPeers(t *testing.T) {
	f := newFakeAPI(t)
	tr, set, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) { c.MaxPeers = 5 })
	for i := range 50 {
		_, err := tr.Authenticate(context.Background(), bogusToken(), peerN(i))
		require.ErrorIs(t, err, auth.ErrUnauthenticated)
	}
	assert.Contains(t, metricsText(set), "auth_peer_budgets 5")
}

func TestTokenReview_IPv4MappedPeerIsTheIPv4Peer(t *testing.T) {
	f := newFakeAPI(t)
	tr, _, _ := newReviewer(t, f, func(c *auth.TokenReviewConfig) {
		c.PeerFailureRate, c.PeerFailureBurst = 0.001, 1
	})
	_, err := tr.Authenticate(context.Background(), bogusToken(), floodPeer)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	mapped := netip.AddrFrom16(floodPeer.As16())
	_, err = tr.Authenticate(context.Background(), bogusToken(), mapped)
	throttled(t, err)
}
