package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// monthsOfAudits lays out monthly partitions after the history one and
// writes a remediation (rr-<month>) and a workflow step (wf-<month>) into
// the history partition and each month. It returns the partitions of
// remediation_audit.
func monthsOfAudits(t *testing.T, db *storage.DB, months int) []storage.Partition {
	t.Helper()
	ctx := testContext(t)
	parts, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	_, err = db.EnsurePartitions(ctx, parts[0].To.AddDate(0, months, 0), storage.PeriodMonth)
	require.NoError(t, err)
	parts, err = db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	var recs []wire.Record
	for _, p := range parts {
		at := p.To.Add(-24 * time.Hour)
		tag := p.To.Format("2006-01")
		for range 3 {
			recs = append(recs,
				wire.Record{ID: newID(), Kind: wire.KindRemediation, ReceivedAt: at,
					Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-" + tag, CreatedAt: &at}},
				wire.Record{ID: newID(), Kind: wire.KindWorkflow, ReceivedAt: at,
					Workflow: &wire.WorkflowAudit{WorkflowID: "wf-" + tag, StepName: "s", StepStatus: "ok", ExecutedAt: &at}})
		}
	}
	_, err = db.WriteBatch(ctx, testSA, recs)
	require.NoError(t, err)
	return parts
}

func keysBetween(t *testing.T, conn *pgx.Conn, kind wire.Kind, p storage.Partition) int {
	t.Helper()
	from := p.From
	if from.IsZero() {
		from = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	var n int
	require.NoError(t, conn.QueryRow(testContext(t), `SELECT count(*) FROM audit_ids
		WHERE kind = $1 AND event_time >= $2 AND event_time < $3`, string(kind), from, p.To).Scan(&n))
	return n
}

func TestApplyRetention_DropsWholeExpiredPartitionsAndTheirKeys(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	parts := monthsOfAudits(t, db, 4) // history + 4 months
	conn := connect(t, dsn)

	// Expired: the history partition and the first month.
	horizon := parts[1].To
	res, err := db.ApplyRetention(ctx, wire.KindRemediation, horizon)
	require.NoError(t, err)
	require.Len(t, res.Dropped, 2)
	assert.Equal(t, parts[0].Name, res.Dropped[0].Name)
	assert.Equal(t, parts[1].Name, res.Dropped[1].Name)
	assert.Positive(t, res.Dropped[0].SizeBytes)
	assert.EqualValues(t, 6, res.KeysDeleted)
	assert.Empty(t, res.Held)

	left, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	assert.Equal(t, parts[2:], left)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM remediation_audit`).Scan(&n))
	assert.Equal(t, 3*(len(parts)-2), n)
	assert.Zero(t, keysBetween(t, conn, wire.KindRemediation, storage.Partition{To: horizon}))
	assert.Equal(t, 3*len(parts), func() int {
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM workflow_audit`).Scan(&n))
		return n
	}(), "the other kind is untouched")

	var recorded []string
	rows, err := conn.Query(ctx, `SELECT partition FROM partition_drops WHERE keys_deleted_at IS NOT NULL ORDER BY range_to`)
	require.NoError(t, err)
	recorded, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{parts[0].Name, parts[1].Name}, recorded)

	again, err := db.ApplyRetention(ctx, wire.KindRemediation, horizon)
	require.NoError(t, err)
	assert.Empty(t, again.Dropped, "idempotent")

	// Even a horizon past everything keeps the newest partition.
	res, err = db.ApplyRetention(ctx, wire.KindRemediation, parts[len(parts)-1].To.AddDate(1, 0, 0))
	require.NoError(t, err)
	left, err = db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	assert.Equal(t, parts[len(parts)-1:], left)
}

func TestApplyRetention_AHeldRowKeepsItsPartitionUntilReleased(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	parts := monthsOfAudits(t, db, 3)
	held := parts[1]
	hold, err := db.PlaceHold(ctx, storage.Hold{ID: wire.NewHoldID(), Kind: wire.KindRemediation, CorrelationID: "rr-" + held.To.Format("2006-01"),
		Reason: "dispute 42", PlacedBy: testSA, PlacedAt: time.Now()})
	require.NoError(t, err)
	// A hold on a workflow ID with the same name holds no remediation.
	_, err = db.PlaceHold(ctx, storage.Hold{ID: wire.NewHoldID(), Kind: wire.KindWorkflow, CorrelationID: "wf-" + parts[0].To.Format("2006-01"),
		Reason: "other kind", PlacedBy: testSA, PlacedAt: time.Now()})
	require.NoError(t, err)

	horizon := parts[2].To
	res, err := db.ApplyRetention(ctx, wire.KindRemediation, horizon)
	require.NoError(t, err)
	require.Len(t, res.Held, 1)
	assert.Equal(t, held.Name, res.Held[0].Name)
	dropped := []string{}
	for _, d := range res.Dropped {
		dropped = append(dropped, d.Name)
	}
	assert.Equal(t, []string{parts[0].Name, parts[2].Name}, dropped, "partitions on either side of the held one go")
	conn := connect(t, dsn)
	assert.Equal(t, 3, keysBetween(t, conn, wire.KindRemediation, held), "a kept partition keeps its keys")

	// The database itself refuses to delete held rows, whoever asks.
	_, err = conn.Exec(ctx, `DELETE FROM remediation_audit WHERE remediation_request_id = $1`, hold.CorrelationID)
	require.Error(t, err)

	_, err = db.ReleaseHold(ctx, hold.ID, testSA, "settled", time.Now())
	require.NoError(t, err)
	res, err = db.ApplyRetention(ctx, wire.KindRemediation, horizon)
	require.NoError(t, err)
	require.Len(t, res.Dropped, 1)
	assert.Equal(t, held.Name, res.Dropped[0].Name)
	assert.Empty(t, res.Held)
}

// A run that stops half-way (its DDL waited too long for a lock; a crash
// after the drop but before the keys were deleted) leaves either the
// partition or its record, and the next run finishes.
func TestApplyRetention_ARunStoppedHalfWayIsFinishedByTheNext(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	parts := monthsOfAudits(t, db, 2)
	horizon := parts[0].To

	// A reader holds the table: the drop cannot get its lock within 2 s.
	blocker := connect(t, dsn)
	tx, err := blocker.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT count(*) FROM remediation_audit`)
	require.NoError(t, err)
	_, err = db.ApplyRetention(ctx, wire.KindRemediation, horizon)
	require.Error(t, err)
	require.NoError(t, tx.Rollback(ctx))
	left, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	assert.Equal(t, parts, left, "nothing dropped")
	conn := connect(t, dsn)
	var drops int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM partition_drops`).Scan(&drops))
	assert.Zero(t, drops, "nothing recorded")

	// Dropped, then "crashed" before the keys went: the record says so.
	res, err := db.ApplyRetention(ctx, wire.KindRemediation, horizon)
	require.NoError(t, err)
	require.Len(t, res.Dropped, 1)
	_, err = conn.Exec(ctx, `UPDATE partition_drops SET keys_deleted_at = NULL`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO audit_ids (id, service_account, kind, event_time)
		VALUES ('left-1', $1, 'remediation', $2), ('left-2', $1, 'remediation', $2)`, testSA, horizon.Add(-time.Hour))
	require.NoError(t, err)
	res, err = db.ApplyRetention(ctx, wire.KindRemediation, horizon)
	require.NoError(t, err)
	assert.Empty(t, res.Dropped)
	assert.EqualValues(t, 2, res.KeysDeleted, "the unfinished clean-up is finished")
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM partition_drops WHERE keys_deleted_at IS NULL`).Scan(&drops))
	assert.Zero(t, drops)
}

// Writes after a drop: the kept range takes records as before; a retry of
// a record whose partition is gone is refused by the database (the central
// refuses it earlier, by its event time).
func TestApplyRetention_WritesAfterADrop(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, db := migratedDB(t)
	parts := monthsOfAudits(t, db, 2)
	_, err := db.ApplyRetention(ctx, wire.KindRemediation, parts[0].To)
	require.NoError(t, err)
	at := parts[1].From.Add(time.Minute)
	st, err := db.WriteBatch(ctx, testSA, []wire.Record{{ID: newID(), Kind: wire.KindRemediation, ReceivedAt: at,
		Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-new", CreatedAt: &at}}})
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{wire.StatusPersisted}, st)
	old := parts[0].To.Add(-time.Hour)
	_, err = db.WriteBatch(context.Background(), testSA, []wire.Record{{ID: newID(), Kind: wire.KindRemediation, ReceivedAt: old,
		Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-old", CreatedAt: &old}}})
	assert.Error(t, err)
}
