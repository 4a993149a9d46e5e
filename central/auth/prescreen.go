package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// claimLeeway is how far past exp, or before nbf, a token is still sent for
// review: the API server's own leeway (one minute, go-jose's default) plus a
// minute of clock skew between it and the central.
const claimLeeway = 2 * time.Minute

// Reasons the prescreen rejects a token; they are metric labels.
const (
	reasonMalformed   = "malformed"
	reasonExpired     = "expired"
	reasonNotYetValid = "not_yet_valid"
	reasonAudience    = "audience"
)

// prescreenError is a token rejected without a review, with the reason
// (a metric label) and a message that says nothing of the token's content.
type prescreenError struct{ reason, msg string }

func (e *prescreenError) Error() string { return e.msg }

// jwtClaims are the unverified claims the prescreen looks at; the API server
// checks them again, with the signature.
type jwtClaims struct {
	exp, nbf        time.Time // zero when absent
	aud             []string
	audiencePresent bool
}

// prescreen rejects, without a review, a token that TokenReview would reject
// for audience: one that is not a JWS compact serialisation (three base64url
// segments, a JSON header naming its alg, a JSON object of claims, a
// signature), one whose exp or nbf puts it outside its lifetime beyond
// claimLeeway, and one whose aud claim lacks audience. An audience-bound
// token is always a JWT: the service-account token authenticator is the only
// one that checks audiences, and the audience-agnostic ones (bootstrap and
// static tokens, for instance) answer for the API server's own audiences,
// which the central's is not. The signature is not checked: that is the
// review's job.
func prescreen(token, audience string, now time.Time) (jwtClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return jwtClaims{}, malformed("not a JWT (want three dot-separated segments, got %d)", len(parts))
	}
	header, err := segment(parts[0])
	if err != nil {
		return jwtClaims{}, malformed("JWT header is not base64url")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(header, &h); err != nil || h.Alg == "" {
		return jwtClaims{}, malformed("JWT header is not a JSON object with an alg")
	}
	payload, err := segment(parts[1])
	if err != nil {
		return jwtClaims{}, malformed("JWT claims are not base64url")
	}
	c, err := parseClaims(payload)
	if err != nil {
		return jwtClaims{}, malformed("JWT claims: %v", err)
	}
	if sig, err := segment(parts[2]); err != nil || len(sig) == 0 {
		return jwtClaims{}, malformed("JWT signature is missing or not base64url")
	}

	switch {
	case !c.exp.IsZero() && now.After(c.exp.Add(claimLeeway)):
		return jwtClaims{}, &prescreenError{reasonExpired, fmt.Sprintf("token expired at %s", c.exp.UTC().Format(time.RFC3339))}
	case !c.nbf.IsZero() && now.Before(c.nbf.Add(-claimLeeway)):
		return jwtClaims{}, &prescreenError{reasonNotYetValid, fmt.Sprintf("token not valid before %s", c.nbf.UTC().Format(time.RFC3339))}
	case c.audiencePresent && !slices.Contains(c.aud, audience):
		return jwtClaims{}, &prescreenError{reasonAudience, fmt.Sprintf("token's aud claim does not include %q", audience)}
	}
	return c, nil
}

func malformed(format string, args ...any) error {
	return &prescreenError{reasonMalformed, "malformed token: " + fmt.Sprintf(format, args...)}
}

// segment decodes one base64url segment; trailing padding is tolerated, as
// the API server's JOSE library tolerates it.
func segment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// parseClaims reads exp, nbf (NumericDate) and aud (a string or an array of
// strings) from a JSON object of claims, refusing what a JWT library would
// refuse to parse. Messages never quote the claims.
func parseClaims(payload []byte) (jwtClaims, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return jwtClaims{}, errors.New("not a JSON object")
	}
	var c jwtClaims
	var err error
	if c.exp, err = numericDate(raw["exp"]); err != nil {
		return jwtClaims{}, fmt.Errorf("exp %w", err)
	}
	if c.nbf, err = numericDate(raw["nbf"]); err != nil {
		return jwtClaims{}, fmt.Errorf("nbf %w", err)
	}
	if aud, ok := raw["aud"]; ok {
		c.audiencePresent = true
		if c.aud, err = audiences(aud); err != nil {
			return jwtClaims{}, fmt.Errorf("aud %w", err)
		}
	}
	return c, nil
}

// numericDate is a JSON number of seconds since the epoch; absent is zero.
func numericDate(raw json.RawMessage) (time.Time, error) {
	if raw == nil {
		return time.Time{}, nil
	}
	var sec float64
	if err := json.Unmarshal(raw, &sec); err != nil || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, errors.New("is not a number")
	}
	// Clamped, not refused: far-off dates are odd but parse, and only the
	// API server decides what they mean.
	const limit = 1 << 40 // seconds: the year 36812
	return time.Unix(int64(max(-limit, min(sec, limit))), 0), nil
}

// audiences is the aud claim: a string or an array of strings.
func audiences(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil && !bytes.Equal(raw, []byte("null")) {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil || bytes.Equal(raw, []byte("null")) {
		return nil, errors.New("is neither a string nor an array of strings")
	}
	return many, nil
}
