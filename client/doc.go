// Package client is the Go client every controller imports to write audit
// records: the spec's WriteRemediationAudit and WriteWorkflowAudit, plus
// WriteBatch, over one pooled HTTP transport. It also reads the trail back
// from the central (read.go) and manages legal holds (holds.go).
//
// It speaks the same API to an agent (sidecar) and to the central, so a
// controller switches by changing BaseURL. Each logical write gets one
// Idempotency-Key, sent on every attempt, so a retried write never makes a
// second record. Only network errors, 429, 500, 502, 503 and 504 are retried,
// with exponential backoff and jitter, honouring Retry-After. Every other
// answer is returned at once as an *APIError carrying the server's
// wire.ErrorBody.
//
// It imports wire only; it must not import agent, central, storage or cmd.
package client
