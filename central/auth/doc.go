// Package auth answers "who is calling?" for the central: it turns a bearer
// token into an Identity.
//
// It owns the Identity type, the Authenticator interface the HTTP edge
// consumes, the sentinel errors that edge maps to 401 (ErrUnauthenticated)
// and 503 (ErrUnavailable), and two authenticators:
//
//   - TokenReview asks the Kubernetes API server (authentication.k8s.io/v1
//     TokenReview, through client-go) with the central's own audience, and
//     caches the answers, keyed by an HMAC of the token, bounded in size and
//     time, with concurrent look-ups of one token collapsed into one call.
//   - StaticTokens reads kube-apiserver's --token-auth-file CSV format, for
//     tests and clusters without TokenReview.
//
// A token is never logged, never stored in a cache key and never put in an
// error message.
//
// This package must not import fasthttp, the storage layer or the central's
// server: it knows tokens and identities, not HTTP or records. Deciding what
// an identity may do is package authz's job; how much, package ratelimit's.
package auth
