package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

const legalSA = "kubernaut-system/compliance-sa"

var placedAt = time.Date(2026, 11, 2, 9, 0, 0, 123456789, time.UTC)

func newHold(kind wire.Kind, correlationID string, offset time.Duration) storage.Hold {
	return storage.Hold{ID: wire.NewHoldID(), Kind: kind, CorrelationID: correlationID,
		Reason: "litigation 2026-117: keep " + correlationID, PlacedBy: legalSA, PlacedAt: placedAt.Add(offset)}
}

func holdIDs(holds []storage.Hold) []string {
	out := make([]string, len(holds))
	for i, h := range holds {
		out[i] = h.ID
	}
	return out
}

func TestHolds_PlaceReadListAndRelease(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, db := migratedDB(t)

	var placed []storage.Hold
	for i, target := range []struct {
		kind wire.Kind
		id   string
	}{{wire.KindRemediation, "rr-1"}, {wire.KindWorkflow, "wf-1"}, {wire.KindRemediation, "rr-none-yet"}, {wire.KindRemediation, "rr-1"}} {
		h, err := db.PlaceHold(ctx, newHold(target.kind, target.id, time.Duration(i)*time.Minute))
		require.NoError(t, err)
		placed = append(placed, h)
	}
	got := placed[0]
	assert.True(t, got.Active())
	assert.Equal(t, wire.KindRemediation, got.Kind)
	assert.Equal(t, "rr-1", got.CorrelationID)
	assert.Equal(t, legalSA, got.PlacedBy)
	assert.Equal(t, placedAt.Truncate(time.Microsecond), got.PlacedAt, "stored at microseconds, in UTC")
	assert.Empty(t, got.ReleasedBy)

	one, err := db.Hold(ctx, placed[1].ID)
	require.NoError(t, err)
	assert.Equal(t, placed[1], one)

	// Released once, with who, when and why; a second release is refused
	// and says who released it.
	at := placedAt.Add(time.Hour)
	released, err := db.ReleaseHold(ctx, placed[1].ID, "kubernaut-system/counsel-sa", "case settled", at)
	require.NoError(t, err)
	assert.False(t, released.Active())
	assert.Equal(t, "kubernaut-system/counsel-sa", released.ReleasedBy)
	assert.Equal(t, "case settled", released.ReleaseReason)
	require.NotNil(t, released.ReleasedAt)
	assert.Equal(t, at.Truncate(time.Microsecond), *released.ReleasedAt)
	assert.Equal(t, placed[1].Reason, released.Reason, "the placement is kept")

	again, err := db.ReleaseHold(ctx, placed[1].ID, legalSA, "again", at.Add(time.Minute))
	require.ErrorIs(t, err, storage.ErrHoldReleased)
	assert.Equal(t, released, again, "the hold as stored comes with the error")
	_, err = db.ReleaseHold(ctx, "hold-none", legalSA, "x", at)
	require.ErrorIs(t, err, storage.ErrHoldNotFound)
	_, err = db.Hold(ctx, "hold-none")
	require.ErrorIs(t, err, storage.ErrHoldNotFound)
	_, err = db.Hold(ctx, "hold-\x00")
	require.ErrorIs(t, err, storage.ErrHoldNotFound, "an ID PostgreSQL cannot store matches nothing")

	list := func(f storage.HoldFilter) []string {
		t.Helper()
		holds, err := db.ListHolds(ctx, f)
		require.NoError(t, err)
		return holdIDs(holds)
	}
	yes, no := true, false
	assert.Equal(t, holdIDs(placed), list(storage.HoldFilter{Limit: 10}), "in the order placed")
	assert.Equal(t, []string{placed[0].ID, placed[2].ID, placed[3].ID}, list(storage.HoldFilter{Active: &yes, Limit: 10}))
	assert.Equal(t, []string{placed[1].ID}, list(storage.HoldFilter{Active: &no, Limit: 10}))
	assert.Equal(t, []string{placed[2].ID, placed[3].ID},
		list(storage.HoldFilter{Limit: 2, After: &storage.HoldPosition{PlacedAt: placed[1].PlacedAt, ID: placed[1].ID}}))

	// Ties on placed_at are ordered by ID.
	tie := []storage.Hold{newHold(wire.KindWorkflow, "wf-2", time.Hour), newHold(wire.KindWorkflow, "wf-3", time.Hour)}
	for _, h := range tie {
		_, err := db.PlaceHold(ctx, h)
		require.NoError(t, err)
	}
	after := &storage.HoldPosition{PlacedAt: placed[3].PlacedAt, ID: placed[3].ID}
	assert.Equal(t, holdIDs(tie), list(storage.HoldFilter{Limit: 10, After: after}), "UUIDv7s sort as they were made")
	after = &storage.HoldPosition{PlacedAt: tie[0].PlacedAt.Truncate(time.Microsecond), ID: tie[0].ID}
	assert.Equal(t, []string{tie[1].ID}, list(storage.HoldFilter{Limit: 10, After: after}))

	for _, f := range []storage.HoldFilter{{Limit: 0}, {Limit: storage.MaxHoldsLimit + 1},
		{Limit: 1, After: &storage.HoldPosition{ID: "hold-x"}}} {
		_, err := db.ListHolds(ctx, f)
		var qe *storage.QueryError
		require.ErrorAs(t, err, &qe, "%+v", f)
	}
}

func TestPlaceHold_IsIdempotentByIDAndRefusesWhatIsNotAnActiveHold(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, db := migratedDB(t)

	h := newHold(wire.KindRemediation, "rr-1", 0)
	h.ID = wire.HoldIDForKey(legalSA, "key-1")
	first, err := db.PlaceHold(ctx, h)
	require.NoError(t, err)
	retry := h
	retry.Reason, retry.PlacedAt = "another body", h.PlacedAt.Add(time.Minute)
	got, err := db.PlaceHold(ctx, retry)
	require.NoError(t, err)
	assert.Equal(t, first, got, "a retry with the same ID returns the first hold")
	holds, err := db.ListHolds(ctx, storage.HoldFilter{Limit: 10})
	require.NoError(t, err)
	assert.Len(t, holds, 1)

	other := h
	other.PlacedBy = "kubernaut-system/someone-else"
	_, err = db.PlaceHold(ctx, other)
	require.Error(t, err, "another service account's hold is not a retry")

	released := placedAt
	for name, edit := range map[string]func(*storage.Hold){
		"no ID":          func(h *storage.Hold) { h.ID = "" },
		"unknown kind":   func(h *storage.Hold) { h.Kind = "incident" },
		"no target":      func(h *storage.Hold) { h.CorrelationID = "" },
		"a NUL":          func(h *storage.Hold) { h.CorrelationID = "rr\x00" },
		"no reason":      func(h *storage.Hold) { h.Reason = "" },
		"no placer":      func(h *storage.Hold) { h.PlacedBy = "" },
		"no time":        func(h *storage.Hold) { h.PlacedAt = time.Time{} },
		"released":       func(h *storage.Hold) { h.ReleasedAt = &released },
		"a release note": func(h *storage.Hold) { h.ReleaseReason = "x" },
	} {
		bad := newHold(wire.KindRemediation, "rr-2", 0)
		edit(&bad)
		_, err := db.PlaceHold(ctx, bad)
		var qe *storage.QueryError
		assert.ErrorAs(t, err, &qe, name)
	}
	for name, args := range map[string][2]string{"no releaser": {"", "why"}, "no reason": {legalSA, ""}} {
		_, err := db.ReleaseHold(ctx, first.ID, args[0], args[1], placedAt)
		var qe *storage.QueryError
		assert.ErrorAs(t, err, &qe, name)
	}
	_, err = db.ReleaseHold(ctx, first.ID, legalSA, "why", time.Time{})
	var qe *storage.QueryError
	assert.ErrorAs(t, err, &qe, "no time")
}

func TestHolds_UnreachableDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: closedPortDSN(t), ConnectTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(db.Close)

	_, err = db.PlaceHold(ctx, newHold(wire.KindRemediation, "rr-1", 0))
	assert.ErrorIs(t, err, storage.ErrUnavailable, "place")
	_, err = db.ReleaseHold(ctx, "hold-1", legalSA, "why", placedAt)
	assert.ErrorIs(t, err, storage.ErrUnavailable, "release")
	_, err = db.Hold(ctx, "hold-1")
	assert.ErrorIs(t, err, storage.ErrUnavailable, "read")
	_, err = db.ListHolds(ctx, storage.HoldFilter{Limit: 1})
	assert.ErrorIs(t, err, storage.ErrUnavailable, "list")
}

// refusedByHold asserts that err is the guard's refusal naming hold.
func refusedByHold(t *testing.T, err error, holdID, msgAndArgs string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !assert.True(t, errors.As(err, &pgErr), "%s: want the guard's refusal, got %v", msgAndArgs, err) {
		return
	}
	assert.Equal(t, storage.SQLStateHeld, pgErr.Code, msgAndArgs)
	assert.Contains(t, pgErr.Message, "under legal hold "+holdID, msgAndArgs)
	assert.Contains(t, pgErr.Hint, "Release hold "+holdID, msgAndArgs)
}

// holdsRefused asserts that err is the guard's refusal of a change to
// legal_holds.
func holdsRefused(t *testing.T, err error, what string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if assert.True(t, errors.As(err, &pgErr), "%s: want the guard's refusal, got %v", what, err) {
		assert.Equal(t, storage.SQLStateHoldsImmutable, pgErr.Code, what)
	}
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) (int64, error) {
	t.Helper()
	tag, err := conn.Exec(testContext(t), sql, args...)
	return tag.RowsAffected(), err
}

func countWhere(t *testing.T, conn *pgx.Conn, table, where string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(testContext(t), "SELECT count(*) FROM "+table+" WHERE "+where, args...).Scan(&n))
	return n
}

// writeFor stores n records of kind naming correlationID, at event time at.
func writeFor(t *testing.T, db *storage.DB, kind wire.Kind, correlationID string, n int, at time.Time) {
	t.Helper()
	recs := make([]wire.Record, n)
	for i := range recs {
		at := at.Add(time.Duration(i) * time.Second)
		recs[i] = wire.Record{ID: newID(), Kind: kind, ReceivedAt: received}
		if kind == wire.KindRemediation {
			recs[i].Remediation = &wire.RemediationAudit{RemediationRequestID: correlationID, CreatedAt: &at}
		} else {
			recs[i].Workflow = &wire.WorkflowAudit{WorkflowID: correlationID, StepName: "s", StepStatus: "ok", ExecutedAt: &at}
		}
	}
	_, err := db.WriteBatch(testContext(t), testSA, recs)
	require.NoError(t, err)
}

func TestHoldGuard_PlainSQLAsTheOwnerCannotRemoveHeldRows(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn) // the cluster's superuser, which owns the tables
	// The holds' guard on its own: with the append-only guard (migration
	// 0009), which refuses every DELETE, out of the way.
	disableAppendOnlyGuard(t, conn)
	for _, c := range []struct {
		kind             wire.Kind
		table, column    string
		partition        string
		held, free, none string
	}{
		{wire.KindRemediation, "remediation_audit", "remediation_request_id", "remediation_audit_history", "rr-held", "rr-free", "rr-later"},
		{wire.KindWorkflow, "workflow_audit", "workflow_id", "workflow_audit_history", "wf-held", "wf-free", "wf-later"},
	} {
		t.Run(string(c.kind), func(t *testing.T) {
			writeFor(t, db, c.kind, c.held, 3, received)
			writeFor(t, db, c.kind, c.free, 2, received)
			hold, err := db.PlaceHold(ctx, newHold(c.kind, c.held, 0))
			require.NoError(t, err)
			second, err := db.PlaceHold(ctx, newHold(c.kind, c.held, time.Minute))
			require.NoError(t, err)
			// A hold may come before its records; they are held as they arrive.
			later, err := db.PlaceHold(ctx, newHold(c.kind, c.none, 0))
			require.NoError(t, err)
			writeFor(t, db, c.kind, c.none, 1, received)

			n, err := exec(t, conn, "DELETE FROM "+c.table+" WHERE "+c.column+" = $1", c.free)
			require.NoError(t, err, "rows under no hold go")
			assert.EqualValues(t, 2, n)

			_, err = exec(t, conn, "DELETE FROM "+c.table+" WHERE "+c.column+" = $1", c.held)
			refusedByHold(t, err, hold.ID, "DELETE of held rows")
			_, err = exec(t, conn, "DELETE FROM "+c.table)
			assert.Error(t, err, "DELETE of every row")
			_, err = exec(t, conn, "DELETE FROM "+c.partition+" WHERE "+c.column+" = $1", c.held)
			refusedByHold(t, err, hold.ID, "DELETE from the partition itself")
			_, err = exec(t, conn, "UPDATE "+c.table+" SET "+c.column+" = 'escaped' WHERE "+c.column+" = $1", c.held)
			refusedByHold(t, err, hold.ID, "UPDATE that would move rows out of the hold")
			_, err = exec(t, conn, "DELETE FROM "+c.table+" WHERE "+c.column+" = $1", c.none)
			refusedByHold(t, err, later.ID, "rows written after their hold")
			_, err = exec(t, conn, "TRUNCATE "+c.table)
			assert.ErrorContains(t, err, "under legal hold", "TRUNCATE of the table")
			_, err = exec(t, conn, "TRUNCATE "+c.partition)
			assert.ErrorContains(t, err, "under legal hold", "TRUNCATE of one partition")
			assert.Equal(t, 3, countWhere(t, conn, c.table, c.column+" = $1", c.held), "nothing held went")

			// Held until every hold on it is released.
			_, err = db.ReleaseHold(ctx, hold.ID, legalSA, "first case closed", placedAt.Add(time.Hour))
			require.NoError(t, err)
			_, err = exec(t, conn, "DELETE FROM "+c.table+" WHERE "+c.column+" = $1", c.held)
			refusedByHold(t, err, second.ID, "the second hold still holds")
			_, err = db.ReleaseHold(ctx, second.ID, legalSA, "second case closed", placedAt.Add(time.Hour))
			require.NoError(t, err)
			_, err = db.ReleaseHold(ctx, later.ID, legalSA, "done", placedAt.Add(time.Hour))
			require.NoError(t, err)
			n, err = exec(t, conn, "DELETE FROM "+c.table+" WHERE "+c.column+" = $1", c.held)
			require.NoError(t, err, "released: the rows may go")
			assert.EqualValues(t, 3, n)
			_, err = exec(t, conn, "TRUNCATE "+c.table)
			require.NoError(t, err)
		})
	}
}

// disableAppendOnlyGuard disables the append-only guard's triggers on the
// audit tables and their partitions, as their owner can.
func disableAppendOnlyGuard(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	_, err := exec(t, conn, `DO $$
		DECLARE g record;
		BEGIN
			FOR g IN SELECT tgrelid::regclass AS rel, tgname FROM pg_trigger
					WHERE tgname IN ('tamper_guard', 'tamper_guard_truncate') AND tgparentid = 0
					AND tgrelid::regclass::text LIKE '%_audit%'
			LOOP
				EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', g.rel, g.tgname);
			END LOOP;
		END $$`)
	require.NoError(t, err)
}

// triggersOn lists the (non-internal) triggers on table.
func triggersOn(t *testing.T, conn *pgx.Conn, table string) []string {
	t.Helper()
	rows, err := conn.Query(testContext(t), `SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass
		AND NOT tgisinternal AND tgenabled <> 'D' ORDER BY tgname`, table)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func TestHoldGuard_GuardsPartitionsCreatedAfterTheMigration(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)
	parts, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	boundary := parts[0].To
	created, err := db.EnsurePartitions(ctx, boundary.AddDate(0, 1, 0), storage.PeriodMonth)
	require.NoError(t, err)
	require.Len(t, created, 2)

	guards := []string{"legal_hold_guard", "legal_hold_guard_truncate", "tamper_guard", "tamper_guard_truncate"}
	for _, p := range created {
		assert.Equal(t, guards, triggersOn(t, conn, p.Name), p.Name)
	}
	// A partition created by hand gets the row trigger from PostgreSQL,
	// and the TRUNCATE one from the next EnsurePartitions.
	byHand := fmt.Sprintf("remediation_audit_p%s", boundary.AddDate(0, 1, 0).Format("20060102"))
	_, err = exec(t, conn, fmt.Sprintf(`CREATE TABLE %s PARTITION OF remediation_audit FOR VALUES FROM ('%s') TO ('%s')`,
		byHand, boundary.AddDate(0, 1, 0).Format(time.RFC3339), boundary.AddDate(0, 2, 0).Format(time.RFC3339)))
	require.NoError(t, err)
	assert.Equal(t, []string{"legal_hold_guard", "tamper_guard"}, triggersOn(t, conn, byHand))
	_, err = db.EnsurePartitions(ctx, boundary.AddDate(0, 1, 0), storage.PeriodMonth)
	require.NoError(t, err)
	assert.Equal(t, guards, triggersOn(t, conn, byHand), "repaired")

	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		id := string(kind) + "-in-new-partition"
		writeFor(t, db, kind, id, 1, boundary.Add(time.Hour))
		hold, err := db.PlaceHold(ctx, newHold(kind, id, 0))
		require.NoError(t, err)
		table, column := "remediation_audit", "remediation_request_id"
		if kind == wire.KindWorkflow {
			table, column = "workflow_audit", "workflow_id"
		}
		next := table + "_p" + boundary.Format("20060102")
		assert.Equal(t, 1, countWhere(t, conn, next, column+" = $1", id), "the row is in the new partition")
		_, err = exec(t, conn, "DELETE FROM "+next)
		refusedByHold(t, err, hold.ID, "DELETE in a partition created after the migration")
		_, err = exec(t, conn, "TRUNCATE "+next)
		refusedByHold(t, err, hold.ID, "TRUNCATE of a partition created after the migration")
	}
	writeFor(t, db, wire.KindRemediation, "rr-by-hand", 1, boundary.AddDate(0, 1, 1))
	hold, err := db.PlaceHold(ctx, newHold(wire.KindRemediation, "rr-by-hand", 0))
	require.NoError(t, err)
	_, err = exec(t, conn, "TRUNCATE "+byHand)
	refusedByHold(t, err, hold.ID, "TRUNCATE of a repaired partition")
}

func TestHoldGuard_LegalHoldsAreNeverDeletedAndReleasedOnce(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)
	h, err := db.PlaceHold(ctx, newHold(wire.KindRemediation, "rr-1", 0))
	require.NoError(t, err)

	_, err = exec(t, conn, "DELETE FROM legal_holds WHERE id = $1", h.ID)
	holdsRefused(t, err, "DELETE")
	_, err = exec(t, conn, "TRUNCATE legal_holds")
	holdsRefused(t, err, "TRUNCATE")
	for what, set := range map[string]string{
		"the reason":          "reason = 'rewritten'",
		"the target":          "correlation_id = 'rr-2'",
		"the kind":            "kind = 'workflow'",
		"the placer":          "placed_by = 'ns/else'",
		"the time":            "placed_at = now()",
		"the ID":              "id = 'hold-else'",
		"a partial release":   "released_at = now()",
		"a release, no why":   "released_at = now(), released_by = 'ns/a', release_reason = ''",
		"a release and edits": "released_at = now(), released_by = 'ns/a', release_reason = 'r', reason = 'x'",
	} {
		_, err = exec(t, conn, "UPDATE legal_holds SET "+set+" WHERE id = $1", h.ID)
		holdsRefused(t, err, "UPDATE of "+what)
	}
	_, err = exec(t, conn, `INSERT INTO legal_holds (id, kind, correlation_id, reason, placed_by, placed_at,
		released_by, released_at, release_reason) VALUES ('hold-x', 'remediation', 'rr', 'r', 'ns/a', now(), 'ns/a', now(), 'r')`)
	holdsRefused(t, err, "INSERT of a released hold")

	// One release, in SQL as through ReleaseHold; then nothing more.
	n, err := exec(t, conn, `UPDATE legal_holds SET released_at = now(), released_by = 'ns/counsel', release_reason = 'settled'
		WHERE id = $1`, h.ID)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	_, err = exec(t, conn, "UPDATE legal_holds SET release_reason = 'rewritten' WHERE id = $1", h.ID)
	holdsRefused(t, err, "UPDATE of a released hold")
	_, err = exec(t, conn, "DELETE FROM legal_holds WHERE id = $1", h.ID)
	holdsRefused(t, err, "DELETE of a released hold")
	got, err := db.Hold(ctx, h.ID)
	require.NoError(t, err)
	assert.Equal(t, "settled", got.ReleaseReason)
	assert.Equal(t, h.Reason, got.Reason)
}

func TestHoldGuard_ATemporaryTableCannotStandInForTheHolds(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)
	writeFor(t, db, wire.KindRemediation, "rr-held", 1, received)
	hold, err := db.PlaceHold(ctx, newHold(wire.KindRemediation, "rr-held", 0))
	require.NoError(t, err)
	// pg_temp comes first in a session's search path unless it is named:
	// an empty temporary legal_holds would otherwise hide the real one.
	_, err = exec(t, conn, "CREATE TEMPORARY TABLE legal_holds (LIKE public.legal_holds)")
	require.NoError(t, err)
	_, err = exec(t, conn, "DELETE FROM remediation_audit")
	refusedByHold(t, err, hold.ID, "DELETE beside a temporary legal_holds")
	_, err = exec(t, conn, "TRUNCATE remediation_audit")
	refusedByHold(t, err, hold.ID, "TRUNCATE beside a temporary legal_holds")
	var tx pgx.Tx
	tx, err = conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(ctx, "SET LOCAL search_path = pg_temp, public")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "DELETE FROM public.remediation_audit")
	refusedByHold(t, err, hold.ID, "DELETE with pg_temp first in the search path")
}

// TestHoldGuard_WhatItDoesNotStop pins the limits that migration 0008
// documents: the guard stops statements, not a superuser who turns
// triggers off for the session, nor the DDL that retention itself uses.
func TestHoldGuard_WhatItDoesNotStop(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	writeFor(t, db, wire.KindRemediation, "rr-held", 2, received)
	_, err := db.PlaceHold(ctx, newHold(wire.KindRemediation, "rr-held", 0))
	require.NoError(t, err)

	conn := connect(t, dsn)
	_, err = exec(t, conn, "SET session_replication_role = replica")
	require.NoError(t, err)
	n, err := exec(t, conn, "DELETE FROM remediation_audit WHERE remediation_request_id = 'rr-held' AND id = (SELECT min(id) FROM remediation_audit)")
	require.NoError(t, err, "a superuser's replica session fires no ordinary trigger")
	assert.EqualValues(t, 1, n)

	conn = connect(t, dsn)
	_, err = exec(t, conn, "ALTER TABLE remediation_audit DETACH PARTITION remediation_audit_history")
	require.NoError(t, err)
	assert.Equal(t, []string{"legal_hold_guard_truncate", "tamper_guard_truncate"}, triggersOn(t, conn, "remediation_audit_history"),
		"a detached partition loses its cloned row trigger")
	_, err = exec(t, conn, "DROP TABLE remediation_audit_history")
	require.NoError(t, err, "dropping a partition is retention's path, which checks the holds itself")
}
