// Package forward drains the agent's durable queue to the central's
// POST /api/v1/audit/batch: one loop reads the oldest records in batches
// (bounded by count, bytes and linger time), sends them zstd-compressed with
// the pod's service-account token, and removes them from the queue only once
// the central has confirmed each one (persisted or duplicate). Records the
// central rejects go to the queue's dead-letter area with the reason.
//
// Failure handling, by answer:
//   - 200: per-record results; rejected records are dead-lettered, the rest
//     acknowledged (a record of a kind the caller may not write comes back
//     rejected with authorization_failed and holds up nothing).
//   - 429, 503: wait Retry-After (or back off), resend the same batch (same IDs).
//   - 401, 403: re-read the token, back off, resend; never dead-letter (403
//     for a whole batch: the caller may write no kind; an operator fixes RBAC).
//   - 413, 400 (the envelope): split in halves and resend; a single record
//     refused this way is dead-lettered.
//   - 5xx, network errors, unreadable answers: exponential backoff with
//     jitter (internal/backoff), without limit in time, resending the same
//     batch.
//
// Access, beside the loop, asks the central's GET /api/v1/access which kinds
// the identity may write (at start, every AccessRefresh, and soon after a
// refusal for authorization) with the forwarder's client and token; the
// agent's edge consults it to refuse those writes at once.
//
// It must not import pgx, client-go or the central's packages.
package forward
