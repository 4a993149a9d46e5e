// Package tlsconfig builds the *tls.Config of the central's listener and of
// the agent's client from PEM files, and reloads them when they change
// (cert-manager renewals, Kubernetes Secret volume updates) without a
// restart: the server's certificate, key and client CA, the client's CA
// bundle and client certificate, all through one mechanism (watch, in
// reload.go).
//
// It owns nothing but TLS set-up: it imports only the standard library and
// must not import any package of this module (agent, central, storage, wire),
// nor log or register metrics itself; errors reach the caller through
// returned values and the OnError callback.
package tlsconfig
