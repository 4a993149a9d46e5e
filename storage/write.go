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
	statuses, err := db.WriteGroups(ctx, []Group{{ServiceAccount: serviceAccount, Records: records}})
	if err != nil {
		return nil, err
	}
	return statuses[0], nil
}

// Group is one writer's records in WriteGroups.
type Group struct {
	ServiceAccount string
	Records        []wire.Record
}

// WriteGroups stores several writers' records in ONE transaction, each
// group as WriteBatch stores its batch (statuses, duplicates, errors) and
// with its own ledger batch and entry: one commit, and so one WAL flush,
// for the concurrent single-record writes of many writers (the central's
// coalescer). The result has one status slice per group, same order. A
// single group of copyMinRows or more takes the COPY path; several groups
// go by the pipelined inserts, one round trip when each group is of one
// kind.
func (db *DB) WriteGroups(ctx context.Context, groups []Group) ([][]wire.ItemStatus, error) {
	const op = "storage: write batch"
	statuses := make([][]wire.ItemStatus, len(groups))
	gs := make([]*groupRows, 0, len(groups))
	for i, g := range groups {
		rows, err := prepareGroup(g.ServiceAccount, g.Records, !db.noLedger)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		statuses[i] = rows.statuses
		if rows.len() > 0 {
			gs = append(gs, rows)
		}
	}
	if len(gs) == 0 {
		return statuses, nil
	}

	byCopy := len(gs) == 1 && gs[0].len() >= copyMinRows
	for attempt := 0; ; attempt++ {
		conn, err := db.pool.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, acquireErr(err))
		}
		var began bool
		if byCopy {
			began, err = copyRows(ctx, conn.Conn(), gs[0], db.noLedger)
			gs[0].allNew = err == nil
		}
		if !byCopy || errors.Is(err, errAlreadyStored) {
			// A group of one kind carries its ledger entry in its insert,
			// unless that found rows stored already.
			began, err = insertRows(ctx, conn.Conn(), gs, !db.noLedger, db.noLedger)
			if errors.Is(err, errEntryIncomplete) {
				began, err = insertRows(ctx, conn.Conn(), gs, false, db.noLedger)
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
	for _, g := range gs {
		g.markStatuses()
	}
	return statuses, nil
}

// groupRows is one writer's records of a transaction, ready for the
// database, with what the transaction found.
type groupRows struct {
	sa       string
	rem      remediationRows
	wf       workflowRows
	statuses []wire.ItemStatus // one per input record; duplicates inside the group set already

	batch               int64               // the group's ledger batch (nextBatch)
	allNew              bool                // the COPY path stored every row
	remStored, wfStored map[string]struct{} // the IDs the inserts stored
}

func (g *groupRows) len() int { return g.rem.len() + g.wf.len() }

// oneKind reports whether the group's rows are of one kind, so that its
// ledger entry can go in its insert (foldedEntry).
func (g *groupRows) oneKind() bool { return g.rem.len() == 0 || g.wf.len() == 0 }

// prepareGroup maps a writer's records to rows, marks the copies of an ID
// inside the group duplicate, and computes the rows' ledger leaves when
// withLeaves.
func prepareGroup(sa string, records []wire.Record, withLeaves bool) (*groupRows, error) {
	if sa == "" {
		return nil, errors.New("empty service account")
	}
	g := &groupRows{sa: sa, statuses: make([]wire.ItemStatus, len(records))}
	type key struct {
		kind wire.Kind
		id   string
	}
	seen := make(map[key]struct{}, len(records))
	for i := range records {
		rec := &records[i]
		if rec.ID == "" {
			return nil, fmt.Errorf("record %d: empty ID", i)
		}
		if rec.ReceivedAt.IsZero() {
			return nil, fmt.Errorf("record %s: zero receivedAt", rec.ID)
		}
		k := key{rec.Kind, rec.ID}
		if _, dup := seen[k]; dup {
			g.statuses[i] = wire.StatusDuplicate
			continue
		}
		seen[k] = struct{}{}
		var err error
		switch rec.Kind {
		case wire.KindRemediation:
			err = g.rem.add(i, rec)
		case wire.KindWorkflow:
			err = g.wf.add(i, rec)
		default:
			err = fmt.Errorf("unknown kind %q", rec.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", rec.ID, err)
		}
	}
	if withLeaves {
		computeLeaves(sa, &g.rem, &g.wf)
	}
	return g, nil
}

// markStatuses sets the status of every row the group sent.
func (g *groupRows) markStatuses() {
	mark := func(index []int, ids []string, stored map[string]struct{}) {
		for j, i := range index {
			if _, ok := stored[ids[j]]; ok || g.allNew {
				g.statuses[i] = wire.StatusPersisted
			} else {
				g.statuses[i] = wire.StatusDuplicate
			}
		}
	}
	mark(g.rem.index, g.rem.id, g.remStored)
	mark(g.wf.index, g.wf.id, g.wfStored)
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
