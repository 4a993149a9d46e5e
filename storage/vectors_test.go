package storage_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// randomUnit is a random unit vector of storage.Dimensions.
func randomUnit(rng *rand.Rand) []float32 {
	v := make([]float32, storage.Dimensions)
	var sum float64
	for i := range v {
		x := rng.NormFloat64()
		v[i], sum = float32(x), sum+x*x
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(sum))
	}
	return v
}

func vectorText(v []float32) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Migration 0011 stores the vectors in half precision: an installation's
// vectors, stored in full precision under version 10's index, are all kept
// (rounded), the old index goes, EnsureIndex builds the halfvec one and
// search finds them; the down migration gives back full-precision columns
// with the same values.
func TestMigrate_HalfPrecisionKeepsEveryVector(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.MigrateTo(ctx, dsn, 10))
	conn := connect(t, dsn)
	require.NoError(t, pgxvec.RegisterTypes(ctx, conn))

	const n = 40
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([][]float32, n)
	for i := range want {
		want[i] = randomUnit(rng)
		_, err := conn.Exec(ctx, `INSERT INTO embeddings (content_hash, embedding) VALUES ($1, $2::text::vector)`,
			[]byte{byte(i)}, vectorText(want[i]))
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `INSERT INTO audit_embeddings (audit_id, kind, service_account, content_hash, occurred_at)
			VALUES ($1, 'remediation', $2, $3, now())`, fmt.Sprintf("a%d", i), testSA, []byte{byte(i)})
		require.NoError(t, err)
	}
	_, err := conn.Exec(ctx, `CREATE INDEX idx_embeddings_embedding_hnsw ON embeddings USING hnsw (embedding vector_cosine_ops)`)
	require.NoError(t, err)

	// stored reads every vector back in full precision, by content hash.
	stored := func(wantType string) [][]float32 {
		t.Helper()
		var typ string
		require.NoError(t, conn.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = 'embeddings'::regclass AND attname = 'embedding'`).Scan(&typ))
		require.Equal(t, wantType, typ)
		rows, err := conn.Query(ctx, `SELECT embedding::vector FROM embeddings ORDER BY content_hash`)
		require.NoError(t, err)
		defer rows.Close()
		var out [][]float32
		for rows.Next() {
			var v pgvector.Vector
			require.NoError(t, rows.Scan(&v))
			out = append(out, v.Slice())
		}
		require.NoError(t, rows.Err())
		return out
	}

	require.NoError(t, storage.Migrate(ctx, dsn))
	half := stored("halfvec(768)")
	require.Len(t, half, n)
	for i := range want {
		for j := range want[i] {
			// Half precision keeps 11 significant bits: a relative error of at
			// most 2^-11 (and 2^-25 absolute near zero).
			require.InDelta(t, want[i][j], half[i][j], math.Abs(float64(want[i][j]))/2048+1e-7, "vector %d, component %d", i, j)
		}
	}
	var indexes int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE tablename = 'embeddings'
		AND indexname = 'idx_embeddings_embedding_hnsw'`).Scan(&indexes))
	assert.Zero(t, indexes, "the index on the old type is gone")

	v := indexedVectors(t, dsn)
	var def string
	require.NoError(t, conn.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_embeddings_embedding_hnsw'`).Scan(&def))
	assert.Contains(t, def, "halfvec_cosine_ops")
	for _, i := range []int{0, 17, n - 1} {
		got, err := v.Search(ctx, pgvector.NewVector(want[i]), storage.SearchFilter{}, 3)
		require.NoError(t, err)
		require.NotEmpty(t, got)
		assert.Equal(t, fmt.Sprintf("a%d", i), got[0].ID)
		assert.InDelta(t, 1, got[0].Similarity, 1e-3)
	}

	down, err := storage.MigrationFiles.ReadFile("migrations/0011_halfvec_embeddings.down.sql")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, string(down))
	require.NoError(t, err)
	assert.Equal(t, half, stored("vector(768)"), "back in full precision, the values unchanged")
}

// Vectors are stored at unit length: an embedder's scale does not matter
// to cosine similarity, and components beyond half precision's range
// (±65504) would otherwise fail the write.
func TestVectorDB_WriteStoresVectorsOfAnyScale(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	v := indexedVectors(t, dsn)

	rng := rand.New(rand.NewPCG(3, 4))
	u := randomUnit(rng)
	big := make([]float32, len(u))
	for i := range u {
		big[i] = u[i] * 1e7
	}
	_, err := v.Write(ctx, []storage.Vector{{ContentHash: []byte("big"), Embedding: pgvector.NewVector(big)}},
		[]storage.Link{{RecordRef: testRef(wire.KindRemediation, "big"), ContentHash: []byte("big"), OccurredAt: time.Now()}})
	require.NoError(t, err)
	got, err := v.Search(ctx, pgvector.NewVector(u), storage.SearchFilter{}, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "big", got[0].ID)
	assert.InDelta(t, 1, got[0].Similarity, 1e-3)
}

// A vector another worker stored since the caller looked up the hashes (two
// workers embedding the same alert text) is left out of the COPY: nothing is
// inserted into the graph only to be undone. Before, the COPY failed on it
// and the transaction went again: every row it had inserted was left dead.
func TestVectorDB_WriteLeavesOutVectorsStoredMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	v := indexedVectors(t, dsn)
	conn := connect(t, dsn)
	_, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pgstattuple")
	require.NoError(t, err)

	rng := rand.New(rand.NewPCG(5, 6))
	vector := func(hash string) storage.Vector {
		return storage.Vector{ContentHash: []byte(hash), Embedding: pgvector.NewVector(randomUnit(rng))}
	}
	n, err := v.Write(ctx, []storage.Vector{vector("storm")}, nil) // the other worker
	require.NoError(t, err)
	require.Equal(t, 1, n)

	var batch []storage.Vector
	for i := range 20 {
		batch = append(batch, vector(fmt.Sprint("new-", i)))
	}
	batch = append(batch, vector("storm")) // last: a COPY would insert the others first
	n, err = v.Write(ctx, batch, []storage.Link{{RecordRef: testRef(wire.KindRemediation, "r1"),
		ContentHash: []byte("storm"), OccurredAt: time.Now()}})
	require.NoError(t, err)
	assert.Equal(t, 20, n)

	var live, dead int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT tuple_count, dead_tuple_count FROM pgstattuple('embeddings')").Scan(&live, &dead))
	assert.EqualValues(t, 21, live)
	assert.Zero(t, dead, "rows inserted and undone")
	known, err := v.KnownHashes(ctx, [][]byte{[]byte("storm"), []byte("new-19")})
	require.NoError(t, err)
	assert.Len(t, known, 2)
}

// EnsureIndex builds the index with the configured parameters and reports
// those of the index as stored: an index built earlier with others, or
// with none (pgvector's defaults), is kept and reported as it is, which is
// what the central warns about.
func TestVectorDB_EnsureIndexReportsTheStoredParameters(t *testing.T) {
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	got, err := openVectors(t, dsn).EnsureIndex(ctx)
	require.NoError(t, err)
	assert.Equal(t, storage.HNSWConfig{M: 16, EfConstruction: 32, EfSearch: storage.DefaultHNSWEfSearch}, got, "the defaults")

	conn := connect(t, dsn)
	var opts []string
	require.NoError(t, conn.QueryRow(ctx, `SELECT reloptions FROM pg_class WHERE relname = 'idx_embeddings_embedding_hnsw'`).Scan(&opts))
	assert.ElementsMatch(t, []string{"m=16", "ef_construction=32"}, opts, "the options are stated, not left to pgvector's defaults")

	other, err := storage.OpenVectors(ctx, storage.Config{DatabaseURL: dsn}, storage.HNSWConfig{M: 8, EfConstruction: 40})
	require.NoError(t, err)
	t.Cleanup(other.Close)
	got, err = other.EnsureIndex(ctx)
	require.NoError(t, err)
	assert.Equal(t, 16, got.M, "an existing index is kept")
	assert.Equal(t, 32, got.EfConstruction)

	_, err = conn.Exec(ctx, `DROP INDEX idx_embeddings_embedding_hnsw`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE INDEX idx_embeddings_embedding_hnsw ON embeddings USING hnsw (embedding halfvec_cosine_ops)`)
	require.NoError(t, err)
	got, err = other.EnsureIndex(ctx)
	require.NoError(t, err)
	assert.Equal(t, 16, got.M, "an index without options has pgvector's defaults")
	assert.Equal(t, 64, got.EfConstruction)
}

// A search the server refuses (here a query of the wrong dimension) gives
// its connection back: with a pool of one, a connection kept by the failed
// search would leave the next ones waiting until their deadline.
func TestVectorDB_FailedSearchGivesItsConnectionBack(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, _ := migratedDB(t)
	v, err := storage.OpenVectors(ctx, storage.Config{DatabaseURL: dsn, MaxConns: 1}, storage.HNSWConfig{})
	require.NoError(t, err)
	t.Cleanup(v.Close)
	_, err = v.EnsureIndex(ctx)
	require.NoError(t, err)
	u := randomUnit(rand.New(rand.NewPCG(5, 6)))
	_, err = v.Write(ctx, []storage.Vector{{ContentHash: []byte("doc"), Embedding: pgvector.NewVector(u)}},
		[]storage.Link{{RecordRef: testRef(wire.KindRemediation, "doc"), ContentHash: []byte("doc"), OccurredAt: time.Now()}})
	require.NoError(t, err)

	_, err = v.Search(ctx, pgvector.NewVector(u[:3]), storage.SearchFilter{}, 1)
	require.ErrorContains(t, err, "dimensions")
	for range 3 {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := v.Search(ctx, pgvector.NewVector(u), storage.SearchFilter{}, 1)
		cancel()
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, "doc", got[0].ID)
	}
}
