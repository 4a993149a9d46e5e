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
// rolled-back one never does. An entry names its writer too (a batch has
// one), and its audits are read back as that writer's only. Workers claim entries with ClaimOutbox: a short
// transaction takes entries no live lease holds (FOR UPDATE SKIP LOCKED, so
// concurrent workers and replicas never take the same one), writes their
// lease and commits. The worker embeds and stores the vectors with no
// transaction open, then Complete deletes the entries. A worker that dies
// leaves its lease to expire, and the entries are claimed again; vector
// writes are idempotent (VectorDB.Write), so a repeated entry stores nothing
// twice.

// insertOutbox enqueues one batch's IDs and their writer (nil slices are
// empty arrays).
const insertOutbox = `INSERT INTO embedding_outbox (remediation_ids, workflow_ids, service_account)
VALUES (coalesce($1::text[], '{}'), coalesce($2::text[], '{}'), $3)`

// maxClaimEntries bounds the outbox rows one claim takes, and so its round
// trips, when entries are small (single-record writes).
const maxClaimEntries = 64

// OutboxEntry is one claimed audit: its identity, and the stored record.
type OutboxEntry struct {
	RecordRef
	// Record is the stored audit, read back from its table; nil when the row
	// no longer exists (removed by retention after it was enqueued): such an
	// entry is simply cleared by Complete.
	Record *wire.Record
}

// OutboxClaim is the audits of a few backlog entries, leased to one worker
// until Complete, Release or the end of the lease.
type OutboxClaim struct {
	Entries []OutboxEntry

	db   *DB
	ids  []int64 // the entries' ids
	once sync.Once
}

// ClaimOutbox leases backlog entries that no live lease holds, for lease,
// until they list at least n audits (an entry, one committed batch, is never
// split, so a claim may hold more) or the backlog has no more, and loads
// their audits. The lease should outlast the caller's work on the claim: once
// it ends, another worker may take the same entries (which is harmless, only
// wasted work). An empty backlog gives a claim with no entries. The caller
// must call Complete or Release.
func (db *DB) ClaimOutbox(ctx context.Context, n int, lease time.Duration) (*OutboxClaim, error) {
	const op = "storage: claim outbox"
	if n <= 0 {
		return nil, fmt.Errorf("%s: batch size must be positive, got %d", op, n)
	}
	if lease <= 0 {
		return nil, fmt.Errorf("%s: lease must be positive, got %s", op, lease)
	}
	c := &OutboxClaim{db: db}
	var refs []RecordRef
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		for len(c.ids) < maxClaimEntries && len(refs) < n {
			var (
				id      int64
				rem, wf []string
				sa      string
			)
			// SKIP LOCKED skips other transactions' locks, not our own:
			// leave out the entries this claim holds already.
			err := tx.QueryRow(ctx, `SELECT id, remediation_ids, workflow_ids, service_account FROM embedding_outbox
				WHERE (leased_until IS NULL OR leased_until < now()) AND id <> ALL(coalesce($1::bigint[], '{}'))
				ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`, c.ids).Scan(&id, &rem, &wf, &sa)
			if errors.Is(err, pgx.ErrNoRows) {
				break
			}
			if err != nil {
				return err
			}
			c.ids = append(c.ids, id)
			for _, r := range rem {
				refs = append(refs, RecordRef{Kind: wire.KindRemediation, ServiceAccount: sa, ID: r})
			}
			for _, w := range wf {
				refs = append(refs, RecordRef{Kind: wire.KindWorkflow, ServiceAccount: sa, ID: w})
			}
		}
		if len(c.ids) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE embedding_outbox SET leased_until = now() + $2::interval WHERE id = ANY($1)`,
			c.ids, lease)
		return err
	})
	if err != nil {
		return nil, wrapErr(op, err)
	}
	if len(c.ids) == 0 {
		return c, nil
	}
	recs, err := db.loadRecords(ctx, refs)
	if err != nil {
		c.Release(ctx)
		return nil, wrapErr(op, err)
	}
	c.Entries = make([]OutboxEntry, len(refs))
	for i, ref := range refs {
		c.Entries[i] = OutboxEntry{RecordRef: ref, Record: recs[ref]}
	}
	return c, nil
}

// Complete deletes the claimed entries: their vectors are stored. After an
// error the entries stay in the backlog (claimed again once the lease ends).
func (c *OutboxClaim) Complete(ctx context.Context) error {
	const op = "storage: complete outbox claim"
	if len(c.ids) == 0 {
		return nil
	}
	first := false
	c.once.Do(func() { first = true })
	if !first {
		return errors.New(op + ": claim already completed or released")
	}
	if _, err := c.db.pool.Exec(ctx, `DELETE FROM embedding_outbox WHERE id = ANY($1)`, c.ids); err != nil {
		return wrapErr(op, err)
	}
	return nil
}

// ExtendOutboxClaim renews c's lease: its entries stay leased until lease
// from now. A worker renews while it works, so that a short lease bounds how
// long a dead worker's entries wait. Extending a completed or released
// claim changes nothing.
func (db *DB) ExtendOutboxClaim(ctx context.Context, c *OutboxClaim, lease time.Duration) error {
	const op = "storage: extend outbox claim"
	if lease <= 0 {
		return fmt.Errorf("%s: lease must be positive, got %s", op, lease)
	}
	if len(c.ids) == 0 {
		return nil
	}
	// Only entries still leased: a released entry is not taken back.
	_, err := db.pool.Exec(ctx, `UPDATE embedding_outbox SET leased_until = now() + $2::interval
		WHERE id = ANY($1) AND leased_until IS NOT NULL`, c.ids, lease)
	if err != nil {
		return wrapErr(op, err)
	}
	return nil
}

// releaseTimeout bounds Release's statement.
const releaseTimeout = 5 * time.Second

// Release gives the entries back to the backlog at once (ends the lease),
// even when ctx is done; if that fails, the lease ends on its own. It is
// idempotent and a no-op after Complete.
func (c *OutboxClaim) Release(ctx context.Context) {
	if len(c.ids) == 0 {
		return
	}
	c.once.Do(func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		_, _ = c.db.pool.Exec(rctx, `UPDATE embedding_outbox SET leased_until = NULL WHERE id = ANY($1)`, c.ids)
	})
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

// enqueueByID adds to the backlog every stored audit with one of the given
// kinds and IDs, whoever wrote it: one entry per writer. ServiceAccount of
// the refs is ignored.
const enqueueByID = `
WITH r AS (SELECT service_account, id FROM remediation_audit WHERE id = ANY($1::text[])),
     w AS (SELECT service_account, id FROM workflow_audit WHERE id = ANY($2::text[]))
INSERT INTO embedding_outbox (remediation_ids, workflow_ids, service_account)
SELECT coalesce((SELECT array_agg(id) FROM r WHERE r.service_account = s.sa), '{}'),
       coalesce((SELECT array_agg(id) FROM w WHERE w.service_account = s.sa), '{}'),
       s.sa
FROM (SELECT service_account FROM r UNION SELECT service_account FROM w) AS s(sa)`

// EnqueueByID adds every stored audit of the given kinds and IDs, whoever
// wrote it, to the embedding backlog: how links made before records had
// owners (VectorDB.UnownedLinks) are made again, each for its writer. The
// vectors are stored already, so this costs a link per audit, not an
// embedding. The refs' ServiceAccount is ignored.
func (db *DB) EnqueueByID(ctx context.Context, refs []RecordRef) error {
	_, remIDs := refColumns(refs, wire.KindRemediation)
	_, wfIDs := refColumns(refs, wire.KindWorkflow)
	if _, err := db.pool.Exec(ctx, enqueueByID, remIDs, wfIDs); err != nil {
		return wrapErr("storage: enqueue by ID", err)
	}
	return nil
}
