package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kubernaut/datastorage/wire"
)

// RecordRef is a stored audit's identity: its kind, the service account
// that wrote it ("namespace/name") and its ID, which is unique per writer
// and kind, not globally (DESIGN.md decision 10).
type RecordRef struct {
	Kind           wire.Kind
	ServiceAccount string
	ID             string
}

// querier is what loadRecords needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Records reads stored audits back by identity, as wire records: the inverse
// of WriteBatch's mapping (NULL becomes the omitted ""/nil; durations are
// whole milliseconds). Audits not stored (or stored by another writer only)
// are absent from the map.
func (db *DB) Records(ctx context.Context, refs []RecordRef) (map[RecordRef]*wire.Record, error) {
	recs, err := loadRecords(ctx, db.pool, refs)
	if err != nil {
		return nil, wrapErr("storage: read records", err)
	}
	return recs, nil
}

// refColumns splits refs of one kind into the writer and ID arrays that
// the look-ups join against.
func refColumns(refs []RecordRef, kind wire.Kind) (sas, ids []string) {
	for _, r := range refs {
		if r.Kind == kind {
			sas, ids = append(sas, r.ServiceAccount), append(ids, r.ID)
		}
	}
	return sas, ids
}

func loadRecords(ctx context.Context, q querier, refs []RecordRef) (map[RecordRef]*wire.Record, error) {
	out := make(map[RecordRef]*wire.Record, len(refs))
	if sas, ids := refColumns(refs, wire.KindRemediation); len(ids) > 0 {
		rows, err := q.Query(ctx, `SELECT r.service_account, r.id, remediation_request_id, alert_name, namespace,
			cluster, priority, action_type, status, confidence, reasoning, target_resource, duration_ms,
			error_message, created_at, executed_at, received_at
			FROM unnest($1::text[], $2::text[]) AS k(service_account, id)
			JOIN remediation_audit r ON r.id = k.id AND r.service_account = k.service_account`, sas, ids)
		if err != nil {
			return nil, fmt.Errorf("read remediation_audit: %w", err)
		}
		var (
			sa, id, reqID                                                    string
			alert, ns, cluster, prio, action, status, reason, target, errMsg pgtype.Text
			conf                                                             pgtype.Float8
			dur                                                              pgtype.Int4
			created, received                                                time.Time
			executed                                                         pgtype.Timestamptz
		)
		_, err = pgx.ForEachRow(rows, []any{&sa, &id, &reqID, &alert, &ns, &cluster, &prio, &action, &status,
			&conf, &reason, &target, &dur, &errMsg, &created, &executed, &received}, func() error {
			a := &wire.RemediationAudit{
				RemediationRequestID: reqID, AlertName: alert.String, Namespace: ns.String,
				Cluster: cluster.String, Priority: prio.String, ActionType: action.String,
				Status: status.String, Reasoning: reason.String, TargetResource: target.String,
				ErrorMessage: errMsg.String, DurationNanos: nanos(dur),
			}
			if conf.Valid {
				v := conf.Float64
				a.Confidence = &v
			}
			c := created
			a.CreatedAt = &c
			if executed.Valid {
				e := executed.Time
				a.ExecutedAt = &e
			}
			ref := RecordRef{Kind: wire.KindRemediation, ServiceAccount: sa, ID: id}
			out[ref] = &wire.Record{ID: id, Kind: wire.KindRemediation, ReceivedAt: received, Remediation: a}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read remediation_audit: %w", err)
		}
	}
	if sas, ids := refColumns(refs, wire.KindWorkflow); len(ids) > 0 {
		rows, err := q.Query(ctx, `SELECT w.service_account, w.id, workflow_id, step_name, step_status, duration_ms,
			error_message, executed_at, received_at
			FROM unnest($1::text[], $2::text[]) AS k(service_account, id)
			JOIN workflow_audit w ON w.id = k.id AND w.service_account = k.service_account`, sas, ids)
		if err != nil {
			return nil, fmt.Errorf("read workflow_audit: %w", err)
		}
		var (
			sa, id, wfID, step, stepStatus string
			dur                            pgtype.Int4
			errMsg                         pgtype.Text
			executed, received             time.Time
		)
		_, err = pgx.ForEachRow(rows, []any{&sa, &id, &wfID, &step, &stepStatus, &dur, &errMsg, &executed, &received}, func() error {
			e := executed
			ref := RecordRef{Kind: wire.KindWorkflow, ServiceAccount: sa, ID: id}
			out[ref] = &wire.Record{ID: id, Kind: wire.KindWorkflow, ReceivedAt: received, Workflow: &wire.WorkflowAudit{
				WorkflowID: wfID, StepName: step, StepStatus: stepStatus, DurationNanos: nanos(dur),
				ErrorMessage: errMsg.String, ExecutedAt: &e,
			}}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read workflow_audit: %w", err)
		}
	}
	return out, nil
}

func nanos(ms pgtype.Int4) *int64 {
	if !ms.Valid {
		return nil
	}
	n := int64(ms.Int32) * int64(time.Millisecond)
	return &n
}

// OccurredAt is the audit's own time: createdAt (remediation) or executedAt
// (workflow), else when it was received.
func OccurredAt(rec *wire.Record) time.Time {
	switch {
	case rec.Remediation != nil && rec.Remediation.CreatedAt != nil:
		return *rec.Remediation.CreatedAt
	case rec.Workflow != nil && rec.Workflow.ExecutedAt != nil:
		return *rec.Workflow.ExecutedAt
	}
	return rec.ReceivedAt
}
