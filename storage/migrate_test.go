package storage_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/pgtest"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// latestMigration is the highest version among the embedded migrations.
func latestMigration(t *testing.T) int {
	t.Helper()
	entries, err := storage.MigrationFiles.ReadDir("migrations")
	require.NoError(t, err)
	latest := 0
	for _, e := range entries {
		var v int
		_, err := fmt.Sscanf(e.Name(), "%d_", &v)
		require.NoError(t, err, e.Name())
		latest = max(latest, v)
	}
	return latest
}

func requireSchemaAtVersion1(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	ctx := testContext(t)
	var (
		version int
		dirty   bool
	)
	require.NoError(t, conn.QueryRow(ctx, "SELECT version, dirty FROM schema_migrations").Scan(&version, &dirty))
	assert.Equal(t, latestMigration(t), version)
	assert.False(t, dirty)

	var tables []string
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'
		AND tablename IN ('remediation_audit', 'workflow_audit') ORDER BY 1`)
	require.NoError(t, err)
	tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"remediation_audit", "workflow_audit"}, tables)

	rows, err = conn.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = 'public'
		AND tablename IN ('remediation_audit', 'workflow_audit') ORDER BY 1`)
	require.NoError(t, err)
	indexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{
		"idx_remediation_audit_alert_name",
		"idx_remediation_audit_cluster_namespace",
		"idx_remediation_audit_created_at",
		"idx_remediation_audit_remediation_request_id",
		"idx_workflow_audit_executed_at",
		"idx_workflow_audit_workflow_id",
		"remediation_audit_pkey",
		"workflow_audit_pkey",
	}, indexes)
}

func TestMigrate_SecondRunHasNothingToDo(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)

	require.NoError(t, storage.Migrate(ctx, dsn))
	require.NoError(t, storage.Migrate(ctx, dsn), "a second Migrate must return nil")

	requireSchemaAtVersion1(t, connect(t, dsn))
}

func TestMigrate_ConcurrentReplicasAllSucceed(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)

	const replicas = 4
	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			<-start
			errs[i] = storage.Migrate(ctx, dsn)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "replica %d", i)
	}
	requireSchemaAtVersion1(t, connect(t, dsn))
}

func TestMigrate_UnreachableDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	err := storage.Migrate(testContext(t), closedPortDSN(t))
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrUnavailable)
}

func TestMigrate_DownMigrationRemovesTheTables(t *testing.T) {
	t.Parallel()
	// The down file is embedded too; check it is valid SQL by running it by hand.
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(ctx, dsn))
	conn := connect(t, dsn)
	down, err := storage.MigrationFiles.ReadFile("migrations/0001_audit_tables.down.sql")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, string(down))
	require.NoError(t, err)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'
		AND tablename IN ('remediation_audit', 'workflow_audit')`).Scan(&n))
	assert.Zero(t, n)
}

func TestMigrate_ColumnSizesMatchWireLimits(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(ctx, dsn))

	rows, err := connect(t, dsn).Query(ctx, `SELECT table_name || '.' || column_name,
		coalesce(character_maximum_length, -1) FROM information_schema.columns
		WHERE table_schema = 'public' AND data_type = 'character varying'`)
	require.NoError(t, err)
	got := map[string]int{}
	var (
		column string
		size   int
	)
	_, err = pgx.ForEachRow(rows, []any{&column, &size}, func() error {
		got[column] = size
		return nil
	})
	require.NoError(t, err)

	want := map[string]int{
		"remediation_audit.id":                     wire.MaxIDLen,
		"remediation_audit.remediation_request_id": wire.MaxNameLen,
		"remediation_audit.alert_name":             wire.MaxNameLen,
		"remediation_audit.namespace":              wire.MaxNameLen,
		"remediation_audit.cluster":                wire.MaxNameLen,
		"remediation_audit.priority":               wire.MaxStatusLen,
		"remediation_audit.action_type":            wire.MaxNameLen,
		"remediation_audit.status":                 wire.MaxStatusLen,
		"remediation_audit.target_resource":        wire.MaxTargetResourceLen,
		"workflow_audit.id":                        wire.MaxIDLen,
		"workflow_audit.workflow_id":               wire.MaxNameLen,
		"workflow_audit.step_name":                 wire.MaxNameLen,
		"workflow_audit.step_status":               wire.MaxStatusLen,
	}
	assert.Equal(t, want, got)
}

func TestMigrate_FailingMigrationIsAnErrorButNotUnavailable(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)
	_, err := connect(t, dsn).Exec(ctx, "CREATE TABLE workflow_audit (id int)")
	require.NoError(t, err)

	err = storage.Migrate(ctx, dsn)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "42P07", "duplicate_table from the migration")
	assert.NotErrorIs(t, err, storage.ErrUnavailable)

	var n int
	require.NoError(t, connect(t, dsn).QueryRow(ctx, `SELECT count(*) FROM pg_tables
		WHERE schemaname = 'public' AND tablename = 'remediation_audit'`).Scan(&n))
	assert.Zero(t, n, "the failed migration's transaction is rolled back whole")
}
