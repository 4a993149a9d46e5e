package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kubernaut/datastorage/wire"
)

// The embedding backlog (DESIGN.md decision 2) is the table embedding_outbox
// in the audit database: WriteBatch adds one entry per committed batch,
// listing the IDs of the rows it stored, in the transaction that commits the
// rows (copy.go, insert.go), so a committed audit always has its entry and a
// rolled-back one never does. Workers claim entries with ClaimOutbox (FOR
// UPDATE SKIP LOCKED: concurrent workers and replicas never get the same
// entry), embed and store the vectors, then Complete the claim, which deletes
// the entries in the claim's transaction. A worker that dies before Complete
// loses its connection, PostgreSQL rolls the claim back and the entries are
// claimed again; vector writes are idempotent (VectorDB.Write), so a
// repeated entry stores nothing twice.

// insertOutbox enqueues one batch's IDs (nil slices are empty arrays).
const insertOutbox = `INSERT INTO embedding_outbox (remediation_ids, workflow_ids)
VALUES (coalesce($1::text[], '{}'), coalesce($2::text[], '{}'))`

// maxClaimEntries bounds the outbox rows one claim takes, and so its round
// trips, when entries are small (single-record writes).
const maxClaimEntries = 64

// OutboxEntry is one claimed audit.
type OutboxEntry struct {
	AuditID string
	Kind    wire.Kind
	// Record is the stored audit, read back from its table; nil when the row
	// no longer exists (removed by retention after it was enqueued): such an
	// entry is simply cleared by Complete.
	Record *wire.Record
}

// OutboxClaim is the audits of a few backlog entries, locked by one worker.
// It holds a transaction (and a pooled connection) until Complete or Release.
type OutboxClaim struct {
	Entries []OutboxEntry

	tx    pgx.Tx
	ctids []pgtype.TID
	once  sync.Once
}

// ClaimOutbox locks backlog entries that no other worker holds until they
// list at least n audits (an entry, one committed batch, is never split, so
// a claim may hold more), or the backlog has no more, and loads their audits.
// An empty backlog gives a claim with no entries (already released). The
// caller must call Complete or Release.
func (db *DB) ClaimOutbox(ctx context.Context, n int) (*OutboxClaim, error) {
	const op = "storage: claim outbox"
	if n <= 0 {
		return nil, fmt.Errorf("%s: batch size must be positive, got %d", op, n)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, acquireErr(err))
	}
	c := &OutboxClaim{tx: tx}
	if err := c.load(ctx, n); err != nil {
		c.Release(ctx)
		return nil, wrapErr(op, err)
	}
	if len(c.Entries) == 0 {
		c.Release(ctx)
	}
	return c, nil
}

func (c *OutboxClaim) load(ctx context.Context, n int) error {
	var remIDs, wfIDs []string
	for len(c.ctids) < maxClaimEntries && len(remIDs)+len(wfIDs) < n {
		var (
			ctid    pgtype.TID
			rem, wf []string
		)
		// SKIP LOCKED skips other transactions' locks, not our own: leave
		// out the entries this claim holds already.
		err := c.tx.QueryRow(ctx, `SELECT ctid, remediation_ids, workflow_ids FROM embedding_outbox
			WHERE ctid <> ALL(coalesce($1::tid[], '{}')) LIMIT 1 FOR UPDATE SKIP LOCKED`, c.ctids).Scan(&ctid, &rem, &wf)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return err
		}
		c.ctids = append(c.ctids, ctid)
		remIDs, wfIDs = append(remIDs, rem...), append(wfIDs, wf...)
	}
	if len(remIDs)+len(wfIDs) == 0 {
		return nil
	}
	recs, err := loadRecords(ctx, c.tx, remIDs, wfIDs)
	if err != nil {
		return err
	}
	add := func(ids []string, kind wire.Kind) {
		for _, id := range ids {
			e := OutboxEntry{AuditID: id, Kind: kind}
			if r, ok := recs[id]; ok && r.Kind == kind {
				e.Record = r
			}
			c.Entries = append(c.Entries, e)
		}
	}
	add(remIDs, wire.KindRemediation)
	add(wfIDs, wire.KindWorkflow)
	return nil
}

// Complete deletes the claimed entries and commits: their vectors are
// stored. After an error the entries stay in the backlog.
func (c *OutboxClaim) Complete(ctx context.Context) error {
	const op = "storage: complete outbox claim"
	if len(c.ctids) == 0 {
		return nil
	}
	first := false
	c.once.Do(func() { first = true })
	if !first {
		return errors.New(op + ": claim already completed or released")
	}
	if _, err := c.tx.Exec(ctx, `DELETE FROM embedding_outbox WHERE ctid = ANY($1::tid[])`, c.ctids); err != nil {
		rollback(ctx, c.tx)
		return wrapErr(op, err)
	}
	if err := c.tx.Commit(ctx); err != nil {
		return wrapErr(op, err)
	}
	return nil
}

// Release gives the entries back to the backlog (rolls the claim back). It is
// idempotent and a no-op after Complete.
func (c *OutboxClaim) Release(ctx context.Context) {
	c.once.Do(func() { rollback(ctx, c.tx) })
}

func rollback(ctx context.Context, tx pgx.Tx) {
	rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	_ = tx.Rollback(rbCtx)
	cancel()
}

// OutboxStats is the size of the embedding backlog.
type OutboxStats struct {
	Depth int64 // audits waiting for their embedding
	// Oldest is when the oldest entry was enqueued; zero when empty.
	Oldest time.Time
}

// OutboxStats counts the backlog (a scan of the table: call it every few
// seconds, not per request).
func (db *DB) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var (
		st     OutboxStats
		oldest pgtype.Timestamptz
	)
	err := db.pool.QueryRow(ctx, `SELECT coalesce(sum(cardinality(remediation_ids) + cardinality(workflow_ids)), 0), min(enqueued_at) FROM embedding_outbox`).Scan(&st.Depth, &oldest)
	if err != nil {
		return OutboxStats{}, wrapErr("storage: outbox stats", err)
	}
	if oldest.Valid {
		st.Oldest = oldest.Time
	}
	return st, nil
}
