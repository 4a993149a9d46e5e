// Package authz decides what an authenticated identity may do: which service
// accounts may write which audit kinds, search similar incidents, read and
// export audits, and manage legal holds.
//
// It owns the Action names, the built-in default allow-list (the spec's four
// service accounts in one configured namespace) and the allow-list file that
// replaces it. Only service accounts are ever allowed; a user identity never is.
//
// It imports package auth for the Identity type and wire for the record kinds.
// It must not import fasthttp, the storage layer or the central's server: the
// HTTP edge asks Allowed and answers 403 itself.
package authz
