package wire

import "time"

// AuditEntry is one stored audit as the read API answers it: a query page,
// one record, a timeline, a line of an export. A record's identity is its
// kind, its writer and its ID (IDs are unique per writer, not globally), so
// every entry names all three.
type AuditEntry struct {
	Kind           Kind   `json:"kind"`
	AuditID        string `json:"auditID"`
	ServiceAccount string `json:"serviceAccount"` // the writer, "namespace/name"
	// OccurredAt is the record's event time: createdAt (remediation) or
	// executedAt (workflow), else when it was received. Queries filter and
	// order on it.
	OccurredAt  time.Time         `json:"occurredAt"`
	ReceivedAt  time.Time         `json:"receivedAt"`
	Remediation *RemediationAudit `json:"remediation,omitempty"`
	Workflow    *WorkflowAudit    `json:"workflow,omitempty"`
}

// AuditPage answers GET /api/v1/audit/{remediation,workflow}: at most limit
// records in the query's order, and the cursor of the next page, absent on
// the last one.
type AuditPage struct {
	Records    []AuditEntry `json:"records"`
	NextCursor string       `json:"nextCursor,omitempty"`
}

// Timeline answers GET /api/v1/remediations/{remediationRequestID}/timeline:
// every audit of one remediation, oldest first. Truncated says the
// remediation has more audits than one answer carries (a writer flooding
// one ID); the query API pages through all of them.
type Timeline struct {
	RemediationRequestID string       `json:"remediationRequestID"`
	Events               []AuditEntry `json:"events"`
	Truncated            bool         `json:"truncated"`
}
