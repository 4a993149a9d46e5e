package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kubernaut/datastorage/wire"
)

// querier is what loadRecords needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Records reads stored audits back by ID (both kinds), as wire records: the
// inverse of WriteBatch's mapping (NULL becomes the omitted ""/nil;
// durations are whole milliseconds). Unknown IDs are absent from the map.
func (db *DB) Records(ctx context.Context, ids []string) (map[string]*wire.Record, error) {
	recs, err := loadRecords(ctx, db.pool, ids, ids)
	if err != nil {
		return nil, wrapErr("storage: read records", err)
	}
	return recs, nil
}

func loadRecords(ctx context.Context, q querier, remIDs, wfIDs []string) (map[string]*wire.Record, error) {
	out := make(map[string]*wire.Record, len(remIDs)+len(wfIDs))
	if len(remIDs) > 0 {
		rows, err := q.Query(ctx, `SELECT id, remediation_request_id, alert_name, namespace, cluster,
			priority, action_type, status, confidence, reasoning, target_resource, duration_ms,
			error_message, created_at, executed_at, received_at
			FROM remediation_audit WHERE id = ANY($1)`, remIDs)
		if err != nil {
			return nil, fmt.Errorf("read remediation_audit: %w", err)
		}
		var (
			id, reqID                                                        string
			alert, ns, cluster, prio, action, status, reason, target, errMsg pgtype.Text
			conf                                                             pgtype.Float8
			dur                                                              pgtype.Int4
			created, received                                                time.Time
			executed                                                         pgtype.Timestamptz
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &reqID, &alert, &ns, &cluster, &prio, &action, &status,
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
			out[id] = &wire.Record{ID: id, Kind: wire.KindRemediation, ReceivedAt: received, Remediation: a}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read remediation_audit: %w", err)
		}
	}
	if len(wfIDs) > 0 {
		rows, err := q.Query(ctx, `SELECT id, workflow_id, step_name, step_status, duration_ms,
			error_message, executed_at, received_at FROM workflow_audit WHERE id = ANY($1)`, wfIDs)
		if err != nil {
			return nil, fmt.Errorf("read workflow_audit: %w", err)
		}
		var (
			id, wfID, step, stepStatus string
			dur                        pgtype.Int4
			errMsg                     pgtype.Text
			executed, received         time.Time
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &wfID, &step, &stepStatus, &dur, &errMsg, &executed, &received}, func() error {
			e := executed
			out[id] = &wire.Record{ID: id, Kind: wire.KindWorkflow, ReceivedAt: received, Workflow: &wire.WorkflowAudit{
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
