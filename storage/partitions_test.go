package storage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

func TestPeriod_BoundariesAreUTCPeriodStarts(t *testing.T) {
	at := time.Date(2027, 3, 17, 23, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)) // 21:30 UTC, a Wednesday
	for _, c := range []struct {
		p           storage.Period
		start, next string
	}{
		{storage.PeriodMonth, "2027-03-01T00:00:00Z", "2027-04-01T00:00:00Z"},
		{storage.PeriodWeek, "2027-03-15T00:00:00Z", "2027-03-22T00:00:00Z"},
		{storage.PeriodDay, "2027-03-17T00:00:00Z", "2027-03-18T00:00:00Z"},
	} {
		assert.Equal(t, c.start, c.p.Start(at).Format(time.RFC3339), c.p)
		assert.Equal(t, c.next, c.p.Next(at).Format(time.RFC3339), c.p)
		// A boundary is the start of its own period.
		assert.Equal(t, c.next, c.p.Start(c.p.Next(at)).Format(time.RFC3339), c.p)
	}
	_, err := storage.ParsePeriod("year")
	assert.Error(t, err)
}

// partitionOf names the partition holding the row with id.
func partitionOf(t *testing.T, dsn, table, id string) string {
	t.Helper()
	var name string
	require.NoError(t, connect(t, dsn).QueryRow(testContext(t),
		`SELECT tableoid::regclass::text FROM `+table+` WHERE id = $1`, id).Scan(&name))
	return name
}

func TestEnsurePartitions_CreatesAheadOnceFromManyReplicas(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, db := migratedDB(t)

	parts, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	require.Len(t, parts, 1, "migration 0007 leaves the history partition only")
	assert.True(t, parts[0].From.IsZero(), "history starts at MINVALUE")
	history := parts[0].To

	until := history.AddDate(0, 3, 0).Add(time.Hour)
	var wg sync.WaitGroup
	created := make([][]storage.Partition, 4)
	for i := range created {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			created[i], err = db.EnsurePartitions(ctx, until, storage.PeriodMonth)
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	total := 0
	for _, c := range created {
		total += len(c)
	}
	assert.Equal(t, 2*4, total, "4 months ahead of both tables, created once among the replicas")

	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		parts, err := db.Partitions(ctx, kind)
		require.NoError(t, err)
		require.Len(t, parts, 5, kind)
		for i := 1; i < len(parts); i++ {
			assert.Equal(t, parts[i-1].To, parts[i].From, "%s: contiguous", kind)
			assert.Equal(t, storage.PeriodMonth.Next(parts[i].From), parts[i].To, "%s: one month each", kind)
		}
		assert.False(t, parts[len(parts)-1].To.Before(until), kind)
	}
	again, err := db.EnsurePartitions(ctx, until, storage.PeriodMonth)
	require.NoError(t, err)
	assert.Empty(t, again)
}

func TestWriteBatch_LastMicrosecondOfAMonthAndTheFirstOfTheNext(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	parts, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	boundary := parts[0].To
	_, err = db.EnsurePartitions(ctx, boundary.AddDate(0, 1, 0), storage.PeriodMonth)
	require.NoError(t, err)

	last, first := boundary.Add(-time.Microsecond), boundary
	recs := []wire.Record{
		{ID: newID(), Kind: wire.KindRemediation, ReceivedAt: received, Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1", CreatedAt: &last}},
		{ID: newID(), Kind: wire.KindRemediation, ReceivedAt: received, Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1", CreatedAt: &first}},
		{ID: newID(), Kind: wire.KindWorkflow, ReceivedAt: received, Workflow: &wire.WorkflowAudit{WorkflowID: "wf-1", StepName: "s", StepStatus: "ok", ExecutedAt: &last}},
		{ID: newID(), Kind: wire.KindWorkflow, ReceivedAt: received, Workflow: &wire.WorkflowAudit{WorkflowID: "wf-1", StepName: "s", StepStatus: "ok", ExecutedAt: &first}},
	}
	st, err := db.WriteBatch(ctx, testSA, recs)
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{wire.StatusPersisted, wire.StatusPersisted, wire.StatusPersisted, wire.StatusPersisted}, st)

	next := "_p" + boundary.Format("20060102")
	assert.Equal(t, "remediation_audit_history", partitionOf(t, dsn, "remediation_audit", recs[0].ID))
	assert.Equal(t, "remediation_audit"+next, partitionOf(t, dsn, "remediation_audit", recs[1].ID))
	assert.Equal(t, "workflow_audit_history", partitionOf(t, dsn, "workflow_audit", recs[2].ID))
	assert.Equal(t, "workflow_audit"+next, partitionOf(t, dsn, "workflow_audit", recs[3].ID))
}

// A retry is one row even when it carries another event time that falls in
// another partition: a direct writer retrying an Idempotency-Key the next
// month (no createdAt: the event time is the new receivedAt), in both write
// paths, and two replicas receiving the two copies at once.
func TestWriteBatch_ARetryInAnotherPartitionIsADuplicate(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	parts, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	boundary := parts[0].To
	_, err = db.EnsurePartitions(ctx, boundary.AddDate(0, 2, 0), storage.PeriodMonth)
	require.NoError(t, err)

	before, after := boundary.Add(-time.Hour), boundary.AddDate(0, 1, 0)
	for _, n := range []int{1, 40} { // the ON CONFLICT path and the COPY path
		first := realisticBatch(n, before)
		retry := realisticBatch(n, after)
		for i := range retry {
			retry[i].ID = first[i].ID
			if r := retry[i].Remediation; r != nil {
				r.CreatedAt = nil
			}
			if w := retry[i].Workflow; w != nil {
				w.ExecutedAt = nil
			}
		}
		st, err := db.WriteBatch(ctx, testSA, first)
		require.NoError(t, err)
		for i := range st {
			require.Equal(t, wire.StatusPersisted, st[i])
		}
		st, err = db.WriteBatch(ctx, testSA, retry)
		require.NoError(t, err)
		for i := range st {
			assert.Equal(t, wire.StatusDuplicate, st[i], "batch of %d, record %d", n, i)
		}
		conn := connect(t, dsn)
		assert.Equal(t, n, countStored(t, conn, "remediation_audit", first)+countStored(t, conn, "workflow_audit", first))
	}

	// Two replicas, the two copies at once: exactly one is persisted.
	for range 20 {
		rec := realisticBatch(1, before)
		retry := realisticBatch(1, after)
		retry[0].ID = rec[0].ID
		retry[0].Remediation.CreatedAt = nil
		var wg sync.WaitGroup
		results := make([]wire.ItemStatus, 2)
		for i, b := range [][]wire.Record{rec, retry} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := db.WriteBatch(context.Background(), testSA, b)
				if assert.NoError(t, err) {
					results[i] = st[0]
				}
			}()
		}
		wg.Wait()
		assert.ElementsMatch(t, []wire.ItemStatus{wire.StatusPersisted, wire.StatusDuplicate}, results)
	}
}

// A stored row whose key is gone from audit_ids (deleted by hand: nothing
// in the product deletes a key before its row) makes a resend of it fail
// on either path, rather than pass for a duplicate whose key points nowhere
// or store the row twice: rows go in without an ON CONFLICT of their own.
func TestWriteBatch_ARowWithoutItsKeyFailsTheResend(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)
	for _, n := range []int{1, 40} { // the ON CONFLICT path and the COPY path
		recs := realisticBatch(n, time.Now())
		_, err := db.WriteBatch(ctx, testSA, recs)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `DELETE FROM audit_ids WHERE id = $1`, recs[0].ID)
		require.NoError(t, err)

		_, err = db.WriteBatch(ctx, testSA, recs)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, "batch of %d", n)
		assert.Equal(t, "23505", pgErr.Code, "a unique violation")
		assert.Equal(t, n, countStored(t, conn, "remediation_audit", recs)+countStored(t, conn, "workflow_audit", recs))
	}
}

// Retention's clean-up on the vector side: the links of one kind whose
// audits' event time is in the dropped range go, in batches; the others and
// the vectors stay.
func TestVectorDB_DeleteLinksOfADroppedRange(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	v := openVectors(t, dsn)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var links []storage.Link
	for i := range 25_000 {
		kind := wire.KindRemediation
		if i%5 == 0 {
			kind = wire.KindWorkflow
		}
		links = append(links, storage.Link{RecordRef: testRef(kind, fmt.Sprintf("a-%d", i)),
			ContentHash: []byte{byte(i % 7)}, OccurredAt: start.Add(time.Duration(i) * 3 * time.Minute)})
	}
	_, err := v.Write(ctx, nil, links)
	require.NoError(t, err)

	to := start.AddDate(0, 1, 0) // March: 44,640 minutes / 3 = 14,880 audits, 11,904 of them remediations
	n, err := v.DeleteLinks(ctx, wire.KindRemediation, time.Time{}, to)
	require.NoError(t, err)
	assert.EqualValues(t, 11_904, n)
	var left, early int
	conn := connect(t, dsn)
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE occurred_at < $1) FROM audit_embeddings`, to).Scan(&left, &early))
	assert.Equal(t, 25_000-11_904, left)
	assert.Equal(t, 14_880-11_904, early, "the workflow links of March stay")
	n, err = v.DeleteLinks(ctx, wire.KindRemediation, time.Time{}, to)
	require.NoError(t, err)
	assert.Zero(t, n, "idempotent")
}
