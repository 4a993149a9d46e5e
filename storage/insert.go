package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The fallback path, for batches the COPY fast path (copy.go) refused
// because the writer stored some of their IDs already: one INSERT … SELECT
// FROM unnest(…) per kind, each column sent as one binary array parameter,
// pipelined with BEGIN and COMMIT in a single round trip, the ledger entry
// (ledger.go) with them. A record's key is
// its kind, its ID and its writer (migration 0004): another writer's row with
// the same ID is no conflict. The audit tables are partitioned by event time
// (0007), so their primary key, (id, service_account, <event time>), holds
// only within a partition, and a retry may carry another event time (one
// taken from a new receivedAt); audit_ids is the key across partitions: each
// insert first claims its rows' keys there (ON CONFLICT DO NOTHING
// RETURNING), and stores only the rows it claimed. RETURNING tells new
// records from duplicates.
//
// Measured on the shared 2-core machine, 500-record batches (3/4
// remediation, 1/4 workflow), rates relative to a direct binary COPY of the
// same rows in the same run:
//
//	COPY fast path, then this fallback on conflict   0.88–0.94   ← WriteBatch
//	  … with the embedding outbox entry (outbox.go)   0.82–0.85
//	this path alone (unnest, ON CONFLICT, pipelined)  0.68–0.70
//	COPY to temp staging + INSERT … SELECT            0.57–0.59
//	precheck of existing IDs + COPY                   0.55–0.66
//	anti-join (WHERE NOT EXISTS)                      0.35–0.46
//
// `go test -run '^$' -bench WriteBatchVsCopy -benchtime 100x -count 3 ./storage/`
// reports the first ratio as writebatch/copy.

// Each insert is a data-modifying CTE: claim the keys, store the claimed
// rows, and enqueue the embedding backlog (outbox.go) of exactly the rows it
// inserted, in the same statement and so the same transaction. Two batches
// claiming the same key serialize on audit_ids' primary key: the second
// waits for the first to commit, then finds the conflict. A claimed key has
// no row (SCHEMA.md, "Exactly once across partitions"), so the row goes in
// without an ON CONFLICT of its own, as on the COPY path: one on the
// partitioned table took about 0.08 ms of a one-row insert's 0.2 (arbiter
// index set-up in the partition, speculative insertion); a row there
// without its key (a key deleted by hand) fails the batch, it is not
// silently taken for a duplicate.
const insertRemediation = `
WITH claimed AS (
INSERT INTO audit_ids (id, service_account, kind, event_time)
SELECT id, $17, 'remediation', created_at FROM unnest($1::text[], $14::timestamptz[]) AS k(id, created_at)
ON CONFLICT DO NOTHING
RETURNING id
), ins AS (
INSERT INTO remediation_audit (
    id, remediation_request_id, alert_name, namespace, cluster, priority,
    action_type, status, confidence, reasoning, target_resource, duration_ms,
    error_message, created_at, executed_at, service_account, received_at, ledger_batch)
SELECT id, remediation_request_id, NULLIF(alert_name, ''), NULLIF(namespace, ''),
    NULLIF(cluster, ''), NULLIF(priority, ''), NULLIF(action_type, ''),
    NULLIF(status, ''), confidence, NULLIF(reasoning, ''),
    NULLIF(target_resource, ''), duration_ms, NULLIF(error_message, ''),
    created_at, executed_at, $17, received_at, currval('audit_ledger_batch')
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::float8[], $10::text[], $11::text[], $12::int4[],
    $13::text[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[])
    AS t(id, remediation_request_id, alert_name, namespace, cluster, priority,
    action_type, status, confidence, reasoning, target_resource, duration_ms,
    error_message, created_at, executed_at, received_at)
WHERE t.id IN (SELECT id FROM claimed)
RETURNING id
), outbox AS (
INSERT INTO embedding_outbox (remediation_ids, workflow_ids, service_account)
SELECT array_agg(id), '{}', $17 FROM ins HAVING count(*) > 0
), entry AS (
` + foldedEntry + `$17, $19, $20
WHERE $18::bytea IS NOT NULL
)
SELECT id FROM ins`

var insertWorkflow = `
WITH claimed AS (
INSERT INTO audit_ids (id, service_account, kind, event_time)
SELECT id, $9, 'workflow', executed_at FROM unnest($1::text[], $7::timestamptz[]) AS k(id, executed_at)
ON CONFLICT DO NOTHING
RETURNING id
), ins AS (
INSERT INTO workflow_audit (
    id, workflow_id, step_name, step_status, duration_ms, error_message,
    executed_at, service_account, received_at, ledger_batch)
SELECT id, workflow_id, step_name, step_status, duration_ms,
    NULLIF(error_message, ''), executed_at, $9, received_at, currval('audit_ledger_batch')
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[],
    $6::text[], $7::timestamptz[], $8::timestamptz[])
    AS t(id, workflow_id, step_name, step_status, duration_ms, error_message,
    executed_at, received_at)
WHERE t.id IN (SELECT id FROM claimed)
RETURNING id
), outbox AS (
INSERT INTO embedding_outbox (remediation_ids, workflow_ids, service_account)
SELECT '{}', array_agg(id), $9 FROM ins HAVING count(*) > 0
), entry AS (
` + strings.ReplaceAll(foldedEntry, "$18", "$10") + `$9, $11, $12
WHERE $10::bytea IS NOT NULL
)
SELECT id FROM ins`

// foldedEntry starts the ledger entry CTE of a batch of one kind (the
// single-record endpoints' case): the entry, computed beforehand for every
// row, goes in the same statement as the rows, and the batch stays one round
// trip. The entry must list exactly the rows stored: when the insert did not
// store them all (a retry), the digest ($18) becomes NULL, which the NOT NULL
// column refuses, and the batch is sent again the long way (insertRows
// without fold), whose entry lists the rows stored. $18 NULL: no entry here.
const foldedEntry = `INSERT INTO audit_ledger (batch, digest, service_account, written_at, rows)
SELECT currval('audit_ledger_batch'),
    CASE WHEN (SELECT count(*) FROM ins) = cardinality($1::text[]) THEN $18::bytea END,
    `

// errEntryIncomplete is a folded entry refused because the insert did not
// store every row of the batch.
var errEntryIncomplete = errors.New("not every row was stored: the entry goes the long way")

// rollbackTimeout bounds the ROLLBACK after a failed batch.
const rollbackTimeout = 5 * time.Second

// insertRows writes the groups' rows in one transaction: BEGIN, then for
// each group its ledger batch number and one insert per kind present, then
// COMMIT, pipelined in one round trip. A group's ledger entry goes in its
// insert (foldedEntry) when fold is set and the group is of one kind;
// errEntryIncomplete then says the transaction must be sent again without
// fold. The entries not folded, of the rows the inserts stored, follow
// with COMMIT in a second round trip (none when noLedger). It records the
// IDs each insert stored in its group, and reports whether the server
// acknowledged BEGIN (if not, nothing of the batch ran).
//
// Each insert enqueues the embedding backlog of the rows it stored (see
// insertRemediation).
func insertRows(ctx context.Context, conn *pgx.Conn, gs []*groupRows, fold, noLedger bool) (began bool, err error) {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.QueuedQueries[0].Exec(func(pgconn.CommandTag) error {
		began = true
		return nil
	})
	separate := false // some entry follows in a second round trip
	for _, g := range gs {
		g.remStored, g.wfStored = nil, nil
		var (
			digest, entryRows []byte // nil: no folded entry
			writtenAt         time.Time
		)
		if fold && g.oneKind() {
			e := newEntry(g.sa, &g.rem, &g.wf, nil, nil)
			digest, entryRows, writtenAt = e.Digest[:], e.EncodeRows(), e.WrittenAt
		} else if !noLedger {
			separate = true
		}
		b.Queue(nextBatch).QueryRow(func(row pgx.Row) error { return row.Scan(&g.batch) })
		if rem := &g.rem; rem.len() > 0 {
			b.Queue(insertRemediation,
				rem.id, rem.remediationRequestID, rem.alertName, rem.namespace, rem.cluster,
				rem.priority, rem.actionType, rem.status, rem.confidence, rem.reasoning,
				rem.targetResource, rem.durationMs, rem.errorMessage, rem.createdAt,
				rem.executedAt, rem.receivedAt, g.sa, digest, writtenAt, entryRows,
			).Query(func(rows pgx.Rows) (err error) {
				g.remStored, err = collectIDs(rows, rem.len())
				return err
			})
		}
		if wf := &g.wf; wf.len() > 0 {
			b.Queue(insertWorkflow,
				wf.id, wf.workflowID, wf.stepName, wf.stepStatus, wf.durationMs,
				wf.errorMessage, wf.executedAt, wf.receivedAt, g.sa, digest, writtenAt, entryRows,
			).Query(func(rows pgx.Rows) (err error) {
				g.wfStored, err = collectIDs(rows, wf.len())
				return err
			})
		}
	}
	if !separate {
		b.Queue("COMMIT")
	}
	br := conn.SendBatch(ctx, b)
	tx := br.Tx()
	err = br.Close()
	if err == nil && separate {
		b = &pgx.Batch{}
		for _, g := range gs {
			if !(fold && g.oneKind()) && len(g.remStored)+len(g.wfStored) > 0 {
				queueEntry(b, g.batch, newEntry(g.sa, &g.rem, &g.wf, g.remStored, g.wfStored))
			}
		}
		b.Queue("COMMIT")
		err = conn.SendBatch(ctx, b).Close()
	}
	if err != nil {
		// After a failed statement the server skipped the rest and the
		// transaction is aborted: roll it back so the connection returns to
		// the pool clean. A no-op when BEGIN never ran or COMMIT did.
		rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		_ = tx.Rollback(rbCtx)
		cancel()
		var pgErr *pgconn.PgError
		if fold && errors.As(err, &pgErr) && pgErr.Code == "23502" && pgErr.TableName == "audit_ledger" {
			err = fmt.Errorf("%w: %w", errEntryIncomplete, err)
		}
		return began, fmt.Errorf("insert: %w", err)
	}
	return true, nil
}

// collectIDs reads the RETURNING id rows of an insert.
func collectIDs(rows pgx.Rows, capacity int) (map[string]struct{}, error) {
	ids := make(map[string]struct{}, capacity)
	var id string
	_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		ids[id] = struct{}{}
		return nil
	})
	return ids, err
}
