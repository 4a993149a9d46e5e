package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// Drop is retention dropping the oldest whole month of both tables.
type Drop struct {
	Month      time.Time // the month's first instant
	Partitions []DroppedPartition
	// Keys is how many keys of the month's rows were deleted from
	// audit_ids, in KeysDelete; KeysVacuum is a VACUUM of audit_ids after
	// (the space is reused by later keys, not given back).
	Keys                   int64
	KeysDelete, KeysVacuum time.Duration
	// The sizes before, after the partitions were dropped, and after the
	// keys were deleted and vacuumed.
	Before, AfterDrop, AfterKeys Sizes
}

// DroppedPartition is one table's partition of the month.
type DroppedPartition struct {
	Name  string
	Rows  int64
	Bytes int64 // with its indexes and TOAST
	// Elapsed is the transaction that detaches and drops it.
	Elapsed time.Duration
}

// DropTime is the time of both partitions' transactions.
func (d *Drop) DropTime() time.Duration {
	var t time.Duration
	for _, p := range d.Partitions {
		t += p.Elapsed
	}
	return t
}

// DroppedBytes is the partitions' size.
func (d *Drop) DroppedBytes() int64 {
	var n int64
	for _, p := range d.Partitions {
		n += p.Bytes
	}
	return n
}

// dropLockTimeout bounds the wait for the parent table's lock, as
// storage's partition DDL does.
const dropLockTimeout = "2s"

// measureDrop detaches and drops the oldest whole loaded month's partition
// of each table in the database at dsn, then deletes its keys.
func measureDrop(ctx context.Context, cfg Config, dsn string, l *Load) (*Drop, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	months := l.loadedMonths(wire.KindRemediation)
	if len(months) == 0 {
		return nil, fmt.Errorf("lifecycle: no whole month loaded")
	}
	d := &Drop{Month: months[0].From}
	var parts []storage.Partition
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		parts = append(parts, l.loadedMonths(kind)[0])
	}
	for _, p := range parts {
		dp := DroppedPartition{Name: p.Name}
		if err := conn.QueryRow(ctx, `SELECT count(*), pg_total_relation_size($1::text::regclass) FROM `+
			pgx.Identifier{p.Name}.Sanitize(), p.Name).Scan(&dp.Rows, &dp.Bytes); err != nil {
			return nil, fmt.Errorf("lifecycle: %s: %w", p.Name, err)
		}
		d.Partitions = append(d.Partitions, dp)
	}
	if err := checkpoint(ctx, conn); err != nil {
		return nil, err
	}
	if d.Before, err = measureSizes(ctx, conn); err != nil {
		return nil, err
	}
	for i, p := range parts {
		if d.Partitions[i].Elapsed, err = dropPartition(ctx, conn, p); err != nil {
			return d, err
		}
	}
	if d.AfterDrop, err = measureSizes(ctx, conn); err != nil {
		return d, err
	}
	progressf(cfg, "dropped %s and %s in %s", parts[0].Name, parts[1].Name, d.DropTime())
	if err := deleteKeys(ctx, conn, d, parts); err != nil {
		return d, err
	}
	if d.AfterKeys, err = measureSizes(ctx, conn); err != nil {
		return d, err
	}
	return d, nil
}

// dropPartition detaches and drops p in one transaction and returns its
// time.
func dropPartition(ctx context.Context, conn *pgx.Conn, p storage.Partition) (time.Duration, error) {
	parent := tableOf[p.Kind]
	t0 := time.Now()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, stmt := range []string{
			`SET LOCAL lock_timeout = '` + dropLockTimeout + `'`,
			`ALTER TABLE ` + parent + ` DETACH PARTITION ` + pgx.Identifier{p.Name}.Sanitize(),
			`DROP TABLE ` + pgx.Identifier{p.Name}.Sanitize(),
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("lifecycle: drop %s: %w", p.Name, err)
	}
	return time.Since(t0), nil
}

// deleteKeys deletes the dropped partitions' keys from audit_ids (their
// kind and event times), then VACUUMs it, each timed.
func deleteKeys(ctx context.Context, conn *pgx.Conn, d *Drop, parts []storage.Partition) error {
	t0 := time.Now()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, p := range parts {
			tag, err := tx.Exec(ctx, `DELETE FROM audit_ids WHERE kind = $1 AND event_time >= $2 AND event_time < $3`,
				string(p.Kind), p.From, p.To)
			if err != nil {
				return err
			}
			d.Keys += tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lifecycle: delete keys: %w", err)
	}
	d.KeysDelete = time.Since(t0)
	t0 = time.Now()
	if _, err := conn.Exec(ctx, `VACUUM audit_ids`); err != nil {
		return fmt.Errorf("lifecycle: vacuum audit_ids: %w", err)
	}
	d.KeysVacuum = time.Since(t0)
	return nil
}

// tableOf names each kind's partitioned table.
var tableOf = map[wire.Kind]string{wire.KindRemediation: "remediation_audit", wire.KindWorkflow: "workflow_audit"}
