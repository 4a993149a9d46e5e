package storage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

var (
	received = time.Date(2025, 10, 6, 14, 30, 0, 123456789, time.UTC)
	created  = time.Date(2025, 10, 6, 14, 29, 58, 987654000, time.UTC)
	executed = time.Date(2025, 10, 6, 14, 29, 59, 5000, time.FixedZone("CEST", 2*3600))
)

// TestDB runs the behaviours that need no database of their own in
// parallel on one migrated database; each uses its own record IDs.
func TestDB(t *testing.T) {
	t.Parallel()
	dsn, db := migratedDB(t)
	for name, f := range map[string]func(*testing.T, string, *storage.DB){
		"WriteBatch stores every remediation column":                      everyRemediationColumnRoundTrips,
		"WriteBatch stores every workflow column":                         everyWorkflowColumnRoundTrips,
		"WriteBatch stores NULL for omitted fields, receivedAt for times": omittedFieldsAreNullAndTimesDefaultToReceivedAt,
		"WriteBatch of the same batch twice persists then duplicates":     sameBatchTwiceIsPersistedThenDuplicate,
		"WriteBatch persists an ID repeated in one batch once":            idRepeatedInOneBatchIsPersistedOnce,
		"WriteBatch tells new from stored in a partly retried batch":      partlyStoredBatchTellsNewFromDuplicate,
		"WriteBatch of one batch from two writers at once stores it once": concurrentWritersOfOneBatchStoreItOnce,
		"WriteBatch keeps input order across mixed kinds":                 mixedKindsKeepInputOrder,
		"WriteBatch stores the same ID once per kind":                     sameIDInBothKindsIsStoredInEachTable,
		"WriteBatch keeps another writer's record with the same ID apart": idsAreScopedToTheirWriter,
		"WriteBatch fails whole batch on CHECK violation, not 503":        constraintViolationFailsTheWholeBatchAndIsNotUnavailable,
		"WriteBatch cancelled by the caller is not unavailable":           callerCancellationIsNotUnavailable,
		"Ping answers on a healthy database":                              pingHealthyDatabase,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, dsn, db)
		})
	}
}

func everyRemediationColumnRoundTrips(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	rec := wire.Record{ID: newID(), Kind: wire.KindRemediation, ReceivedAt: received,
		Remediation: &wire.RemediationAudit{
			RemediationRequestID: "rr-1", AlertName: "HighMemoryUsage", Namespace: "production",
			Cluster: "us-west-2", Priority: "P0", ActionType: "scale_deployment", Confidence: ptr(0.875),
			Reasoning: "memory at 95% — scale out ✓", TargetResource: "production/deployment/api",
			Status: "completed", DurationNanos: ptr(int64(2*time.Second + 345*time.Millisecond + 999*time.Microsecond)),
			ErrorMessage: "partial: 1 of 3 replicas pending", CreatedAt: ptr(created), ExecutedAt: ptr(executed),
		}}

	statuses, err := db.WriteBatch(ctx, testSA, []wire.Record{rec})
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{wire.StatusPersisted}, statuses)

	var (
		id, rrID, alert, ns, cluster, prio, action, status, reasoning, target, errMsg, sa string
		conf                                                                              float64
		dur                                                                               int32
		createdAt, executedAt, receivedAt                                                 time.Time
	)
	require.NoError(t, connect(t, dsn).QueryRow(ctx, `SELECT id, remediation_request_id, alert_name, namespace,
		cluster, priority, action_type, status, confidence, reasoning, target_resource, duration_ms,
		error_message, created_at, executed_at, service_account, received_at FROM remediation_audit
		WHERE id = $1`, rec.ID).Scan(
		&id, &rrID, &alert, &ns, &cluster, &prio, &action, &status, &conf, &reasoning, &target, &dur,
		&errMsg, &createdAt, &executedAt, &sa, &receivedAt))
	a := rec.Remediation
	assert.Equal(t, rec.ID, id)
	assert.Equal(t, a.RemediationRequestID, rrID)
	assert.Equal(t, a.AlertName, alert)
	assert.Equal(t, a.Namespace, ns)
	assert.Equal(t, a.Cluster, cluster)
	assert.Equal(t, a.Priority, prio)
	assert.Equal(t, a.ActionType, action)
	assert.Equal(t, a.Status, status)
	assert.Equal(t, *a.Confidence, conf)
	assert.Equal(t, a.Reasoning, reasoning)
	assert.Equal(t, a.TargetResource, target)
	assert.Equal(t, int32(2345), dur, "duration is stored in whole milliseconds, truncated")
	assert.Equal(t, a.ErrorMessage, errMsg)
	assertSameMicrosecond(t, created, createdAt)
	assertSameMicrosecond(t, executed, executedAt)
	assert.Equal(t, testSA, sa)
	assertSameMicrosecond(t, received, receivedAt)
}

func everyWorkflowColumnRoundTrips(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	rec := wire.Record{ID: newID(), Kind: wire.KindWorkflow, ReceivedAt: received,
		Workflow: &wire.WorkflowAudit{
			WorkflowID: "wf-7", StepName: "drain-node", StepStatus: "failed",
			DurationNanos: ptr(int64(90 * time.Second)), ErrorMessage: "eviction blocked by PDB",
			ExecutedAt: ptr(executed),
		}}

	statuses, err := db.WriteBatch(ctx, testSA, []wire.Record{rec})
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{wire.StatusPersisted}, statuses)

	var (
		id, wfID, step, stepStatus, errMsg, sa string
		dur                                    int32
		executedAt, receivedAt                 time.Time
	)
	require.NoError(t, connect(t, dsn).QueryRow(ctx, `SELECT id, workflow_id, step_name, step_status,
		duration_ms, error_message, executed_at, service_account, received_at FROM workflow_audit
		WHERE id = $1`, rec.ID).Scan(
		&id, &wfID, &step, &stepStatus, &dur, &errMsg, &executedAt, &sa, &receivedAt))
	w := rec.Workflow
	assert.Equal(t, rec.ID, id)
	assert.Equal(t, w.WorkflowID, wfID)
	assert.Equal(t, w.StepName, step)
	assert.Equal(t, w.StepStatus, stepStatus)
	assert.Equal(t, int32(90000), dur)
	assert.Equal(t, w.ErrorMessage, errMsg)
	assertSameMicrosecond(t, executed, executedAt)
	assert.Equal(t, testSA, sa)
	assertSameMicrosecond(t, received, receivedAt)
}

func omittedFieldsAreNullAndTimesDefaultToReceivedAt(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	// Only the required fields, as the least talkative writers send.
	rem := wire.Record{ID: newID(), Kind: wire.KindRemediation, ReceivedAt: received,
		Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-2"}}
	wf := wire.Record{ID: newID(), Kind: wire.KindWorkflow, ReceivedAt: received,
		Workflow: &wire.WorkflowAudit{WorkflowID: "wf-2", StepName: "notify", StepStatus: "completed"}}

	_, err := db.WriteBatch(ctx, testSA, []wire.Record{rem, wf})
	require.NoError(t, err)
	conn := connect(t, dsn)

	var (
		alert, ns, cluster, prio, action, status, reasoning, target, errMsg *string
		conf                                                                *float64
		dur                                                                 *int32
		createdAt                                                           time.Time
		executedAt                                                          *time.Time
	)
	require.NoError(t, conn.QueryRow(ctx, `SELECT alert_name, namespace, cluster, priority, action_type,
		status, confidence, reasoning, target_resource, duration_ms, error_message, created_at, executed_at
		FROM remediation_audit WHERE id = $1`, rem.ID).Scan(
		&alert, &ns, &cluster, &prio, &action, &status, &conf, &reasoning, &target, &dur, &errMsg,
		&createdAt, &executedAt))
	for name, v := range map[string]*string{"alert_name": alert, "namespace": ns, "cluster": cluster,
		"priority": prio, "action_type": action, "status": status, "reasoning": reasoning,
		"target_resource": target, "error_message": errMsg} {
		assert.Nil(t, v, "remediation_audit.%s must be NULL when not sent", name)
	}
	assert.Nil(t, conf, "confidence")
	assert.Nil(t, dur, "duration_ms")
	assert.Nil(t, executedAt, "executed_at")
	assertSameMicrosecond(t, received, createdAt)

	var (
		wfDur    *int32
		wfErr    *string
		wfExecAt time.Time
	)
	require.NoError(t, conn.QueryRow(ctx, `SELECT duration_ms, error_message, executed_at
		FROM workflow_audit WHERE id = $1`, wf.ID).Scan(&wfDur, &wfErr, &wfExecAt))
	assert.Nil(t, wfDur, "workflow duration_ms")
	assert.Nil(t, wfErr, "workflow error_message")
	assertSameMicrosecond(t, received, wfExecAt)
}

// partlyStoredBatchTellsNewFromDuplicate: a batch mixing stored and new IDs
// cannot take the COPY fast path; the fallback must still store the new ones.
func partlyStoredBatchTellsNewFromDuplicate(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	batch := realisticBatch(20, received)
	_, err := db.WriteBatch(ctx, testSA, batch[:5])
	require.NoError(t, err)

	statuses, err := db.WriteBatch(ctx, testSA, batch)
	require.NoError(t, err)
	for i, s := range statuses {
		want := wire.StatusPersisted
		if i < 5 {
			want = wire.StatusDuplicate
		}
		assert.Equal(t, want, s, "record %d", i)
	}
	conn := connect(t, dsn)
	assert.Equal(t, 20, countStored(t, conn, "remediation_audit", batch)+countStored(t, conn, "workflow_audit", batch))
}

// concurrentWritersOfOneBatchStoreItOnce: two central replicas receiving
// the same retried batch at once: every record is persisted by exactly one.
func concurrentWritersOfOneBatchStoreItOnce(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	batch := realisticBatch(200, received)
	results := make([][]wire.ItemStatus, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for w := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w], errs[w] = db.WriteBatch(ctx, testSA, batch)
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	for i := range batch {
		persisted := 0
		for w := range results {
			if results[w][i] == wire.StatusPersisted {
				persisted++
			}
		}
		assert.Equal(t, 1, persisted, "record %d persisted by exactly one writer", i)
	}
	conn := connect(t, dsn)
	assert.Equal(t, 200, countStored(t, conn, "remediation_audit", batch)+countStored(t, conn, "workflow_audit", batch))
}

func sameBatchTwiceIsPersistedThenDuplicate(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	batch := realisticBatch(40, received)

	first, err := db.WriteBatch(ctx, testSA, batch)
	require.NoError(t, err)
	for i, s := range first {
		require.Equal(t, wire.StatusPersisted, s, "first write, record %d", i)
	}

	// The retry carries the same IDs; even changed content must leave the rows alone.
	retry := realisticBatch(40, received.Add(time.Hour))
	for i := range retry {
		retry[i].ID = batch[i].ID
	}
	second, err := db.WriteBatch(ctx, testSA, retry)
	require.NoError(t, err)
	for i, s := range second {
		require.Equal(t, wire.StatusDuplicate, s, "second write, record %d", i)
	}

	conn := connect(t, dsn)
	assert.Equal(t, 30, countStored(t, conn, "remediation_audit", batch))
	assert.Equal(t, 10, countStored(t, conn, "workflow_audit", batch))
	var changed int
	require.NoError(t, conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM remediation_audit WHERE id = ANY($3) AND (service_account <> $1 OR received_at > $2)) +
		(SELECT count(*) FROM workflow_audit WHERE id = ANY($3) AND (service_account <> $1 OR received_at > $2))`,
		testSA, received.Add(time.Minute), ids(batch)).Scan(&changed))
	assert.Zero(t, changed, "a duplicate must not change the stored row")
}

func idRepeatedInOneBatchIsPersistedOnce(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	id := newID()
	mk := func(alert string) wire.Record {
		return wire.Record{ID: id, Kind: wire.KindRemediation, ReceivedAt: received,
			Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-3", AlertName: alert}}
	}
	other := realisticBatch(1, received)[0]

	statuses, err := db.WriteBatch(ctx, testSA, []wire.Record{mk("first"), other, mk("second"), mk("third")})
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{wire.StatusPersisted, wire.StatusPersisted,
		wire.StatusDuplicate, wire.StatusDuplicate}, statuses)

	conn := connect(t, dsn)
	assert.Equal(t, 2, countStored(t, conn, "remediation_audit", []wire.Record{mk("first"), other}))
	assert.Equal(t, 1, countStored(t, conn, "remediation_audit", []wire.Record{mk("first")}))
	var alert string
	require.NoError(t, conn.QueryRow(ctx, "SELECT alert_name FROM remediation_audit WHERE id = $1", id).Scan(&alert))
	assert.Equal(t, "first", alert, "the first copy is the one stored")
}

func mixedKindsKeepInputOrder(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	existing := realisticBatch(8, received) // kinds: rem, rem, rem, wf, rem, rem, rem, wf
	_, err := db.WriteBatch(ctx, testSA, []wire.Record{existing[2], existing[3]})
	require.NoError(t, err)

	statuses, err := db.WriteBatch(ctx, testSA, existing)
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{
		wire.StatusPersisted, wire.StatusPersisted, wire.StatusDuplicate, wire.StatusDuplicate,
		wire.StatusPersisted, wire.StatusPersisted, wire.StatusPersisted, wire.StatusPersisted,
	}, statuses)

	conn := connect(t, dsn)
	assert.Equal(t, 6, countStored(t, conn, "remediation_audit", existing))
	assert.Equal(t, 2, countStored(t, conn, "workflow_audit", existing))
}

func sameIDInBothKindsIsStoredInEachTable(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	batch := realisticBatch(4, received) // rem, rem, rem, wf
	batch[3].ID = batch[0].ID

	statuses, err := db.WriteBatch(ctx, testSA, batch)
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{wire.StatusPersisted, wire.StatusPersisted,
		wire.StatusPersisted, wire.StatusPersisted}, statuses)
	conn := connect(t, dsn)
	assert.Equal(t, 3, countStored(t, conn, "remediation_audit", batch))
	assert.Equal(t, 1, countStored(t, conn, "workflow_audit", batch))
}

// A record belongs to the service account that wrote it: an ID another
// writer stored first (say, computed from this writer's Idempotency-Key) is
// not this writer's duplicate. Both paths: one record (ON CONFLICT) and a
// batch above the COPY threshold.
func idsAreScopedToTheirWriter(t *testing.T, dsn string, db *storage.DB) {
	const intruder = "kubernaut-system/intruder-sa"
	for _, n := range []int{1, 20} {
		ctx := testContext(t)
		mine := realisticBatch(n, received)
		forged := realisticBatch(n, received)
		for i := range forged {
			forged[i].ID, forged[i].Kind = mine[i].ID, mine[i].Kind
			forged[i].Remediation, forged[i].Workflow = nil, nil
			if mine[i].Kind == wire.KindRemediation {
				forged[i].Remediation = &wire.RemediationAudit{RemediationRequestID: "rr-forged", AlertName: "Forged"}
			} else {
				forged[i].Workflow = &wire.WorkflowAudit{WorkflowID: "wf-forged", StepName: "forged", StepStatus: "forged"}
			}
		}

		statuses, err := db.WriteBatch(ctx, intruder, forged)
		require.NoError(t, err)
		assert.Equal(t, repeat(wire.StatusPersisted, n), statuses, "the intruder's rows are its own")
		statuses, err = db.WriteBatch(ctx, testSA, mine)
		require.NoError(t, err)
		assert.Equal(t, repeat(wire.StatusPersisted, n), statuses, "n=%d: the owner's records are new to the owner", n)
		statuses, err = db.WriteBatch(ctx, testSA, mine)
		require.NoError(t, err)
		assert.Equal(t, repeat(wire.StatusDuplicate, n), statuses, "the owner's own retry collapses")

		got, err := db.Records(ctx, refsOf(testSA, mine))
		require.NoError(t, err)
		require.Len(t, got, n)
		for _, r := range mine {
			stored := got[storage.RecordRef{Kind: r.Kind, ServiceAccount: testSA, ID: r.ID}]
			require.NotNil(t, stored)
			if r.Remediation != nil {
				assert.Equal(t, r.Remediation.RemediationRequestID, stored.Remediation.RemediationRequestID, "the owner's content")
			} else {
				assert.Equal(t, r.Workflow.WorkflowID, stored.Workflow.WorkflowID, "the owner's content")
			}
		}
		conn := connect(t, dsn)
		all := countStored(t, conn, "remediation_audit", mine) + countStored(t, conn, "workflow_audit", mine)
		assert.Equal(t, 2*n, all, "one row per writer")
	}
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// refsOf is the identity of records written by sa.
func refsOf(sa string, recs []wire.Record) []storage.RecordRef {
	refs := make([]storage.RecordRef, len(recs))
	for i, r := range recs {
		refs[i] = storage.RecordRef{Kind: r.Kind, ServiceAccount: sa, ID: r.ID}
	}
	return refs
}

func constraintViolationFailsTheWholeBatchAndIsNotUnavailable(t *testing.T, dsn string, db *storage.DB) {
	ctx := testContext(t)
	batch := realisticBatch(8, received)
	batch[5].Remediation.Confidence = ptr(1.5) // violates CHECK (confidence <= 1)

	statuses, err := db.WriteBatch(ctx, testSA, batch)
	require.Error(t, err)
	assert.Nil(t, statuses)
	assert.NotErrorIs(t, err, storage.ErrUnavailable)
	assert.Contains(t, err.Error(), "23514", "the check_violation SQLSTATE is in the error")

	conn := connect(t, dsn)
	assert.Zero(t, countStored(t, conn, "remediation_audit", batch))
	assert.Zero(t, countStored(t, conn, "workflow_audit", batch), "both kinds are in one transaction")
}

func TestWriteBatch_EmptyBatchNeedsNoDatabase(t *testing.T) {
	t.Parallel()
	db, err := storage.Open(testContext(t), storage.Config{DatabaseURL: closedPortDSN(t)})
	require.NoError(t, err)
	defer db.Close()
	statuses, err := db.WriteBatch(testContext(t), testSA, nil)
	require.NoError(t, err)
	assert.Empty(t, statuses)
}

func TestWriteBatch_RejectsRecordsItCannotStoreWithoutTouchingTheDatabase(t *testing.T) {
	t.Parallel()
	db, err := storage.Open(testContext(t), storage.Config{DatabaseURL: closedPortDSN(t)})
	require.NoError(t, err)
	defer db.Close()
	good := func() wire.Record { return realisticBatch(1, received)[0] }
	cases := map[string]func(*wire.Record){
		"empty ID":              func(r *wire.Record) { r.ID = "" },
		"zero receivedAt":       func(r *wire.Record) { r.ReceivedAt = time.Time{} },
		"unknown kind":          func(r *wire.Record) { r.Kind = "alert" },
		"kind without its body": func(r *wire.Record) { r.Remediation = nil },
		"duration beyond int4 milliseconds": func(r *wire.Record) {
			r.Remediation.DurationNanos = ptr(int64(30 * 24 * time.Hour))
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			rec := good()
			mutate(&rec)
			_, err := db.WriteBatch(testContext(t), testSA, []wire.Record{rec})
			require.Error(t, err)
			assert.NotErrorIs(t, err, storage.ErrUnavailable)
		})
	}
	t.Run("empty service account", func(t *testing.T) {
		_, err := db.WriteBatch(testContext(t), "", []wire.Record{good()})
		require.Error(t, err)
		assert.NotErrorIs(t, err, storage.ErrUnavailable)
	})
}

func TestWriteBatch_ClosedPortIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: closedPortDSN(t)})
	require.NoError(t, err, "Open is lazy and succeeds while the database is down")
	defer db.Close()

	_, err = db.WriteBatch(ctx, testSA, realisticBatch(4, received))
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrUnavailable)

	err = db.Ping(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrUnavailable)
}

func TestWriteBatch_SucceedsRightAfterPooledConnectionsWereTerminated(t *testing.T) {
	t.Parallel()
	dsn, db := migratedDB(t) // its own: it kills every backend of the database
	ctx := testContext(t)
	warmPool(t, db, 4)
	require.Positive(t, db.Stat().IdleConns())

	terminated := terminateBackends(t, dsn, "")
	require.Positive(t, terminated)

	// Within a second, so pgxpool does not ping the dead connections first.
	statuses, err := db.WriteBatch(ctx, testSA, realisticBatch(8, received))
	require.NoError(t, err)
	assert.Len(t, statuses, 8)
	conn := connect(t, dsn)
	var total int
	require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM remediation_audit) +
		(SELECT count(*) FROM workflow_audit)`).Scan(&total))
	assert.Equal(t, 5*8, total)
}

func TestWriteBatch_ConnectionTerminatedMidWriteIsUnavailableThenRecovers(t *testing.T) {
	t.Parallel()
	dsn, db := migratedDB(t) // its own: it locks a table
	ctx := testContext(t)
	batch := realisticBatch(8, received)
	// Warm the pool's one connection (its prepared statements), so that the
	// write below blocks after BEGIN, inside the INSERT, rather than while
	// preparing (a failure there is retried, being provably harmless).
	_, err := db.WriteBatch(ctx, testSA, realisticBatch(8, received))
	require.NoError(t, err)
	require.Equal(t, int32(1), db.Stat().TotalConns())

	// Block the write inside its transaction with a conflicting table lock.
	locker := connect(t, dsn)
	lockTx, err := locker.Begin(ctx)
	require.NoError(t, err)
	_, err = lockTx.Exec(ctx, "LOCK TABLE remediation_audit IN SHARE MODE")
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := db.WriteBatch(ctx, testSA, batch)
		done <- err
	}()
	require.Eventually(t, func() bool {
		return terminateBackends(t, dsn, "Lock") > 0
	}, 10*time.Second, 20*time.Millisecond, "the blocked write never showed up in pg_stat_activity")

	err = <-done
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrUnavailable)
	require.NoError(t, lockTx.Rollback(ctx))

	// The retry of the same batch goes through: nothing of the killed transaction was kept.
	statuses, err := db.WriteBatch(ctx, testSA, batch)
	require.NoError(t, err)
	for i, s := range statuses {
		assert.Equal(t, wire.StatusPersisted, s, "record %d", i)
	}
}

func TestWriteBatch_DeadlineWhileThePoolIsExhaustedIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn, MaxConns: 1})
	require.NoError(t, err)
	defer db.Close()

	locker := connect(t, dsn)
	lockTx, err := locker.Begin(ctx)
	require.NoError(t, err)
	_, err = lockTx.Exec(ctx, "LOCK TABLE remediation_audit IN SHARE MODE")
	require.NoError(t, err)

	// The first write holds the pool's only connection, waiting on the lock.
	done := make(chan error, 1)
	go func() {
		_, err := db.WriteBatch(ctx, testSA, realisticBatch(4, received))
		done <- err
	}()
	require.Eventually(t, func() bool { return db.Stat().AcquiredConns() == 1 }, 10*time.Second, 10*time.Millisecond)

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = db.WriteBatch(short, testSA, realisticBatch(4, received))
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, lockTx.Rollback(ctx))
	require.NoError(t, <-done, "the blocked write completes once the lock is gone")
}

func callerCancellationIsNotUnavailable(t *testing.T, dsn string, db *storage.DB) {
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	_, err := db.WriteBatch(ctx, testSA, realisticBatch(4, received))
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, storage.ErrUnavailable)
}

// warmPool runs n concurrent writes so that the pool holds several connections.
func warmPool(t *testing.T, db *storage.DB, n int) {
	t.Helper()
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := db.WriteBatch(testContext(t), testSA, realisticBatch(8, received))
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
}

// terminateBackends kills the backends connected to dsn's database (but not
// the caller's), only those waiting on waitEventType when it is set, waits
// for them to exit and returns how many there were.
func terminateBackends(t *testing.T, dsn, waitEventType string) int {
	t.Helper()
	ctx := testContext(t)
	conn := connect(t, dsn)
	defer conn.Close(ctx)
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
		FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()
		AND backend_type = 'client backend' AND ($1 = '' OR wait_event_type = $1)`, waitEventType).Scan(&n)
	require.NoError(t, err)
	return n
}

// countStored counts the rows of table whose ID is one of recs'.
func countStored(t *testing.T, conn *pgx.Conn, table string, recs []wire.Record) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(testContext(t),
		"SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()+" WHERE id = ANY($1)", ids(recs)).Scan(&n))
	return n
}

func ids(recs []wire.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func assertSameMicrosecond(t *testing.T, want, got time.Time) {
	t.Helper()
	want = want.Truncate(time.Microsecond)
	assert.True(t, want.Equal(got), "want %s, got %s (timestamptz keeps microseconds)", want, got)
}
