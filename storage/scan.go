package storage

import (
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kubernaut/datastorage/wire"
)

// Reading audits back: which table and columns hold each kind, and the one
// mapping of a row to wire, the inverse of WriteBatch's (rows.go): NULL
// becomes the omitted ""/nil, duration_ms whole milliseconds become
// DurationNanos, the event-time column becomes CreatedAt (remediation) or
// ExecutedAt (workflow) and OccurredAt. Records, the queries, the timeline
// and the export all read through it.

// auditTable describes how one kind is stored and read.
type auditTable struct {
	kind      wire.Kind
	name      string // the table
	eventTime string // the event-time column: OccurredAt; the partition key
	// correlation is the column a legal hold names (holds.go).
	correlation string
	columns     string // the SELECT list, in the order of the scan's targets
	// filters maps the read API's filter names to columns, in a fixed
	// order: queries are built from this list only, never from input.
	filters []filterColumn
	newScan func() auditScan
}

// filterColumn is one filter of the read API: its API name and its column.
type filterColumn struct {
	name, column string
}

var auditTables = map[wire.Kind]*auditTable{
	wire.KindRemediation: {
		kind: wire.KindRemediation, name: "remediation_audit", eventTime: "created_at",
		correlation: "remediation_request_id",
		columns: strings.Join([]string{"service_account", "id", "remediation_request_id", "alert_name", "namespace",
			"cluster", "priority", "action_type", "status", "confidence", "reasoning", "target_resource",
			"duration_ms", "error_message", "created_at", "executed_at", "received_at"}, ", "),
		filters: []filterColumn{
			{"remediationRequestID", "remediation_request_id"}, {"alertName", "alert_name"},
			{"cluster", "cluster"}, {"namespace", "namespace"}, {"actionType", "action_type"},
			{"status", "status"}, {"serviceAccount", "service_account"},
		},
		newScan: func() auditScan { return newRemediationScan() },
	},
	wire.KindWorkflow: {
		kind: wire.KindWorkflow, name: "workflow_audit", eventTime: "executed_at",
		correlation: "workflow_id",
		columns: strings.Join([]string{"service_account", "id", "workflow_id", "step_name", "step_status",
			"duration_ms", "error_message", "executed_at", "received_at"}, ", "),
		filters: []filterColumn{
			{"workflowID", "workflow_id"}, {"stepName", "step_name"}, {"stepStatus", "step_status"},
			{"serviceAccount", "service_account"},
		},
		newScan: func() auditScan { return newWorkflowScan() },
	},
}

// auditScan reads the rows of one table's SELECT list (auditTable.columns).
type auditScan interface {
	// targets are the scan destinations, reused for every row.
	targets() []any
	// entry maps the row last scanned to e. With keep, e's pointers are to
	// values of its own, so e may outlive the next row; without, they point
	// into the scan and the next row overwrites them (the export's reuse:
	// no allocation but the strings).
	entry(e *wire.AuditEntry, keep bool)
}

// remediationScan reads remediation_audit rows.
type remediationScan struct {
	sa, id, reqID                                                    string
	alert, ns, cluster, prio, action, status, reason, target, errMsg pgtype.Text
	conf                                                             pgtype.Float8
	dur                                                              pgtype.Int4
	created, received                                                time.Time
	executed                                                         pgtype.Timestamptz

	dest  []any
	reuse remediationBody
}

// remediationBody holds an entry's remediation and the values its pointers
// point to: one allocation per kept entry.
type remediationBody struct {
	audit             wire.RemediationAudit
	confidence        float64
	duration          int64
	created, executed time.Time
}

func newRemediationScan() *remediationScan {
	s := &remediationScan{}
	s.dest = []any{&s.sa, &s.id, &s.reqID, &s.alert, &s.ns, &s.cluster, &s.prio, &s.action, &s.status,
		&s.conf, &s.reason, &s.target, &s.dur, &s.errMsg, &s.created, &s.executed, &s.received}
	return s
}

func (s *remediationScan) targets() []any { return s.dest }

func (s *remediationScan) entry(e *wire.AuditEntry, keep bool) {
	b := &s.reuse
	if keep {
		b = new(remediationBody)
	}
	b.audit = wire.RemediationAudit{
		RemediationRequestID: s.reqID, AlertName: s.alert.String, Namespace: s.ns.String,
		Cluster: s.cluster.String, Priority: s.prio.String, ActionType: s.action.String,
		Status: s.status.String, Reasoning: s.reason.String, TargetResource: s.target.String,
		ErrorMessage: s.errMsg.String,
	}
	if s.conf.Valid {
		b.confidence = s.conf.Float64
		b.audit.Confidence = &b.confidence
	}
	if s.dur.Valid {
		b.duration = int64(s.dur.Int32) * int64(time.Millisecond)
		b.audit.DurationNanos = &b.duration
	}
	b.created = s.created
	b.audit.CreatedAt = &b.created
	if s.executed.Valid {
		b.executed = s.executed.Time
		b.audit.ExecutedAt = &b.executed
	}
	*e = wire.AuditEntry{Kind: wire.KindRemediation, AuditID: s.id, ServiceAccount: s.sa,
		OccurredAt: s.created, ReceivedAt: s.received, Remediation: &b.audit}
}

// workflowScan reads workflow_audit rows.
type workflowScan struct {
	sa, id, wfID, step, stepStatus string
	dur                            pgtype.Int4
	errMsg                         pgtype.Text
	executed, received             time.Time

	dest  []any
	reuse workflowBody
}

// workflowBody is remediationBody for workflow steps.
type workflowBody struct {
	audit    wire.WorkflowAudit
	duration int64
	executed time.Time
}

func newWorkflowScan() *workflowScan {
	s := &workflowScan{}
	s.dest = []any{&s.sa, &s.id, &s.wfID, &s.step, &s.stepStatus, &s.dur, &s.errMsg, &s.executed, &s.received}
	return s
}

func (s *workflowScan) targets() []any { return s.dest }

func (s *workflowScan) entry(e *wire.AuditEntry, keep bool) {
	b := &s.reuse
	if keep {
		b = new(workflowBody)
	}
	b.audit = wire.WorkflowAudit{WorkflowID: s.wfID, StepName: s.step, StepStatus: s.stepStatus,
		ErrorMessage: s.errMsg.String}
	if s.dur.Valid {
		b.duration = int64(s.dur.Int32) * int64(time.Millisecond)
		b.audit.DurationNanos = &b.duration
	}
	b.executed = s.executed
	b.audit.ExecutedAt = &b.executed
	*e = wire.AuditEntry{Kind: wire.KindWorkflow, AuditID: s.id, ServiceAccount: s.sa,
		OccurredAt: s.executed, ReceivedAt: s.received, Workflow: &b.audit}
}
