// Package authz decides what an authenticated identity may do: which service
// accounts may write which audit kinds, search similar incidents, read and
// export audits, manage legal holds and verify the ledger.
//
// It owns the Action names, the Authorizer interface the central consumes,
// the ErrUnavailable sentinel that edge maps to 503, and two authorizers:
//
//   - AllowList: the built-in default (the spec's four service accounts in
//     one configured namespace) or the allow-list file that replaces it.
//   - SAR: Kubernetes RBAC, through the SubjectAccessReview API
//     (authorization.k8s.io/v1, client-go). Each action is a verb on a
//     resource of the API group datastorage.kubernaut.ai (Rules, the one
//     table the shipped ClusterRoles and the docs follow), asked about in one
//     configured namespace, where the RoleBindings live. Decisions are
//     cached, bounded in size, allowed for a minute and denied for ten
//     seconds by default, with concurrent identical questions collapsed
//     into one review; a review that fails is never cached and never allows.
//
// Only service accounts are ever allowed; a user identity never is, and SAR
// does not ask about one.
//
// It imports package auth for the Identity type and wire for the record kinds.
// It must not import fasthttp, the storage layer or the central's server: the
// HTTP edge asks Authorize and answers 403 (or 503) itself.
package authz
