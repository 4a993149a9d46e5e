// Package backoff is the module's one exponential backoff and its one
// context-aware sleep. The agent's forwarder, the embedding workers, the
// OpenAI embedder and the Go client retry with them.
//
// A Backoff knows nothing of what failed, of Retry-After or of logging: each
// caller decides what a failure is, whether a server's hint overrides the
// wait and what it logs. It imports only the standard library.
package backoff
