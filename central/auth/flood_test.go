package auth_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

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
