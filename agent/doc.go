// Package agent is the sidecar's HTTP edge: the central's single-record API
// (POST /api/v1/audit/{remediation,workflow}) answered from the local
// durable queue (201 only once the record is fsynced; 403 at once for a kind
// the identity may not write, per Config.Access), /healthz, /readyz,
// the dead letters for loopback callers only (GET and DELETE
// /api/v1/deadletter, POST /api/v1/deadletter/replay)
// and /metrics. The queue lives in agent/queue, the forwarder in
// agent/forward; cmd/agent wires the three together.
//
// fasthttp stays in this package. It must not import pgx, client-go or the
// central's packages: the agent binary links none of them.
package agent
