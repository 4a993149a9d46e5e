package auth

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrUnauthenticated means the token was examined and is not valid for this
// service: unknown, expired, revoked, or issued for another audience. The HTTP
// edge answers 401. Errors returned by the authenticators wrap it with a reason
// that never contains the token.
var ErrUnauthenticated = errors.New("auth: token not authenticated")

// ErrUnavailable means the token could not be examined: the TokenReview API
// was unreachable, timed out, answered 5xx or refused the central's own
// request. The HTTP edge answers 503 so that the caller retries; it is never
// cached.
var ErrUnavailable = errors.New("auth: token review unavailable")

// Authenticator turns a bearer token into the identity it belongs to. peer is
// the network address the token came from (the TCP peer, IPv4 unmapped): an
// authenticator that pays for each look-up charges the peer's failures to it.
// It returns an error wrapping ErrUnauthenticated or ErrUnavailable.
type Authenticator interface {
	Authenticate(ctx context.Context, token string, peer netip.Addr) (Identity, error)
}

var (
	_ Authenticator = (*TokenReview)(nil)
	_ Authenticator = (*StaticTokens)(nil)
)

// serviceAccountPrefix starts the username Kubernetes gives a service account:
// "system:serviceaccount:NAMESPACE:NAME".
const serviceAccountPrefix = "system:serviceaccount:"

// Identity is who a token belongs to. For a service account
// ("system:serviceaccount:NS:NAME"), Namespace and ServiceAccount are set;
// otherwise they are empty.
type Identity struct {
	Username       string
	UID            string
	Groups         []string
	Namespace      string
	ServiceAccount string
}

// Key is the identity's rate-limit and audit key: "NS/NAME" for a service
// account, otherwise "user:"+Username. The two forms cannot collide: a
// namespace name never contains ':'.
func (i Identity) Key() string {
	if i.IsServiceAccount() {
		return i.Namespace + "/" + i.ServiceAccount
	}
	return "user:" + i.Username
}

// IsServiceAccount reports whether the identity is a Kubernetes service
// account (Namespace and ServiceAccount both set).
func (i Identity) IsServiceAccount() bool {
	return i.Namespace != "" && i.ServiceAccount != ""
}

// NewIdentity builds the Identity of a username, uid and groups as an
// authenticator reports them, filling Namespace and ServiceAccount when the
// username is a well-formed service-account username (namespace a DNS label,
// name a DNS subdomain, as the API server requires). A malformed one is kept
// as a plain user, which authz never allows. Groups are copied.
func NewIdentity(username, uid string, groups []string) Identity {
	id := Identity{Username: username, UID: uid}
	if len(groups) > 0 {
		id.Groups = append([]string(nil), groups...)
	}
	id.Namespace, id.ServiceAccount = splitServiceAccount(username)
	return id
}

func splitServiceAccount(username string) (namespace, name string) {
	rest, ok := strings.CutPrefix(username, serviceAccountPrefix)
	if !ok {
		return "", ""
	}
	namespace, name, ok = strings.Cut(rest, ":")
	if !ok || strings.Contains(name, ":") {
		return "", ""
	}
	if len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", ""
	}
	return namespace, name
}

// clone returns a copy whose Groups slice the caller may modify.
func (i Identity) clone() Identity {
	if i.Groups != nil {
		i.Groups = append([]string(nil), i.Groups...)
	}
	return i
}
