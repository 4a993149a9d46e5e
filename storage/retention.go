package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/wire"
)

// Retention drops whole partitions (SCHEMA.md "Retention"): a partition
// whose range ends at or before the horizon is detached and dropped in one
// short transaction, which costs the same whatever its size and leaves
// nothing behind to vacuum. A partition holding a row under an active legal
// hold (legal_holds) is kept whole until the hold is released. Each drop is
// recorded in partition_drops in the same transaction; the clean-ups that
// follow (the partition's keys in audit_ids, its embedding links) are marked
// there when done, so a crash anywhere leaves either the partition or its
// record, and the next run finishes what is left.

// Dropped is one partition retention dropped (or found dropped with its
// clean-up unfinished).
type Dropped struct {
	Partition
	SizeBytes    int64
	RowsEstimate int64
}

// RetentionResult is what one ApplyRetention run did.
type RetentionResult struct {
	Dropped []Dropped
	// Held are the expired partitions kept because of a legal hold.
	Held []Partition
	// KeysDeleted counts the keys removed from audit_ids, for this run's
	// drops and for any an earlier run left unfinished.
	KeysDeleted int64
}

// keyDeleteBatch bounds each DELETE of audit_ids rows: short transactions,
// so the clean-up never holds many row locks or a long snapshot.
const keyDeleteBatch = 10_000

// ApplyRetention drops kind's partitions that end at or before horizon,
// oldest first, except those a legal hold keeps, then deletes the dropped
// partitions' keys from audit_ids. Only one run at a time does DDL (the
// partition advisory lock, shared with EnsurePartitions); running it again,
// or after a crash mid-way, is safe.
func (db *DB) ApplyRetention(ctx context.Context, kind wire.Kind, horizon time.Time) (RetentionResult, error) {
	const op = "storage: retention"
	var res RetentionResult
	t, err := tableOf(kind)
	if err != nil {
		return res, fmt.Errorf("%s: %w", op, err)
	}
	parts, err := db.Partitions(ctx, kind)
	if err != nil {
		return res, err
	}
	for i, p := range parts {
		// The newest partition stays whatever the horizon: writes need one.
		if p.To.After(horizon) || i == len(parts)-1 {
			break
		}
		d, held, err := db.dropPartition(ctx, t, p)
		if err != nil {
			return res, wrapErr(op, fmt.Errorf("drop %s: %w", p.Name, err))
		}
		if held {
			res.Held = append(res.Held, p)
		} else if d != nil {
			res.Dropped = append(res.Dropped, *d)
		}
	}
	res.KeysDeleted, err = db.deleteDroppedKeys(ctx, kind)
	if err != nil {
		return res, wrapErr(op, err)
	}
	return res, nil
}

// errHeld rolls back a drop that a legal hold forbids.
var errHeld = errors.New("held")

// dropPartition detaches and drops p unless an active hold matches one of
// its rows; nil without an error when another replica dropped it first.
func (db *DB) dropPartition(ctx context.Context, t *auditTable, p Partition) (d *Dropped, held bool, err error) {
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		d = nil
		if _, err := tx.Exec(ctx, partitionLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+ddlLockTimeout+`'`); err != nil {
			return err
		}
		// Still there? (Another replica's run may have dropped it.)
		var size, rows int64
		err := tx.QueryRow(ctx, `SELECT pg_total_relation_size(c.oid), greatest(c.reltuples, 0)::bigint
			FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
			WHERE c.relname = $1 AND i.inhparent = $2::regclass`, p.Name, t.name).Scan(&size, &rows)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		// No hold can be placed until this transaction ends (SHARE blocks
		// inserts): a hold placed after the drop finds the rows gone, one
		// placed before keeps the partition.
		if _, err := tx.Exec(ctx, `LOCK TABLE legal_holds IN SHARE MODE`); err != nil {
			return err
		}
		name := pgx.Identifier{p.Name}.Sanitize()
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM legal_holds h
			WHERE h.kind = $1 AND h.released_at IS NULL
			AND EXISTS (SELECT 1 FROM `+name+` a WHERE a.`+t.correlation+` = h.correlation_id))`,
			string(t.kind)).Scan(&held); err != nil {
			return err
		}
		if held {
			return errHeld
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE `+t.name+` DETACH PARTITION `+name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DROP TABLE `+name); err != nil {
			return err
		}
		var from *time.Time
		if !p.From.IsZero() {
			from = &p.From
		}
		if _, err := tx.Exec(ctx, `INSERT INTO partition_drops
			(kind, partition, range_from, range_to, dropped_at, size_bytes, rows_estimate)
			VALUES ($1, $2, $3, $4, now(), $5, $6)`, string(t.kind), p.Name, from, p.To, size, rows); err != nil {
			return err
		}
		// The ledger's anchor: the rows of this range are gone on purpose.
		if err := anchorDrop(ctx, tx, p); err != nil {
			return fmt.Errorf("ledger anchor: %w", err)
		}
		d = &Dropped{Partition: p, SizeBytes: size, RowsEstimate: rows}
		return nil
	})
	if errors.Is(err, errHeld) {
		return nil, true, nil
	}
	return d, false, err
}

// deleteDroppedKeys deletes from audit_ids the keys of kind's dropped
// partitions whose clean-up is unfinished, in batches, and marks each done.
func (db *DB) deleteDroppedKeys(ctx context.Context, kind wire.Kind) (int64, error) {
	rows, err := db.pool.Query(ctx, `SELECT range_from, range_to FROM partition_drops
		WHERE kind = $1 AND keys_deleted_at IS NULL ORDER BY range_to`, string(kind))
	if err != nil {
		return 0, err
	}
	type span struct{ from, to *time.Time }
	spans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (span, error) {
		var s span
		return s, r.Scan(&s.from, &s.to)
	})
	if err != nil {
		return 0, err
	}
	var total int64
	for _, s := range spans {
		// range_from NULL (MINVALUE) reads as -infinity.
		for {
			tag, err := db.pool.Exec(ctx, `DELETE FROM audit_ids WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM audit_ids WHERE kind = $1
				AND event_time >= coalesce($2, '-infinity'::timestamptz) AND event_time < $3
				LIMIT $4))`, string(kind), s.from, s.to, keyDeleteBatch)
			if err != nil {
				return total, fmt.Errorf("delete keys: %w", err)
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < keyDeleteBatch {
				break
			}
		}
		if _, err := db.pool.Exec(ctx, `UPDATE partition_drops SET keys_deleted_at = now()
			WHERE kind = $1 AND range_to = $2`, string(kind), s.to); err != nil {
			return total, fmt.Errorf("mark keys deleted: %w", err)
		}
	}
	return total, nil
}

// LinkCleanups lists the dropped partitions whose embedding links are still
// to be deleted (VectorDB.DeleteLinks, then LinksDeleted): the vector
// database may be another database, so the central runs that step.
func (db *DB) LinkCleanups(ctx context.Context) ([]Partition, error) {
	rows, err := db.pool.Query(ctx, `SELECT kind, partition, range_from, range_to FROM partition_drops
		WHERE links_deleted_at IS NULL ORDER BY range_to, kind`)
	if err != nil {
		return nil, wrapErr("storage: link clean-ups", err)
	}
	parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Partition, error) {
		var (
			p    Partition
			kind string
			from *time.Time
		)
		err := r.Scan(&kind, &p.Name, &from, &p.To)
		p.Kind = wire.Kind(kind)
		if from != nil {
			p.From = *from
		}
		return p, err
	})
	if err != nil {
		return nil, wrapErr("storage: link clean-ups", err)
	}
	return parts, nil
}

// LinksDeleted marks p's embedding links deleted.
func (db *DB) LinksDeleted(ctx context.Context, p Partition) error {
	if _, err := db.pool.Exec(ctx, `UPDATE partition_drops SET links_deleted_at = now()
		WHERE kind = $1 AND range_to = $2`, string(p.Kind), p.To); err != nil {
		return wrapErr("storage: link clean-ups", err)
	}
	return nil
}
