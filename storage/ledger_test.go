package storage_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// trail is a database with a ledgered audit trail: batches through the COPY
// path and the ON CONFLICT path, a retry with duplicates, both kinds, two
// writers, rows in two partitions; all sequenced.
type trail struct {
	dsn  string
	db   *storage.DB
	recs []wire.Record // every record stored, as testSA wrote them
	key  ed25519.PrivateKey
}

func newTrail(t *testing.T) *trail {
	t.Helper()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	tr := &trail{dsn: dsn, db: db}
	_, tr.key, _ = ed25519.GenerateKey(rand.Reader)

	parts, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	_, err = db.EnsurePartitions(ctx, parts[0].To.AddDate(0, 1, 0), storage.PeriodMonth)
	require.NoError(t, err)
	// Half the rows fall in the history partition, half in the next.
	early, late := parts[0].To.Add(-48*time.Hour), parts[0].To.Add(48*time.Hour)
	big := append(realisticBatch(40, early), realisticBatch(40, late)...) // COPY path
	tr.write(t, testSA, big)
	for i := range 5 { // ON CONFLICT path, one record at a time
		tr.write(t, testSA, realisticBatch(1, late.Add(time.Duration(i)*time.Minute)))
	}
	retry := append(realisticBatch(3, early), big[:5]...) // 3 new, 5 duplicates
	tr.write(t, testSA, retry)
	_, err = db.WriteBatch(ctx, "kubernaut-system/other-sa", realisticBatch(4, late)) // another writer
	require.NoError(t, err)
	tr.sequence(t)
	return tr
}

func (tr *trail) write(t *testing.T, sa string, recs []wire.Record) {
	t.Helper()
	statuses, err := tr.db.WriteBatch(testContext(t), sa, recs)
	require.NoError(t, err)
	for i, s := range statuses {
		if s == wire.StatusPersisted {
			tr.recs = append(tr.recs, recs[i])
		}
	}
}

func (tr *trail) sequence(t *testing.T) storage.Head {
	t.Helper()
	_, head, err := tr.db.SequenceLedger(testContext(t))
	require.NoError(t, err)
	return head
}

func (tr *trail) checkpoint(t *testing.T) ledger.Checkpoint {
	t.Helper()
	head := tr.sequence(t)
	return ledger.Sign(tr.key, head.Seq, head.Hash, time.Now())
}

func (tr *trail) verify(t *testing.T, cps ...ledger.Checkpoint) *ledger.Report {
	t.Helper()
	r, err := tr.db.VerifyLedger(testContext(t), storage.VerifyOptions{Checkpoints: cps})
	require.NoError(t, err)
	return r
}

// tamper returns a connection as the tables' owner with the guard's
// triggers off for its session: an attacker holding the database.
func (tr *trail) tamper(t *testing.T) *pgx.Conn {
	t.Helper()
	conn := connect(t, tr.dsn)
	_, err := conn.Exec(testContext(t), "SET session_replication_role = replica")
	require.NoError(t, err)
	return conn
}

// firstFailure asserts that r failed with problem first and returns it.
func firstFailure(t *testing.T, r *ledger.Report, problem string) ledger.Failure {
	t.Helper()
	require.False(t, r.OK(), "the tampering must be found")
	f := r.Failures[0]
	assert.Equal(t, problem, f.Problem, "first failure: %s", f)
	return f
}

func (tr *trail) seqOf(t *testing.T, kind wire.Kind, id string) int64 {
	t.Helper()
	var seq int64
	table := map[wire.Kind]string{wire.KindRemediation: "remediation_audit", wire.KindWorkflow: "workflow_audit"}[kind]
	require.NoError(t, connect(t, tr.dsn).QueryRow(testContext(t), `SELECT l.seq FROM `+table+` a
		JOIN audit_ledger l ON l.batch = a.ledger_batch WHERE a.id = $1`, id).Scan(&seq))
	return seq
}

func TestLedger_AnUntouchedTrailVerifies(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	cp := tr.checkpoint(t)
	r := tr.verify(t, cp)
	require.True(t, r.OK(), "%v", r.Failures)
	assert.EqualValues(t, len(tr.recs)+4, r.Rows, "every row of both writers checked")
	assert.EqualValues(t, 8, r.HeadSeq, "one entry per transaction that stored rows: the COPY, 5 single writes, the retry, the other writer")
	assert.EqualValues(t, 9, r.Entries, "the genesis and 8")
	assert.Equal(t, 1, r.Checkpoints)
	assert.Zero(t, r.Legacy)

	// A transaction that stored nothing (all duplicates) writes no entry.
	_, err := tr.db.WriteBatch(testContext(t), testSA, tr.recs[:3])
	require.NoError(t, err)
	assert.Equal(t, cp.Seq, tr.sequence(t).Seq)
}

func TestLedger_AChangedFieldIsNamed(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	victim := tr.recs[5] // AI Analysis, with its reasoning
	require.NotEmpty(t, victim.Remediation.Reasoning)
	_, err := tr.tamper(t).Exec(testContext(t), `UPDATE remediation_audit SET reasoning = 'nothing to see' WHERE id = $1`, victim.ID)
	require.NoError(t, err)
	f := firstFailure(t, tr.verify(t), ledger.ProblemChanged)
	assert.Equal(t, victim.ID, f.Record)
	assert.Equal(t, testSA, f.Writer)
	assert.Equal(t, tr.seqOf(t, wire.KindRemediation, victim.ID), f.Seq)
	assert.Equal(t, 1, tr.verify(t).FailuresTotal, "one change, one failure")
}

func TestLedger_ADeletedRowIsNamed(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	victim := tr.recs[3] // a workflow step
	require.Equal(t, wire.KindWorkflow, victim.Kind)
	seq := tr.seqOf(t, wire.KindWorkflow, victim.ID)
	_, err := tr.tamper(t).Exec(testContext(t), `DELETE FROM workflow_audit WHERE id = $1`, victim.ID)
	require.NoError(t, err)
	f := firstFailure(t, tr.verify(t), ledger.ProblemDeleted)
	assert.Equal(t, victim.ID, f.Record)
	assert.Equal(t, seq, f.Seq)
}

func TestLedger_ARowInsertedOutsideTheCentralIsNamed(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	conn := tr.tamper(t)
	at := tr.recs[0].Remediation.CreatedAt
	// One that claims no batch (as a plain INSERT would, with the default
	// filled in by hand), one that claims an existing entry's batch.
	_, err := conn.Exec(testContext(t), `INSERT INTO remediation_audit (id, remediation_request_id, created_at,
		service_account, received_at, ledger_batch) VALUES ('audit-forged-1', 'rr-forged', $1, $2, $1, 999999)`, *at, testSA)
	require.NoError(t, err)
	_, err = conn.Exec(testContext(t), `INSERT INTO remediation_audit (id, remediation_request_id, created_at,
		service_account, received_at, ledger_batch)
		SELECT 'audit-forged-2', 'rr-forged', $1, $2, $1, ledger_batch FROM remediation_audit WHERE id = $3`, *at, testSA, tr.recs[0].ID)
	require.NoError(t, err)
	// And a plain INSERT: batch 0, "before the ledger", of which there were
	// none.
	_, err = conn.Exec(testContext(t), `INSERT INTO workflow_audit (id, workflow_id, step_name, step_status,
		executed_at, service_account, received_at) VALUES ('audit-forged-3', 'wf-forged', 's', 'ok', $1, $2, $1)`, *at, testSA)
	require.NoError(t, err)
	r := tr.verify(t)
	require.Equal(t, 3, r.FailuresTotal, "%v", r.Failures)
	byRecord := map[string]ledger.Failure{}
	for _, f := range r.Failures {
		byRecord[f.Record] = f
	}
	assert.Equal(t, ledger.ProblemInserted, byRecord["audit-forged-1"].Problem)
	assert.Zero(t, byRecord["audit-forged-1"].Seq, "no entry to name")
	assert.Equal(t, ledger.ProblemInserted, byRecord["audit-forged-2"].Problem)
	assert.Equal(t, tr.seqOf(t, wire.KindRemediation, tr.recs[0].ID), byRecord["audit-forged-2"].Seq)
	assert.Equal(t, ledger.ProblemLegacy, byRecord[""].Problem, "1 workflow row claims to predate the ledger")
}

func TestLedger_ReorderedEntriesBreakTheChain(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	_, err := tr.tamper(t).Exec(testContext(t), `UPDATE audit_ledger SET seq = -seq WHERE seq IN (3, 4);
		UPDATE audit_ledger SET seq = CASE seq WHEN -3 THEN 4 ELSE 3 END WHERE seq IN (-3, -4)`)
	require.NoError(t, err)
	f := firstFailure(t, tr.verify(t), ledger.ProblemChain)
	assert.EqualValues(t, 3, f.Seq)
}

func TestLedger_AChangedEntryIsNamed(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	// The row and its leaf in the entry changed together: the entry's
	// digest no longer matches.
	victim := tr.recs[9]
	seq := tr.seqOf(t, victim.Kind, victim.ID)
	_, err := tr.tamper(t).Exec(testContext(t), `UPDATE audit_ledger SET written_at = written_at - interval '1 day' WHERE seq = $1`, seq)
	require.NoError(t, err)
	f := firstFailure(t, tr.verify(t), ledger.ProblemEntry)
	assert.Equal(t, seq, f.Seq)
}

func TestLedger_TruncationIsCaughtAgainstACheckpoint(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	cp := tr.checkpoint(t)
	// The newest two entries and their rows, gone: a consistent, shorter
	// chain, which only the checkpoint contradicts.
	conn := tr.tamper(t)
	for _, table := range []string{"remediation_audit", "workflow_audit"} {
		_, err := conn.Exec(testContext(t), `DELETE FROM `+table+` WHERE ledger_batch IN
			(SELECT batch FROM audit_ledger WHERE seq > $1)`, cp.Seq-2)
		require.NoError(t, err)
	}
	_, err := conn.Exec(testContext(t), `DELETE FROM audit_ledger WHERE seq > $1`, cp.Seq-2)
	require.NoError(t, err)
	assert.True(t, tr.verify(t).OK(), "without a checkpoint, a truncated chain is a shorter chain")
	f := firstFailure(t, tr.verify(t, cp), ledger.ProblemTruncated)
	assert.Equal(t, cp.Seq, f.Seq)
}

func TestLedger_AWholeRemediationDeletedIsCaught(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	rr := tr.recs[0].Remediation.RemediationRequestID
	var ids []string
	for _, r := range tr.recs {
		if r.Remediation != nil && r.Remediation.RemediationRequestID == rr {
			ids = append(ids, r.ID)
		}
	}
	require.Greater(t, len(ids), 1)
	n, err := tr.tamper(t).Exec(testContext(t), `DELETE FROM remediation_audit WHERE remediation_request_id = $1 AND service_account = $2`, rr, testSA)
	require.NoError(t, err)
	require.EqualValues(t, len(ids), n.RowsAffected())
	r := tr.verify(t)
	require.Equal(t, len(ids), r.FailuresTotal)
	for _, f := range r.Failures {
		assert.Equal(t, ledger.ProblemDeleted, f.Problem)
		assert.Contains(t, ids, f.Record)
	}
}

func TestLedger_ARestoreFromAnOldBackupIsCaught(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	ctx := testContext(t)
	// The backup: a copy of the database as it is now.
	backup := copyDatabase(t, tr)
	// Life goes on, and a checkpoint is kept outside.
	tr.write(t, testSA, realisticBatch(30, time.Now()))
	tr.write(t, testSA, realisticBatch(30, time.Now()))
	cp := tr.checkpoint(t)

	// The database is restored from the backup.
	old, err := storage.Open(ctx, storage.Config{DatabaseURL: backup, MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(old.Close)
	r, err := old.VerifyLedger(ctx, storage.VerifyOptions{Checkpoints: []ledger.Checkpoint{cp}})
	require.NoError(t, err)
	assert.Equal(t, ledger.ProblemTruncated, firstFailure(t, r, ledger.ProblemTruncated).Problem)

	// Writes go on after the restore, past the checkpoint's sequence: the
	// chain there is another one.
	for range 3 {
		_, err := old.WriteBatch(ctx, testSA, realisticBatch(5, time.Now()))
		require.NoError(t, err)
	}
	_, head, err := old.SequenceLedger(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, head.Seq, cp.Seq)
	r, err = old.VerifyLedger(ctx, storage.VerifyOptions{Checkpoints: []ledger.Checkpoint{cp}})
	require.NoError(t, err)
	f := firstFailure(t, r, ledger.ProblemFork)
	assert.Equal(t, cp.Seq, f.Seq)
}

// copyDatabase copies tr's database (CREATE DATABASE … TEMPLATE, which
// needs it idle: tr's pool is closed and opened again).
func copyDatabase(t *testing.T, tr *trail) string {
	t.Helper()
	ctx := testContext(t)
	tr.db.Close()
	u, err := url.Parse(tr.dsn)
	require.NoError(t, err)
	source := strings.TrimPrefix(u.Path, "/")
	name := source + "_backup"
	admin, err := pgx.Connect(ctx, os.Getenv("TEST_DATABASE_URL"))
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`,
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{source}.Sanitize()))
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), os.Getenv("TEST_DATABASE_URL"))
		if err == nil {
			_, _ = c.Exec(context.Background(), `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
			_ = c.Close(context.Background())
		}
	})
	tr.db, err = storage.Open(ctx, storage.Config{DatabaseURL: tr.dsn, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(tr.db.Close)
	u.Path = "/" + name
	return u.String()
}

func TestLedger_RetentionLeavesAVerifiableAnchor(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	tr := newTrail(t)
	parts, err := tr.db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	held := tr.recs[1].Remediation.RemediationRequestID // in the history partition
	_, err = tr.db.PlaceHold(ctx, newHold(wire.KindWorkflow, "wf-"+held, 0))
	require.NoError(t, err)

	// Remediation's history partition goes; workflow's is held.
	res, err := tr.db.ApplyRetention(ctx, wire.KindRemediation, parts[0].To)
	require.NoError(t, err)
	require.Len(t, res.Dropped, 1)
	res, err = tr.db.ApplyRetention(ctx, wire.KindWorkflow, parts[0].To)
	require.NoError(t, err)
	require.Empty(t, res.Dropped)
	require.NotEmpty(t, res.Held)
	tr.write(t, testSA, realisticBatch(8, parts[0].To.Add(72*time.Hour)))
	cp := tr.checkpoint(t)

	r := tr.verify(t, cp)
	require.True(t, r.OK(), "%v", r.Failures)
	assert.Positive(t, r.Pruned, "the dropped rows are accounted for by the anchor")
	assert.Positive(t, r.Rows)

	// A row put back in the pruned range (the partition created again by
	// hand, a row restored into it) is found.
	conn := tr.tamper(t)
	_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE remediation_audit_restored PARTITION OF remediation_audit
		FOR VALUES FROM (MINVALUE) TO ('%s')`, parts[0].To.Format(time.RFC3339)))
	require.NoError(t, err)
	gone := tr.recs[0]
	_, err = conn.Exec(ctx, `INSERT INTO remediation_audit (id, remediation_request_id, created_at, service_account,
		received_at, ledger_batch) VALUES ($1, $2, $3, $4, $5, 1)`, gone.ID, gone.Remediation.RemediationRequestID,
		*gone.Remediation.CreatedAt, testSA, gone.ReceivedAt)
	require.NoError(t, err)
	f := firstFailure(t, tr.verify(t, cp), ledger.ProblemReinserted)
	assert.Equal(t, gone.ID, f.Record)
}

func TestLedger_TheDatabaseRefusesUpdatesAndDeletes(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	conn := connect(t, tr.dsn) // the tables' owner, the guard in place
	ctx := testContext(t)
	refused := func(code, what string, sql string, args ...any) {
		t.Helper()
		_, err := conn.Exec(ctx, sql, args...)
		var pgErr *pgconn.PgError
		if assert.ErrorAs(t, err, &pgErr, what) {
			assert.Equal(t, code, pgErr.Code, what)
		}
	}
	id := tr.recs[0].ID
	refused("LG001", "UPDATE of an audit row", `UPDATE remediation_audit SET status = 'x' WHERE id = $1`, id)
	refused("LG001", "DELETE of an audit row", `DELETE FROM remediation_audit WHERE id = $1`, id)
	refused("LG001", "DELETE from a partition", `DELETE FROM remediation_audit_history WHERE id = $1`, id)
	refused("LG001", "TRUNCATE of a table", `TRUNCATE workflow_audit`)
	refused("LG001", "TRUNCATE of a partition", `TRUNCATE workflow_audit_history`)
	refused("LG002", "UPDATE of a ledger entry", `UPDATE audit_ledger SET written_at = now() WHERE seq = 1`)
	refused("LG002", "re-sequencing an entry", `UPDATE audit_ledger SET seq = 100 WHERE seq = 1`)
	refused("LG002", "DELETE of a ledger entry", `DELETE FROM audit_ledger WHERE seq = 1`)
	refused("LG002", "TRUNCATE of the ledger", `TRUNCATE audit_ledger`)
	refused("LG002", "UPDATE of the legacy count", `UPDATE ledger_legacy SET row_count = 100`)
	assert.True(t, tr.verify(t).OK())
}

func TestLedger_ConcurrentWritersAndSequencersLeaveNoGapOrFork(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	other, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn, MaxConns: 4}) // a second replica
	require.NoError(t, err)
	t.Cleanup(other.Close)
	stop := make(chan struct{})
	var seqWG, writeWG sync.WaitGroup
	for _, replica := range []*storage.DB{db, other} {
		seqWG.Add(1)
		go func() {
			defer seqWG.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _, err := replica.SequenceLedger(ctx)
				assert.NoError(t, err)
			}
		}()
	}
	for w := range 6 {
		writeWG.Add(1)
		go func() {
			defer writeWG.Done()
			replica := []*storage.DB{db, other}[w%2]
			for i := range 15 {
				_, err := replica.WriteBatch(ctx, testSA, realisticBatch(1+(i%3)*10, time.Now()))
				assert.NoError(t, err)
			}
		}()
	}
	writeWG.Wait()
	close(stop)
	seqWG.Wait()
	_, head, err := db.SequenceLedger(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 90, head.Seq, "one entry per batch, numbered without a gap")
	r, err := db.VerifyLedger(ctx, storage.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, r.OK(), "%v", r.Failures)
	assert.EqualValues(t, 6*5*(1+11+21), r.Rows)
}

func TestLedger_ARangeVerifiesFromItsStart(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	r, err := tr.db.VerifyLedger(testContext(t), storage.VerifyOptions{From: 3, Through: 5})
	require.NoError(t, err)
	require.True(t, r.OK(), "%v", r.Failures)
	assert.EqualValues(t, 3, r.Entries)
	assert.EqualValues(t, 3, r.Rows, "entries 3 to 5 are single-record writes")

	_, err = tr.tamper(t).Exec(testContext(t), `DELETE FROM remediation_audit WHERE id = $1`, tr.recs[0].ID)
	require.NoError(t, err)
	r, err = tr.db.VerifyLedger(testContext(t), storage.VerifyOptions{From: 3, Through: 5})
	require.NoError(t, err)
	assert.True(t, r.OK(), "the deleted row is entry 1's, outside the range")
	_, err = tr.db.VerifyLedger(testContext(t), storage.VerifyOptions{From: 5, Through: 3})
	assert.Error(t, err)
}

func TestLedger_APendingEntryIsSkippedUntilItIsOld(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	ctx := testContext(t)
	_, err := tr.db.WriteBatch(ctx, testSA, realisticBatch(3, time.Now())) // not sequenced
	require.NoError(t, err)
	r := tr.verify(t)
	require.True(t, r.OK(), "%v", r.Failures)
	assert.EqualValues(t, 3, r.Pending)
	r, err = tr.db.VerifyLedger(ctx, storage.VerifyOptions{PendingAge: time.Nanosecond})
	require.NoError(t, err)
	firstFailure(t, r, ledger.ProblemPending)
}
