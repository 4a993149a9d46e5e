package wire

import (
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Kind names the two audit record types, and is the last path segment of
// their single-record endpoints (POST /api/v1/audit/{kind}).
type Kind string

const (
	KindRemediation Kind = "remediation"
	KindWorkflow    Kind = "workflow"
)

// RemediationAudit is what the Gateway, AI Analysis and Kubernetes Executor
// controllers send to POST /api/v1/audit/remediation. Only
// RemediationRequestID is required: each writer sends a different subset.
type RemediationAudit struct {
	RemediationRequestID string   `json:"remediationRequestID"`
	AlertName            string   `json:"alertName,omitempty"`
	Namespace            string   `json:"namespace,omitempty"`
	Cluster              string   `json:"cluster,omitempty"`
	Priority             string   `json:"priority,omitempty"`
	ActionType           string   `json:"actionType,omitempty"`
	Confidence           *float64 `json:"confidence,omitempty"`
	Reasoning            string   `json:"reasoning,omitempty"`
	TargetResource       string   `json:"targetResource,omitempty"`
	Status               string   `json:"status,omitempty"`
	// DurationNanos is "duration" in integer nanoseconds, as encoding/json
	// marshals a time.Duration. Decoding also accepts "durationMs" and folds
	// it into DurationNanos, so decoded records carry one form only.
	DurationNanos *int64     `json:"duration,omitempty"`
	ErrorMessage  string     `json:"errorMessage,omitempty"`
	CreatedAt     *time.Time `json:"createdAt,omitempty"`
	ExecutedAt    *time.Time `json:"executedAt,omitempty"`
}

// WorkflowAudit is what the Workflow Execution controller sends to
// POST /api/v1/audit/workflow for each executed step.
type WorkflowAudit struct {
	WorkflowID    string     `json:"workflowID"`
	StepName      string     `json:"stepName"`
	StepStatus    string     `json:"stepStatus"`
	DurationNanos *int64     `json:"duration,omitempty"` // as in RemediationAudit
	ErrorMessage  string     `json:"errorMessage,omitempty"`
	ExecutedAt    *time.Time `json:"executedAt,omitempty"`
}

// Record is one accepted audit with the identity it was given where it was
// first accepted. It is the unit of the batch format, the agent's queue and
// the storage layer. Exactly one of Remediation and Workflow is set, matching
// Kind.
type Record struct {
	ID          string            `json:"id"`
	Kind        Kind              `json:"kind"`
	ReceivedAt  time.Time         `json:"receivedAt"`
	Remediation *RemediationAudit `json:"remediation,omitempty"`
	Workflow    *WorkflowAudit    `json:"workflow,omitempty"`
}

// BatchRequest is the body of POST /api/v1/audit/batch. Items are decoded
// one by one so that one bad record is rejected alone.
type BatchRequest struct {
	Records []BatchItem `json:"records"`
}

// BatchItem is one record of a batch as sent: its ID (optional: the central
// assigns one when empty), kind, the time the sender accepted it (optional),
// and the record body exactly as the single-record endpoint takes it.
type BatchItem struct {
	ID         string         `json:"id,omitempty"`
	Kind       Kind           `json:"kind"`
	ReceivedAt *time.Time     `json:"receivedAt,omitempty"`
	Record     jsontext.Value `json:"record"`

	// index is 1 + the item's position in the batch, set by DecodeBatch so
	// that Decode's errors can name "records[3]…"; 0 for an item built by
	// hand, whose errors then name "record.…", "kind", … without the prefix.
	index int
}

// ItemStatus is the outcome of one record of a batch.
type ItemStatus string

const (
	StatusPersisted ItemStatus = "persisted" // written now
	StatusDuplicate ItemStatus = "duplicate" // its ID was already stored: nothing changed
	StatusRejected  ItemStatus = "rejected"  // invalid: never stored, do not retry
)

// BatchResponse answers a batch with one result per item, in request order.
type BatchResponse struct {
	Results    []ItemResult `json:"results"`
	Persisted  int          `json:"persisted"`
	Duplicates int          `json:"duplicates"`
	Rejected   int          `json:"rejected"`
}

// ItemResult is the outcome of one batch item; Error is set when rejected.
type ItemResult struct {
	ID     string     `json:"id"`
	Status ItemStatus `json:"status"`
	Error  *ErrorBody `json:"error,omitempty"`
}

// WriteResponse answers a single-record write with 201.
type WriteResponse struct {
	AuditID string `json:"auditID"`
	Status  string `json:"status"`
}

// AccessResponse answers GET /api/v1/access: the caller's identity
// ("namespace/name" for a service account) and the actions it may perform
// ("write:remediation", "write:workflow", "read:similar", "read:audit",
// "export:audit", "hold:audit"; empty for none).
// The agent asks it to refuse at once a record the central would refuse.
type AccessResponse struct {
	Identity string   `json:"identity"`
	Actions  []string `json:"actions"`
}
