package agent

import (
	"encoding/base64"
	"strings"

	"github.com/go-json-experiment/json"
)

// ServiceAccountFromToken returns "namespace/name" from a service-account
// JWT's "sub" claim ("system:serviceaccount:NS:NAME"), decoding the payload
// without verifying it (it is the pod's own token). It returns "" when the
// token is not such a JWT.
func ServiceAccountFromToken(token string) string {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return ""
	}
	rest, ok := strings.CutPrefix(claims.Sub, "system:serviceaccount:")
	if !ok {
		return ""
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || ns == "" || name == "" || strings.Contains(name, ":") {
		return ""
	}
	return ns + "/" + name
}
