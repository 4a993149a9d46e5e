package auth_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Test tokens are shaped like the ones the central meets: the kubelet's
// projected service-account tokens, JWS compact serialisations (RS256) whose
// claims bind them to an audience, a pod and an expiry. The fake API server
// does not check their signatures; a real one would.
var (
	gatewayToken = projectedToken("kubernaut-system", "gateway-sa")
	aliceToken   = userToken("alice")
)

// Claim times of the test tokens: valid from before the tests' clock (2025-10-06) until long
// after the wall clock.
var (
	tokenIssued  = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tokenExpires = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// projectedToken is a new, distinct token of the service account, in the
// shape the kubelet's TokenRequest gives a pod; edits adjust its claims.
func projectedToken(namespace, sa string, edits ...func(claims map[string]any)) string {
	claims := map[string]any{
		"aud": []string{audience},
		"exp": tokenExpires.Unix(),
		"iat": tokenIssued.Unix(),
		"nbf": tokenIssued.Unix(),
		"iss": "https://kubernetes.default.svc.cluster.local",
		"jti": randomID(),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"node":           map[string]string{"name": "node-1", "uid": randomID()},
			"pod":            map[string]string{"name": sa + "-7d9f8c6b5-x2k4q", "uid": randomID()},
			"serviceaccount": map[string]string{"name": sa, "uid": randomID()},
			"warnafter":      tokenIssued.Add(time.Hour).Unix(),
		},
		"sub": "system:serviceaccount:" + namespace + ":" + sa,
	}
	for _, edit := range edits {
		edit(claims)
	}
	return jws(map[string]any{"alg": "RS256", "kid": "q9Ro7HhLKdJg0xhbN6hOHt5Lb0mJpIZs8bLqKmnJ-rU"}, claims)
}

// userToken is a new, distinct OIDC-style token of a user (no service account).
func userToken(user string) string {
	return jws(map[string]any{"alg": "RS256", "kid": "idp-1"}, map[string]any{
		"aud": audience, "exp": tokenExpires.Unix(), "iat": tokenIssued.Unix(),
		"iss": "https://idp.example.com", "sub": user, "jti": randomID(),
	})
}

// jws is header.claims.signature, each base64url without padding. The
// signature is random bytes of an RS256 signature's length.
func jws(header, claims any) string {
	enc := base64.RawURLEncoding
	sig := make([]byte, 256)
	_, _ = rand.Read(sig)
	return enc.EncodeToString(mustJSON(header)) + "." + enc.EncodeToString(mustJSON(claims)) + "." + enc.EncodeToString(sig)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("test token: %v", err))
	}
	return b
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
