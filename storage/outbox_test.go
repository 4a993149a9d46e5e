package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// outboxIDs lists the audits waiting in the backlog.
func outboxIDs(t *testing.T, conn *pgx.Conn) map[string]wire.Kind {
	t.Helper()
	rows, err := conn.Query(testContext(t), `SELECT a, 'remediation' FROM embedding_outbox, unnest(remediation_ids) a
		UNION ALL SELECT a, 'workflow' FROM embedding_outbox, unnest(workflow_ids) a`)
	require.NoError(t, err)
	got := map[string]wire.Kind{}
	var id, kind string
	_, err = pgx.ForEachRow(rows, []any{&id, &kind}, func() error {
		_, dup := got[id]
		require.False(t, dup, "%s enqueued twice", id)
		got[id] = wire.Kind(kind)
		return nil
	})
	require.NoError(t, err)
	return got
}

func TestWriteBatch_EnqueuesEveryStoredRowInTheBacklogInBothPaths(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)

	first := realisticBatch(8, time.Now())
	_, err := db.WriteBatch(ctx, testSA, first) // COPY fast path
	require.NoError(t, err)
	got := outboxIDs(t, conn)
	require.Len(t, got, len(first))
	for _, r := range first {
		assert.Equal(t, r.Kind, got[r.ID])
	}

	// Half stored already: the ON CONFLICT path enqueues only the new half.
	second := append(append([]wire.Record{}, first[:4]...), realisticBatch(4, time.Now())...)
	statuses, err := db.WriteBatch(ctx, testSA, second)
	require.NoError(t, err)
	assert.Equal(t, wire.StatusDuplicate, statuses[0])
	got = outboxIDs(t, conn)
	assert.Len(t, got, len(first)+4, "duplicates are not enqueued again")
	for _, r := range second[4:] {
		assert.Equal(t, r.Kind, got[r.ID])
	}
	st, err := db.OutboxStats(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, len(first)+4, st.Depth)
	assert.WithinDuration(t, time.Now(), st.Oldest, time.Minute)
}

func TestClaimOutbox_ConcurrentClaimsSkipLeasedEntriesAndCompleteDeletes(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)
	for range 5 { // five committed batches of two: five backlog entries
		_, err := db.WriteBatch(ctx, testSA, realisticBatch(2, time.Now()))
		require.NoError(t, err)
	}

	a, err := db.ClaimOutbox(ctx, 6, time.Minute)
	require.NoError(t, err)
	t.Cleanup(func() { a.Release(ctx) })
	b, err := db.ClaimOutbox(ctx, 6, time.Minute)
	require.NoError(t, err)
	t.Cleanup(func() { b.Release(ctx) })
	require.Len(t, a.Entries, 6, "three entries of two audits reach the claim size")
	require.Len(t, b.Entries, 4, "the second claim skips the first one's entries")
	seen := map[string]bool{}
	for _, e := range append(append([]storage.OutboxEntry{}, a.Entries...), b.Entries...) {
		require.NotNil(t, e.Record, "the claim loads the stored audit")
		assert.Equal(t, e.ID, e.Record.ID)
		assert.Equal(t, testSA, e.ServiceAccount)
		assert.Equal(t, e.Kind, e.Record.Kind)
		assert.False(t, seen[e.ID])
		seen[e.ID] = true
	}

	b.Release(ctx) // a worker that gives up: its entries come back
	require.NoError(t, a.Complete(ctx))
	assert.Len(t, outboxIDs(t, conn), 4)
	c, err := db.ClaimOutbox(ctx, 100, time.Minute)
	require.NoError(t, err)
	t.Cleanup(func() { c.Release(ctx) })
	assert.Len(t, c.Entries, 4)
	require.NoError(t, c.Complete(ctx))
	st, err := db.OutboxStats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.Depth)
	assert.True(t, st.Oldest.IsZero())

	empty, err := db.ClaimOutbox(ctx, 10, time.Minute)
	require.NoError(t, err)
	assert.Empty(t, empty.Entries)
	require.NoError(t, empty.Complete(ctx))
}

func TestClaimOutbox_HoldsNoTransactionAndAnAbandonedLeaseEnds(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)
	recs := realisticBatch(3, time.Now())
	_, err := db.WriteBatch(ctx, testSA, recs)
	require.NoError(t, err)

	// A worker claims, then dies: no Complete, no Release.
	dead, err := db.ClaimOutbox(ctx, 10, 500*time.Millisecond)
	require.NoError(t, err)
	require.Len(t, dead.Entries, 3)
	var open int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open))
	assert.Zero(t, open, "a claim keeps no transaction open while its worker embeds")

	live, err := db.ClaimOutbox(ctx, 10, time.Minute)
	require.NoError(t, err)
	assert.Empty(t, live.Entries, "the lease holds")
	require.Eventually(t, func() bool {
		c, err := db.ClaimOutbox(ctx, 10, time.Minute)
		require.NoError(t, err)
		if len(c.Entries) == 0 {
			return false
		}
		assert.Len(t, c.Entries, 3)
		require.NoError(t, c.Complete(ctx))
		return true
	}, 10*time.Second, 50*time.Millisecond, "the entries come back once the lease ends")
	assert.Empty(t, outboxIDs(t, conn))
	require.NoError(t, dead.Complete(ctx), "the first worker's late Complete deletes nothing more")
}

func TestVectorDB_WriteIsIdempotentAndSearchRanksBySimilarity(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	v := indexedVectors(t, dsn)

	unit := func(i int) pgvector.Vector {
		f := make([]float32, storage.Dimensions)
		f[i] = 1
		f[i+1] = 0.5
		return pgvector.NewVector(f)
	}
	vecs := []storage.Vector{{ContentHash: []byte("h0"), Embedding: unit(0)}, {ContentHash: []byte("h1"), Embedding: unit(10)}}
	now := time.Now()
	links := []storage.Link{
		{RecordRef: testRef(wire.KindRemediation, "a0"), ContentHash: []byte("h0"), Cluster: "c1", OccurredAt: now},
		{RecordRef: testRef(wire.KindRemediation, "a1"), ContentHash: []byte("h1"), Cluster: "c2", OccurredAt: now},
		{RecordRef: testRef(wire.KindWorkflow, "a2"), ContentHash: []byte("h0"), OccurredAt: now},
	}
	n, err := v.Write(ctx, vecs, links)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = v.Write(ctx, vecs, links) // a repeated claim: the vectors are stored, the links too
	require.NoError(t, err)
	assert.Zero(t, n)
	known, err := v.KnownHashes(ctx, [][]byte{[]byte("h0"), []byte("zz")})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"h0": true}, known)

	got, err := v.Search(ctx, unit(10), storage.SearchFilter{}, 3)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, "a1", got[0].ID)
	assert.InDelta(t, 1.0, got[0].Similarity, 1e-6)
	got, err = v.Search(ctx, unit(10), storage.SearchFilter{Kind: wire.KindWorkflow}, 3)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "a2", got[0].ID)
	got, err = v.Search(ctx, unit(10), storage.SearchFilter{Cluster: "c1", Until: now.Add(time.Second)}, 3)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "a0", got[0].ID)
}

func TestVectorDB_VectorWritersTakeTurns(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	v := indexedVectors(t, dsn)
	f := make([]float32, storage.Dimensions)
	f[0] = 1
	vec := []storage.Vector{{ContentHash: []byte("turns"), Embedding: pgvector.NewVector(f)}}
	link := []storage.Link{{RecordRef: testRef(wire.KindRemediation, "t0"), ContentHash: []byte("turns"), OccurredAt: time.Now()}}

	// Another writer (here: a bare transaction) holds the vector-insert turn.
	conn := connect(t, dsn)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('datastorage.embeddings.insert'))`)
	require.NoError(t, err)

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = v.Write(short, vec, link)
	require.Error(t, err, "a vector write waits for the writer before it")

	n, err := v.Write(ctx, nil, []storage.Link{{RecordRef: testRef(wire.KindRemediation, "t1"), ContentHash: []byte("turns"), OccurredAt: time.Now()}})
	require.NoError(t, err, "a write of links only does not wait")
	assert.Zero(t, n)

	done := make(chan error, 1)
	go func() {
		_, err := v.Write(ctx, vec, link)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, tx.Rollback(ctx))
	select {
	case err := <-done:
		require.NoError(t, err, "it proceeds once the turn is free")
	case <-time.After(10 * time.Second):
		t.Fatal("the vector write never proceeded")
	}
}

func TestClaimOutbox_ReadsBackEachWritersOwnRecord(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, db := migratedDB(t)
	const intruder = "kubernaut-system/intruder-sa"
	mine := realisticBatch(4, time.Now())
	forged := realisticBatch(4, time.Now())
	for i := range forged {
		forged[i].ID = mine[i].ID // same IDs and kinds, other content
		if r := forged[i].Remediation; r != nil {
			r.RemediationRequestID = "forged"
		} else {
			forged[i].Workflow.WorkflowID = "forged"
		}
	}
	_, err := db.WriteBatch(ctx, intruder, forged)
	require.NoError(t, err)
	_, err = db.WriteBatch(ctx, testSA, mine)
	require.NoError(t, err)

	c, err := db.ClaimOutbox(ctx, 100, time.Minute)
	require.NoError(t, err)
	t.Cleanup(func() { c.Release(ctx) })
	require.Len(t, c.Entries, 8, "one entry per writer's record")
	want := map[storage.RecordRef]wire.Record{}
	for i := range mine {
		want[storage.RecordRef{Kind: mine[i].Kind, ServiceAccount: testSA, ID: mine[i].ID}] = mine[i]
		want[storage.RecordRef{Kind: forged[i].Kind, ServiceAccount: intruder, ID: forged[i].ID}] = forged[i]
	}
	for _, e := range c.Entries {
		w, ok := want[e.RecordRef]
		require.True(t, ok, "unexpected entry %+v", e.RecordRef)
		require.NotNil(t, e.Record)
		if w.Remediation != nil {
			assert.Equal(t, w.Remediation.RemediationRequestID, e.Record.Remediation.RemediationRequestID, "%s reads back its own record", e.ServiceAccount)
		} else {
			assert.Equal(t, w.Workflow.WorkflowID, e.Record.Workflow.WorkflowID, "%s reads back its own record", e.ServiceAccount)
		}
		delete(want, e.RecordRef)
	}
}

func TestVectorDB_LinksAndSearchKeepEachWritersRecordApart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	v := openVectors(t, dsn)
	f := make([]float32, storage.Dimensions)
	f[3] = 1
	vec := []storage.Vector{{ContentHash: []byte("same"), Embedding: pgvector.NewVector(f)}}
	const intruder = "kubernaut-system/intruder-sa"
	refs := []storage.RecordRef{
		{Kind: wire.KindRemediation, ServiceAccount: testSA, ID: "x"},
		{Kind: wire.KindWorkflow, ServiceAccount: testSA, ID: "x"},
		{Kind: wire.KindWorkflow, ServiceAccount: intruder, ID: "x"},
	}
	var links []storage.Link
	for _, r := range refs {
		links = append(links, storage.Link{RecordRef: r, ContentHash: []byte("same"), OccurredAt: time.Now()})
	}
	_, err := v.Write(ctx, vec, links)
	require.NoError(t, err)

	got, err := v.Search(ctx, pgvector.NewVector(f), storage.SearchFilter{}, 10)
	require.NoError(t, err)
	var found []storage.RecordRef
	for _, m := range got {
		found = append(found, m.RecordRef)
	}
	assert.ElementsMatch(t, refs, found, "a workflow step or another writer's record with the same ID hides nothing")
}

func TestVectorDB_UnownedLinksAreMadeAgainForEachWriter(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	v := openVectors(t, dsn)
	const intruder = "kubernaut-system/intruder-sa"
	rec := realisticBatch(1, time.Now())
	_, err := db.WriteBatch(ctx, testSA, rec)
	require.NoError(t, err)
	_, err = db.WriteBatch(ctx, intruder, rec)
	require.NoError(t, err)
	drain, err := db.ClaimOutbox(ctx, 100, time.Minute)
	require.NoError(t, err)
	require.NoError(t, drain.Complete(ctx))
	// A link from before records had owners, in a separate vector database.
	unowned := storage.RecordRef{Kind: rec[0].Kind, ID: rec[0].ID}
	_, err = v.Write(ctx, nil, []storage.Link{{RecordRef: unowned, ContentHash: []byte("h"), OccurredAt: time.Now()}})
	require.NoError(t, err)

	got, err := v.UnownedLinks(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, []storage.RecordRef{unowned}, got)
	require.NoError(t, db.EnqueueByID(ctx, got))
	require.NoError(t, v.DeleteUnownedLinks(ctx, got))

	got, err = v.UnownedLinks(ctx, 10)
	require.NoError(t, err)
	assert.Empty(t, got)
	c, err := db.ClaimOutbox(ctx, 100, time.Minute)
	require.NoError(t, err)
	t.Cleanup(func() { c.Release(ctx) })
	var claimed []storage.RecordRef
	for _, e := range c.Entries {
		require.NotNil(t, e.Record)
		claimed = append(claimed, e.RecordRef)
	}
	assert.ElementsMatch(t, []storage.RecordRef{
		{Kind: rec[0].Kind, ServiceAccount: testSA, ID: rec[0].ID},
		{Kind: rec[0].Kind, ServiceAccount: intruder, ID: rec[0].ID},
	}, claimed, "each writer's audit is enqueued to be linked again")
}
