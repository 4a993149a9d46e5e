// Package auth answers "who is calling?" for the central: it turns a bearer
// token, and the network peer that presented it, into an Identity.
//
// It owns the Identity type, the Authenticator interface the HTTP edge
// consumes, the sentinel errors that edge maps to 401 (ErrUnauthenticated)
// and 503 (ErrUnavailable), the *ThrottledError it maps to 429, and two
// authenticators:
//
//   - TokenReview asks the Kubernetes API server (authentication.k8s.io/v1
//     TokenReview, through client-go) with the central's own audience, and
//     caches the answers, keyed by an HMAC of the token, bounded in size and
//     time, with concurrent look-ups of one token collapsed into one call.
//   - StaticTokens reads kube-apiserver's --token-auth-file CSV format, for
//     tests and clusters without TokenReview.
//
// Unknown tokens must not be free to send, or a flood of them would evict
// good answers and queue legitimate reviews behind bogus ones (issue 11).
// So TokenReview keeps failed authentications in a cache of their own, which
// a flood can churn without touching a cached identity, and rejects without
// a review a token that could not pass one: anything but a JWT (three
// base64url segments, a JSON header with an alg, a JSON object of claims, a
// signature), or a JWT whose unverified exp, nbf or aud rule it out. Tokens
// bound to an audience are always JWTs (projected service-account tokens);
// bootstrap, static and other audience-agnostic tokens are valid only for the
// API server's own audiences, which the central's never is, so TokenReview
// would reject them anyway.
//
// What is left to review costs the peer (client IP) that sends it: each peer
// has a budget of reviews of uncached tokens, taken before a review and
// refunded when the token proves valid, so only failures spend it. A peer
// whose budget is spent gets a *ThrottledError, while its cached tokens go on
// working and other peers' tokens are reviewed at once. The budgets are kept
// for a bounded number of peers. Clients behind one address (a proxy, a NAT,
// the hostNetwork pods of a node) share one budget.
//
// A token is never logged, never stored in a cache key and never put in an
// error message.
//
// This package must not import fasthttp, the storage layer or the central's
// server: it knows tokens, peers and identities, not HTTP or records.
// Deciding what an identity may do is package authz's job; how much, package
// ratelimit's.
package auth
