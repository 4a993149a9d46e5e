package auth_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/auth"
)

// Issue 11, defect 6: unknown tokens cost a TokenReview each. A flood of
// distinct bogus tokens must neither evict good cache entries nor starve
// legitimate reviews. The tests below count what reaches the API server.

// bogusToken is a well-formed token for our audience that the API server
// does not know: it passes every check but the review.
func bogusToken() string { return projectedToken("kubernaut-system", "nobody") }

// peerN is the n-th of many distinct peers.
func peerN(n int) netip.Addr { return netip.AddrFrom4([4]byte{10, 9, byte(n >> 8), byte(n)}) }

// authnOK authenticates token from peer and requires success.
func authnOK(t *testing.T, tr *auth.TokenReview, token string, peer netip.Addr) auth.Identity {
	t.Helper()
	id, err := tr.Authenticate(context.Background(), token, peer)
	require.NoError(t, err)
	return id
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
