package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
)

func TestHelp_ListsTheEmbeddingFlagsWithTheirEnvironmentVariables(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, io.Discard, &stderr)
	require.True(t, errors.Is(err, flag.ErrHelp), err)
	for flagName, env := range map[string]string{
		"vector-database-url": "VECTOR_DATABASE_URL", "embedder": "DATASTORAGE_EMBEDDER",
		"embedder-url": "DATASTORAGE_EMBEDDER_URL", "embedder-model": "DATASTORAGE_EMBEDDER_MODEL",
		"embed-workers": "DATASTORAGE_EMBED_WORKERS", "embed-batch-size": "DATASTORAGE_EMBED_BATCH_SIZE",
		"hnsw-m": "DATASTORAGE_HNSW_M", "hnsw-ef-construction": "DATASTORAGE_HNSW_EF_CONSTRUCTION",
		"hnsw-ef-search": "DATASTORAGE_HNSW_EF_SEARCH",
	} {
		assert.Regexp(t, `(?s)-`+flagName+` .*?\(env `+env+`\)`, stderr.String())
	}
}

func TestMigrate_AlsoMigratesASeparateVectorDatabase(t *testing.T) {
	dsn, vdsn := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	require.NoError(t, run(context.Background(), []string{"migrate", "--database-url", dsn, "--vector-database-url", vdsn}, io.Discard, io.Discard))
	conn, err := pgx.Connect(context.Background(), vdsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var exists bool
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT to_regclass('embeddings') IS NOT NULL").Scan(&exists))
	assert.True(t, exists)
}

func TestRun_RefusesBadEmbeddingConfiguration(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	err := run(context.Background(), []string{"--database-url", dsn, "--hnsw-m", "1"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "HNSWConfig.M")
	err = run(context.Background(), []string{"--database-url", dsn, "--auth", "static", "--token-file", "/dev/null", "--embedder", "magic"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, `--embedder "magic"`)
	err = run(context.Background(), []string{"--database-url", dsn, "--auth", "static", "--token-file", "/dev/null", "--embedder", "openai"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "--embedder-url")
}
