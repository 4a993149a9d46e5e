package storage_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// Several writers' single-record writes, coalesced, commit together: each
// group's records get their own statuses, their writer and their own ledger
// batch and entry, and the ledger verifies. Groups of one kind fold their
// entry into their insert; a mixed group, and a group whose record was
// stored already (the folded entry is refused and the whole transaction goes
// again the long way), exercise the other paths.
func TestWriteGroups_SeveralWritersCommitInOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	const gateway, executor, workflow, idle = "kubernaut-system/gateway-sa", "kubernaut-system/executor-sa",
		"kubernaut-system/workflow-sa", "kubernaut-system/idle-sa"
	recs := realisticBatch(8, received) // kinds: rem, rem, rem, wf, rem, rem, rem, wf
	stored, err := db.WriteBatch(ctx, gateway, recs[:1])
	require.NoError(t, err)
	require.Equal(t, []wire.ItemStatus{wire.StatusPersisted}, stored)

	groups := []storage.Group{
		{ServiceAccount: gateway, Records: []wire.Record{recs[0], recs[1]}}, // a retry and a new one
		{ServiceAccount: workflow, Records: []wire.Record{recs[3]}},         // one kind
		{ServiceAccount: idle}, // nothing to write
		{ServiceAccount: executor, Records: []wire.Record{recs[2], recs[7], recs[2]}}, // both kinds, a repeat
	}
	statuses, err := db.WriteGroups(ctx, groups)
	require.NoError(t, err)
	assert.Equal(t, [][]wire.ItemStatus{
		{wire.StatusDuplicate, wire.StatusPersisted},
		{wire.StatusPersisted},
		{},
		{wire.StatusPersisted, wire.StatusPersisted, wire.StatusDuplicate},
	}, statuses)

	conn := connect(t, dsn)
	var writers, batches, transactions int
	require.NoError(t, conn.QueryRow(ctx, `
		SELECT count(DISTINCT service_account), count(DISTINCT ledger_batch), count(DISTINCT xmin::text) FROM (
			SELECT service_account, ledger_batch, xmin FROM remediation_audit WHERE id = ANY($1)
			UNION ALL
			SELECT service_account, ledger_batch, xmin FROM workflow_audit WHERE id = ANY($1)) AS t`,
		[]string{recs[1].ID, recs[3].ID, recs[2].ID, recs[7].ID}).Scan(&writers, &batches, &transactions))
	assert.Equal(t, 3, writers)
	assert.Equal(t, 3, batches, "one ledger batch per writer")
	assert.Equal(t, 1, transactions, "one commit")

	for _, w := range []struct {
		sa  string
		rec wire.Record
	}{{gateway, recs[1]}, {workflow, recs[3]}, {executor, recs[2]}, {executor, recs[7]}} {
		got, err := db.Records(ctx, refsOf(w.sa, []wire.Record{w.rec}))
		require.NoError(t, err)
		assert.Len(t, got, 1, "%s's %s is stored as its own", w.sa, w.rec.ID)
	}

	_, head, err := db.SequenceLedger(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 4, head.Seq, "the first write's entry, then one per writer that stored rows")
	report, err := db.VerifyLedger(ctx, storage.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, report.OK(), "%v", report.Failures)
	assert.EqualValues(t, 5, report.Rows)
}

// One group's bad row fails the transaction: no group's rows are stored,
// and the error is not the database being unavailable (the central then
// writes each record alone).
func TestWriteGroups_AFailingGroupStoresNothingOfAnyGroup(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	good, bad := realisticBatch(4, received), realisticBatch(2, received)
	bad[1].Remediation.Confidence = ptr(1.5) // violates CHECK (confidence <= 1)

	statuses, err := db.WriteGroups(ctx, []storage.Group{
		{ServiceAccount: testSA, Records: good},
		{ServiceAccount: "kubernaut-system/other-sa", Records: bad},
	})
	require.Error(t, err)
	assert.Nil(t, statuses)
	assert.NotErrorIs(t, err, storage.ErrUnavailable)
	conn := connect(t, dsn)
	assert.Zero(t, countStored(t, conn, "remediation_audit", good)+countStored(t, conn, "workflow_audit", good))

	_, err = db.WriteGroups(ctx, []storage.Group{{ServiceAccount: testSA, Records: good}, {ServiceAccount: ""}})
	require.ErrorContains(t, err, "empty service account", "refused before the database is touched")
}
