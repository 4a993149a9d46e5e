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
		assert.Equal(t, e.AuditID, e.Record.ID)
		assert.Equal(t, e.Kind, e.Record.Kind)
		assert.False(t, seen[e.AuditID])
		seen[e.AuditID] = true
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
	v, err := storage.OpenVectors(ctx, storage.Config{DatabaseURL: dsn}, storage.HNSWConfig{})
	require.NoError(t, err)
	t.Cleanup(v.Close)
	_, err = v.EnsureIndex(ctx)
	require.NoError(t, err)

	unit := func(i int) pgvector.Vector {
		f := make([]float32, storage.Dimensions)
		f[i] = 1
		f[i+1] = 0.5
		return pgvector.NewVector(f)
	}
	vecs := []storage.Vector{{ContentHash: []byte("h0"), Embedding: unit(0)}, {ContentHash: []byte("h1"), Embedding: unit(10)}}
	now := time.Now()
	links := []storage.Link{
		{AuditID: "a0", Kind: wire.KindRemediation, ContentHash: []byte("h0"), Cluster: "c1", OccurredAt: now},
		{AuditID: "a1", Kind: wire.KindRemediation, ContentHash: []byte("h1"), Cluster: "c2", OccurredAt: now},
		{AuditID: "a2", Kind: wire.KindWorkflow, ContentHash: []byte("h0"), OccurredAt: now},
	}
	n, err := v.Write(ctx, vecs, links)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = v.Write(ctx, vecs, links) // a repeated claim: the COPY conflicts, the fallback stores nothing
	require.NoError(t, err)
	assert.Zero(t, n)
	known, err := v.KnownHashes(ctx, [][]byte{[]byte("h0"), []byte("zz")})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"h0": true}, known)

	got, err := v.Search(ctx, unit(10), storage.SearchFilter{}, 3)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, "a1", got[0].AuditID)
	assert.InDelta(t, 1.0, got[0].Similarity, 1e-6)
	got, err = v.Search(ctx, unit(10), storage.SearchFilter{Kind: wire.KindWorkflow}, 3)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "a2", got[0].AuditID)
	got, err = v.Search(ctx, unit(10), storage.SearchFilter{Cluster: "c1", Until: now.Add(time.Second)}, 3)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "a0", got[0].AuditID)
}

func TestVectorDB_VectorWritersTakeTurns(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	v, err := storage.OpenVectors(ctx, storage.Config{DatabaseURL: dsn}, storage.HNSWConfig{})
	require.NoError(t, err)
	t.Cleanup(v.Close)
	_, err = v.EnsureIndex(ctx)
	require.NoError(t, err)
	f := make([]float32, storage.Dimensions)
	f[0] = 1
	vec := []storage.Vector{{ContentHash: []byte("turns"), Embedding: pgvector.NewVector(f)}}
	link := []storage.Link{{AuditID: "t0", Kind: wire.KindRemediation, ContentHash: []byte("turns"), OccurredAt: time.Now()}}

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

	n, err := v.Write(ctx, nil, []storage.Link{{AuditID: "t1", Kind: wire.KindRemediation, ContentHash: []byte("turns"), OccurredAt: time.Now()}})
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
