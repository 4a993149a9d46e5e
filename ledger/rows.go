package ledger

import (
	"errors"
	"fmt"
	"time"

	"github.com/kubernaut/datastorage/wire"
)

// The columns a leaf covers, per table, in the order of the table's ledger
// column list (storage's COPY columns): the one definition of what a
// writer hashes (storage, from its batch) and of what an export's reader
// hashes (VerifyExportProof, from the exported records). Optional text is
// "" for NULL (storage stores "" as NULL); the Has fields say whether the
// nullable numbers and times are set.

// RemediationRow is a remediation_audit row as stored.
type RemediationRow struct {
	ID, RemediationRequestID, AlertName, Namespace, Cluster, Priority, ActionType, Status string

	Confidence    float64
	HasConfidence bool
	Reasoning     string
	Target        string
	DurationMs    int32
	HasDuration   bool
	ErrorMessage  string
	CreatedAt     time.Time
	ExecutedAt    time.Time
	HasExecutedAt bool
	Writer        string
	ReceivedAt    time.Time
}

// WorkflowRow is a workflow_audit row as stored.
type WorkflowRow struct {
	ID, WorkflowID, StepName, StepStatus string

	DurationMs   int32
	HasDuration  bool
	ErrorMessage string
	ExecutedAt   time.Time
	Writer       string
	ReceivedAt   time.Time
}

// Remediation is the leaf of r.
func (e *RowEncoder) Remediation(r *RemediationRow) Leaf {
	e.Reset(KindRemediation)
	e.Text(r.ID)
	e.Text(r.RemediationRequestID)
	e.OptionalText(r.AlertName)
	e.OptionalText(r.Namespace)
	e.OptionalText(r.Cluster)
	e.OptionalText(r.Priority)
	e.OptionalText(r.ActionType)
	e.OptionalText(r.Status)
	e.Float8(r.Confidence, r.HasConfidence)
	e.OptionalText(r.Reasoning)
	e.OptionalText(r.Target)
	e.Int4(r.DurationMs, r.HasDuration)
	e.OptionalText(r.ErrorMessage)
	e.Time(r.CreatedAt, true)
	e.Time(r.ExecutedAt, r.HasExecutedAt)
	e.Text(r.Writer)
	e.Time(r.ReceivedAt, true)
	return e.Sum()
}

// Workflow is the leaf of r.
func (e *RowEncoder) Workflow(r *WorkflowRow) Leaf {
	e.Reset(KindWorkflow)
	e.Text(r.ID)
	e.Text(r.WorkflowID)
	e.Text(r.StepName)
	e.Text(r.StepStatus)
	e.Int4(r.DurationMs, r.HasDuration)
	e.OptionalText(r.ErrorMessage)
	e.Time(r.ExecutedAt, true)
	e.Text(r.Writer)
	e.Time(r.ReceivedAt, true)
	return e.Sum()
}

// RecordLeaf is the leaf of the row an exported (or read) record came from:
// the inverse of storage's mapping of a row to wire.AuditEntry.
func (e *RowEncoder) RecordLeaf(a *wire.AuditEntry) (kind byte, leaf Leaf, err error) {
	switch {
	case a.Kind == wire.KindRemediation && a.Remediation != nil:
		m := a.Remediation
		r := RemediationRow{ID: a.AuditID, RemediationRequestID: m.RemediationRequestID, AlertName: m.AlertName,
			Namespace: m.Namespace, Cluster: m.Cluster, Priority: m.Priority, ActionType: m.ActionType, Status: m.Status,
			Reasoning: m.Reasoning, Target: m.TargetResource, ErrorMessage: m.ErrorMessage,
			CreatedAt: a.OccurredAt, Writer: a.ServiceAccount, ReceivedAt: a.ReceivedAt}
		if m.Confidence != nil {
			r.Confidence, r.HasConfidence = *m.Confidence, true
		}
		if m.DurationNanos != nil {
			if r.DurationMs, err = millis(*m.DurationNanos); err != nil {
				return 0, leaf, err
			}
			r.HasDuration = true
		}
		if m.ExecutedAt != nil {
			r.ExecutedAt, r.HasExecutedAt = *m.ExecutedAt, true
		}
		return KindRemediation, e.Remediation(&r), nil
	case a.Kind == wire.KindWorkflow && a.Workflow != nil:
		w := a.Workflow
		r := WorkflowRow{ID: a.AuditID, WorkflowID: w.WorkflowID, StepName: w.StepName, StepStatus: w.StepStatus,
			ErrorMessage: w.ErrorMessage, ExecutedAt: a.OccurredAt, Writer: a.ServiceAccount, ReceivedAt: a.ReceivedAt}
		if w.DurationNanos != nil {
			if r.DurationMs, err = millis(*w.DurationNanos); err != nil {
				return 0, leaf, err
			}
			r.HasDuration = true
		}
		return KindWorkflow, e.Workflow(&r), nil
	}
	return 0, leaf, errors.New("a record with neither a remediation nor a workflow body of its kind")
}

// millis is a stored duration back from its nanoseconds (whole
// milliseconds as read back).
func millis(ns int64) (int32, error) {
	ms := ns / int64(time.Millisecond)
	if ms*int64(time.Millisecond) != ns || ms != int64(int32(ms)) {
		return 0, fmt.Errorf("duration %d ns is not a stored duration (whole milliseconds, int4)", ns)
	}
	return int32(ms), nil
}
