// Package wire is the one definition of the audit records, their JSON, their
// validation, the error bodies and the batch format. The agent, the central,
// clients and the benchmark all use it; nothing else re-declares a field.
//
// It owns: the record types (RemediationAudit, WorkflowAudit, Record), the
// batch envelope (BatchRequest, BatchItem, BatchResponse), the error bodies
// (ErrorBody and one constructor per error code), record IDs (NewID,
// IDForKey), the read API's answers (read.go), the legal holds' bodies and
// IDs (holds.go) and the size limits storage sizes its columns by.
//
// It does no I/O: no network, no database, no files, no logging, no metrics,
// no global state. It must not import agent, central, storage, any
// transport (net/http, fasthttp) or database package.
//
// # Decoding
//
// Bodies are decoded with github.com/go-json-experiment/json (JSON v2), which
// rejects duplicate member names, invalid UTF-8 and NaN/Infinity literals;
// unknown members are rejected too, and member names match exactly (case
// sensitive). A JSON null member counts as absent. Every failure is a
// *ValidationError (400 validation_failed) whose Field is the JSON name of
// the offending member, "" when the body as a whole is malformed, and for a
// batch item the path inside the batch: "records[3].kind",
// "records[3].record.confidence".
//
// # Validation rules
//
// A remediation record (POST /api/v1/audit/remediation) requires
// remediationRequestID; a workflow record (POST /api/v1/audit/workflow)
// requires workflowID, stepName and stepStatus. "Required" means present and
// not blank; a missing one gives the spec's body, e.g.
//
//	{"error":"validation_failed","message":"RemediationRequestID is required","field":"remediationRequestID"}
//
// Other rules, each a 400 naming its field:
//
//   - Length in characters (Unicode code points), matching the VARCHAR
//     columns: MaxNameLen (255) for remediationRequestID, alertName,
//     namespace, cluster, actionType, workflowID, stepName; MaxStatusLen (50)
//     for status, stepStatus, priority; MaxTargetResourceLen (512) for
//     targetResource; MaxTextLen (32768) for reasoning and errorMessage.
//   - No string may contain U+0000: PostgreSQL text cannot store it.
//   - confidence, when present, is a number with 0 ≤ confidence ≤ 1.
//   - duration is integer nanoseconds (what encoding/json makes of a
//     time.Duration); durationMs, integer milliseconds, is accepted instead.
//     Either must be ≥ 0 and at most MaxDurationMillis (math.MaxInt32) in
//     milliseconds, the range of the INT duration_ms column. When both are
//     sent they must agree to the millisecond (duration/1e6, truncated, equal
//     to durationMs). Decoded records carry DurationNanos only;
//     DurationMillis gives the column's value.
//   - Timestamps (createdAt, executedAt, a batch item's receivedAt) are RFC
//     3339 strings. The zero time "0001-01-01T00:00:00Z", which
//     encoding/json sends for an unset time.Time, means absent and decodes
//     to nil. Any other must not be before 1970-01-01T00:00:00Z nor more than
//     MaxFutureSkew (24h) after the server's clock. Decoded timestamps are in
//     UTC.
//   - A single-record body is at most MaxRecordBytes; a batch at most
//     MaxBatchRecords records and MaxBatchBytes after decompression.
//   - Record IDs are 1 to MaxIDLen (255) ASCII letters, digits and "-_.:";
//     an Idempotency-Key is 1 to MaxIdempotencyKeyLen printable ASCII
//     characters.
//
// Strings are stored as sent: they are not trimmed or otherwise rewritten.
//
// # IDs
//
// NewID gives "audit-" + a UUIDv7: IDs sort by creation time. IDForKey
// derives the ID of a request sent with an Idempotency-Key from the caller's
// service account, the kind and the key (a UUIDv8 from SHA-256), so the agent
// and the central derive the same ID for the same key.
package wire
