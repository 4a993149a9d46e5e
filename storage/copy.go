package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The fast path: COPY (binary) straight into the audit tables. A batch
// almost always holds only new IDs (a retry is the exception), and then
// COPY is the cheapest way in: heap multi-insert, no per-row speculative
// insertion. If the writer stored any of the IDs already (the key is ID and
// writer), the COPY fails with a unique
// violation, the transaction is rolled back whole, and the batch takes the
// ON CONFLICT path (insert.go), which tells new records from duplicates.
// A retried batch pays for one failed COPY; its aborted rows are left for
// VACUUM like any rolled-back insert.

// copyMinRows is the smallest batch that takes the COPY path. COPY costs
// three round trips (BEGIN, COPY per kind, COMMIT) where the pipelined
// INSERT costs one, so small batches, such as the single-record endpoints'
// writes, go straight to INSERT … ON CONFLICT. A variable so the benchmark
// can compare both paths.
var copyMinRows = 16

var (
	remediationColumns = []string{"id", "remediation_request_id", "alert_name", "namespace", "cluster",
		"priority", "action_type", "status", "confidence", "reasoning", "target_resource", "duration_ms",
		"error_message", "created_at", "executed_at", "service_account", "received_at"}
	auditIDColumns  = []string{"id", "service_account", "kind", "event_time"}
	workflowColumns = []string{"id", "workflow_id", "step_name", "step_status", "duration_ms",
		"error_message", "executed_at", "service_account", "received_at"}
	// What COPY sends: the columns above (a leaf's, ledger.go), then the
	// ledger batch.
	remediationCopyColumns = slices.Concat(remediationColumns, []string{"ledger_batch"})
	workflowCopyColumns    = slices.Concat(workflowColumns, []string{"ledger_batch"})
)

// errAlreadyStored is a COPY refused because an ID of the batch exists.
var errAlreadyStored = errors.New("an ID of the batch is already stored")

// copyRows COPYs both kinds of one writer's rows in one transaction, with
// their ledger entry unless noLedger. began reports whether the server
// acknowledged BEGIN (if not, nothing of the batch ran).
func copyRows(ctx context.Context, conn *pgx.Conn, g *groupRows, noLedger bool) (began bool, err error) {
	sa, rem, wf := g.sa, &g.rem, &g.wf
	// BEGIN and the ledger batch number in one round trip.
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.QueuedQueries[0].Exec(func(pgconn.CommandTag) error {
		began = true
		return nil
	})
	b.Queue(nextBatch).QueryRow(func(row pgx.Row) error { return row.Scan(&g.batch) })
	br := conn.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() {
		if err != nil {
			rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			_ = tx.Rollback(rbCtx)
			cancel()
		}
	}()
	if err := br.Close(); err != nil {
		return began, fmt.Errorf("begin: %w", err)
	}
	// The batch's keys first (audit_ids, the key across partitions): a key
	// this writer holds already makes the batch a retry, for the ON CONFLICT
	// path to sort out.
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_ids"}, auditIDColumns, &keySource{sa: sa, rem: rem, wf: wf, i: -1}); err != nil {
		return true, copyErr(err)
	}
	if rem.len() > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"remediation_audit"}, remediationCopyColumns, &remediationSource{rows: rem, sa: sa, batch: g.batch, i: -1}); err != nil {
			return true, copyErr(err)
		}
	}
	if wf.len() > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"workflow_audit"}, workflowCopyColumns, &workflowSource{rows: wf, sa: sa, batch: g.batch, i: -1}); err != nil {
			return true, copyErr(err)
		}
	}
	// The embedding backlog entry of the batch (outbox.go) and its ledger
	// entry, pipelined with COMMIT: one round trip. After a failed insert
	// the server skips COMMIT and the deferred rollback ends the aborted
	// transaction.
	b = &pgx.Batch{}
	b.Queue(insertOutbox, rem.id, wf.id, sa)
	if !noLedger {
		queueEntry(b, g.batch, newEntry(sa, rem, wf, nil, nil))
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return true, fmt.Errorf("outbox, ledger and commit: %w", err)
	}
	return true, nil
}

// keySource feeds the keys of both kinds to CopyFrom into audit_ids.
type keySource struct {
	sa  string
	rem *remediationRows
	wf  *workflowRows
	i   int
}

func (s *keySource) Next() bool { s.i++; return s.i < s.rem.len()+s.wf.len() }
func (s *keySource) Err() error { return nil }
func (s *keySource) Values() ([]any, error) {
	if s.i < s.rem.len() {
		return []any{s.rem.id[s.i], s.sa, "remediation", s.rem.createdAt[s.i]}, nil
	}
	j := s.i - s.rem.len()
	return []any{s.wf.id[j], s.sa, "workflow", s.wf.executedAt[j]}, nil
}

func copyErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("copy: %w: %w", errAlreadyStored, err)
	}
	return fmt.Errorf("copy: %w", err)
}

// remediationSource feeds remediationRows to CopyFrom row by row; an omitted
// optional string ("") is stored as NULL, as the ON CONFLICT path does.
type remediationSource struct {
	rows  *remediationRows
	sa    string
	batch int64
	i     int
}

func (s *remediationSource) Next() bool { s.i++; return s.i < s.rows.len() }
func (s *remediationSource) Err() error { return nil }
func (s *remediationSource) Values() ([]any, error) {
	r, i := s.rows, s.i
	return []any{r.id[i], r.remediationRequestID[i], nullIfEmpty(r.alertName[i]), nullIfEmpty(r.namespace[i]),
		nullIfEmpty(r.cluster[i]), nullIfEmpty(r.priority[i]), nullIfEmpty(r.actionType[i]), nullIfEmpty(r.status[i]),
		r.confidence[i], nullIfEmpty(r.reasoning[i]), nullIfEmpty(r.targetResource[i]), r.durationMs[i],
		nullIfEmpty(r.errorMessage[i]), r.createdAt[i], r.executedAt[i], s.sa, r.receivedAt[i], s.batch}, nil
}

// workflowSource is remediationSource for workflow rows.
type workflowSource struct {
	rows  *workflowRows
	sa    string
	batch int64
	i     int
}

func (s *workflowSource) Next() bool { s.i++; return s.i < s.rows.len() }
func (s *workflowSource) Err() error { return nil }
func (s *workflowSource) Values() ([]any, error) {
	r, i := s.rows, s.i
	return []any{r.id[i], r.workflowID[i], r.stepName[i], r.stepStatus[i], r.durationMs[i],
		nullIfEmpty(r.errorMessage[i]), r.executedAt[i], s.sa, r.receivedAt[i], s.batch}, nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
