package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kubernaut/datastorage/wire"
)

// WriteBatch stores records idempotently in ONE transaction, as written by
// serviceAccount ("namespace/name", stored on each row). A record's key is
// its ID and its writer (DESIGN.md decision 10): a record whose ID this
// writer already stored (in the table of its kind) is left untouched and
// reported wire.StatusDuplicate; new ones, including an ID another writer
// used, are wire.StatusPersisted. The result has one status per input, same
// order; an ID repeated inside the batch is persisted once (its first copy),
// later copies are duplicates. Records must already be validated
// (wire's validation); a record storage cannot map (no ID, no body for its
// kind, zero ReceivedAt, a duration beyond int4 milliseconds) fails the whole
// batch before the database is touched.
//
// New IDs go in by COPY (copy.go); a batch with stored IDs among them falls
// back to INSERT … ON CONFLICT DO NOTHING (insert.go).
//
// Errors caused by the database being unreachable wrap ErrUnavailable; the
// batch is then either wholly committed or not at all, and retrying it is
// safe (its records come back as duplicates if the commit had landed).
func (db *DB) WriteBatch(ctx context.Context, serviceAccount string, records []wire.Record) ([]wire.ItemStatus, error) {
	const op = "storage: write batch"
	if serviceAccount == "" {
		return nil, fmt.Errorf("%s: empty service account", op)
	}
	statuses := make([]wire.ItemStatus, len(records))
	if len(records) == 0 {
		return statuses, nil
	}
	var (
		rem remediationRows
		wf  workflowRows
	)
	type key struct {
		kind wire.Kind
		id   string
	}
	seen := make(map[key]struct{}, len(records))
	for i := range records {
		rec := &records[i]
		if rec.ID == "" {
			return nil, fmt.Errorf("%s: record %d: empty ID", op, i)
		}
		if rec.ReceivedAt.IsZero() {
			return nil, fmt.Errorf("%s: record %s: zero receivedAt", op, rec.ID)
		}
		k := key{rec.Kind, rec.ID}
		if _, dup := seen[k]; dup {
			statuses[i] = wire.StatusDuplicate
			continue
		}
		seen[k] = struct{}{}
		var err error
		switch rec.Kind {
		case wire.KindRemediation:
			err = rem.add(i, rec)
		case wire.KindWorkflow:
			err = wf.add(i, rec)
		default:
			err = fmt.Errorf("unknown kind %q", rec.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: record %s: %w", op, rec.ID, err)
		}
	}

	if !db.noLedger {
		computeLeaves(serviceAccount, &rem, &wf)
	}

	var (
		allNew                  bool // the COPY fast path stored every row
		remInserted, wfInserted map[string]struct{}
	)
	for attempt := 0; ; attempt++ {
		conn, err := db.pool.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, acquireErr(err))
		}
		var began bool
		if rem.len()+wf.len() >= copyMinRows {
			began, err = copyRows(ctx, conn.Conn(), serviceAccount, &rem, &wf, db.noLedger)
			allNew = err == nil
		}
		if rem.len()+wf.len() < copyMinRows || errors.Is(err, errAlreadyStored) {
			// A batch of one kind carries its ledger entry in its insert,
			// unless that found rows stored already.
			fold := !db.noLedger && (rem.len() == 0 || wf.len() == 0)
			remInserted, wfInserted, began, err = insertRows(ctx, conn.Conn(), serviceAccount, &rem, &wf, fold, db.noLedger)
			if errors.Is(err, errEntryIncomplete) {
				remInserted, wfInserted, began, err = insertRows(ctx, conn.Conn(), serviceAccount, &rem, &wf, false, db.noLedger)
			}
		}
		conn.Release()
		if err == nil {
			break
		}
		// A pooled connection that died while idle (pg_terminate_backend, a
		// server restart, a proxy dropping it) is only discovered when used;
		// pgxpool pings only connections idle for over a second. If the
		// server refused or never saw our BEGIN, nothing of the batch ran,
		// so another connection may try it; the pool discards the dead one.
		if began || attempt >= int(db.maxConns) || ctx.Err() != nil || !failedBeforeBegin(err) {
			return nil, wrapErr(op, err)
		}
	}

	markStatuses(statuses, rem.index, rem.id, allNew, remInserted)
	markStatuses(statuses, wf.index, wf.id, allNew, wfInserted)
	return statuses, nil
}

func markStatuses(statuses []wire.ItemStatus, index []int, ids []string, allNew bool, inserted map[string]struct{}) {
	for j, i := range index {
		if _, ok := inserted[ids[j]]; ok || allNew {
			statuses[i] = wire.StatusPersisted
		} else {
			statuses[i] = wire.StatusDuplicate
		}
	}
}

// failedBeforeBegin reports whether err, returned in place of the result of
// a batch's BEGIN, proves that the server ran nothing of the batch: pgconn
// sent nothing, or the server announced it was terminating the session
// before it answered BEGIN (it answers in order).
func failedBeforeBegin(err error) bool {
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03":
			return true
		}
	}
	return false
}

// acquireErr marks every failure to get a connection from the pool as
// ErrUnavailable (connect failure, deadline while waiting for a free
// connection, closed pool), except the caller's own cancellation.
func acquireErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("acquire: %w", err)
	}
	return fmt.Errorf("acquire: %w: %w", ErrUnavailable, err)
}
