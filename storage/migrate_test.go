package storage_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
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
		"idx_remediation_audit_action_created_at",
		"idx_remediation_audit_alert_created_at",
		"idx_remediation_audit_cluster_created_at",
		"idx_remediation_audit_namespace_created_at",
		"idx_remediation_audit_request_created_at",
		"idx_remediation_audit_status_created_at",
		"idx_remediation_audit_unfiltered_created_at",
		"idx_remediation_audit_writer_created_at",
		"idx_workflow_audit_step_executed_at",
		"idx_workflow_audit_step_status_executed_at",
		"idx_workflow_audit_unfiltered_executed_at",
		"idx_workflow_audit_workflow_executed_at",
		"idx_workflow_audit_writer_executed_at",
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
		WHERE table_schema = 'public' AND data_type = 'character varying'
		AND table_name NOT IN (SELECT inhrelid::regclass::text FROM pg_inherits)`)
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

func TestMigrate_UpgradeGivesExistingRowsTheirWriter(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.MigrateTo(ctx, dsn, 3)) // the schema before records had owners
	conn := connect(t, dsn)
	const other = "kubernaut-system/workflowexecution-controller-sa"
	for _, stmt := range []string{
		`INSERT INTO remediation_audit (id, remediation_request_id, created_at, service_account, received_at)
			VALUES ('r1', 'rr-1', now(), '` + testSA + `', now()), ('r2', 'rr-2', now(), '` + testSA + `', now())`,
		`INSERT INTO workflow_audit (id, workflow_id, step_name, step_status, executed_at, service_account, received_at)
			VALUES ('w1', 'wf-1', 's', 'ok', now(), '` + other + `', now())`,
		`INSERT INTO embedding_outbox (remediation_ids, workflow_ids) VALUES ('{r1,r2}', '{}'), ('{}', '{w1}'), ('{gone}', '{}')`,
		`INSERT INTO audit_embeddings (audit_id, kind, content_hash, occurred_at)
			VALUES ('r1', 'remediation', 'h', now()), ('w1', 'workflow', 'h', now()), ('lost', 'remediation', 'h', now())`,
	} {
		_, err := conn.Exec(ctx, stmt)
		require.NoError(t, err)
	}

	require.NoError(t, storage.Migrate(ctx, dsn))

	rows, err := conn.Query(ctx, `SELECT cardinality(remediation_ids) + cardinality(workflow_ids), service_account
		FROM embedding_outbox ORDER BY id`)
	require.NoError(t, err)
	type entry struct {
		n  int
		sa string
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entry, error) {
		var e entry
		return e, r.Scan(&e.n, &e.sa)
	})
	require.NoError(t, err)
	assert.Equal(t, []entry{{2, testSA}, {1, other}, {1, ""}}, entries, "backlog entries name their writer")

	rows, err = conn.Query(ctx, `SELECT audit_id || '=' || service_account FROM audit_embeddings ORDER BY 1`)
	require.NoError(t, err)
	links, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"lost=", "r1=" + testSA, "w1=" + other}, links, "links take their writer from the audit tables")

	// The same IDs are now free for another writer; the old rows are intact.
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	st, err := db.WriteBatch(ctx, "kubernaut-system/intruder-sa", []wire.Record{{ID: "r1", Kind: wire.KindRemediation,
		ReceivedAt: time.Now(), Remediation: &wire.RemediationAudit{RemediationRequestID: "forged"}}})
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{wire.StatusPersisted}, st)
	st, err = db.WriteBatch(ctx, testSA, []wire.Record{{ID: "r1", Kind: wire.KindRemediation,
		ReceivedAt: time.Now(), Remediation: &wire.RemediationAudit{RemediationRequestID: "retry"}}})
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{wire.StatusDuplicate}, st, "the owner's retry of an old record is still a duplicate")
	recs, err := db.Records(ctx, []storage.RecordRef{{Kind: wire.KindRemediation, ServiceAccount: testSA, ID: "r1"}})
	require.NoError(t, err)
	assert.Equal(t, "rr-1", recs[storage.RecordRef{Kind: wire.KindRemediation, ServiceAccount: testSA, ID: "r1"}].Remediation.RemediationRequestID)
}

// auditIndexes lists the indexes of the audit tables with their definitions.
func auditIndexes(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(testContext(t), `SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
		AND tablename IN ('remediation_audit', 'workflow_audit') ORDER BY indexname`)
	require.NoError(t, err)
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return defs
}

func TestMigrate_DownMigrationsRestoreTheIndexesOfEachVersion(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)
	conn := connect(t, dsn)
	require.NoError(t, storage.MigrateTo(ctx, dsn, 5))
	at5 := auditIndexes(t, conn)
	require.NoError(t, storage.MigrateTo(ctx, dsn, 6))
	at6 := auditIndexes(t, conn)
	require.NotEqual(t, at5, at6)
	require.NoError(t, storage.MigrateTo(ctx, dsn, 7))
	at7 := auditIndexes(t, conn)

	require.NoError(t, storage.Migrate(ctx, dsn))
	for _, step := range []struct {
		file string
		want []string
	}{
		{"migrations/0008_legal_holds.down.sql", at7},
		{"migrations/0007_time_partitions.down.sql", at6},
		{"migrations/0006_read_indexes.down.sql", at5},
	} {
		down, err := storage.MigrationFiles.ReadFile(step.file)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, string(down))
		require.NoError(t, err, step.file)
		assert.Equal(t, step.want, auditIndexes(t, conn), step.file)
	}
}

// An installation with unpartitioned tables (the 0001–0003 schema) and
// rows in them: after 0007 every row is there once, unchanged, in the
// history partition, with its key in audit_ids; a retry of an old record
// (an Idempotency-Key ID among them) is a duplicate even when it brings a
// new event time; new writes go on, into later partitions too.
func TestMigrate_PartitionsAnExistingInstallationWithoutLosingARow(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.MigrateTo(ctx, dsn, 3))
	conn := connect(t, dsn)
	const n = 20_000
	keyed := wire.IDForKey(testSA, wire.KindRemediation, "order-42")
	for _, stmt := range []string{
		`INSERT INTO remediation_audit (id, remediation_request_id, alert_name, confidence, created_at, service_account, received_at)
			SELECT 'audit-' || g, 'rr-' || (g % 500), CASE WHEN g % 3 = 0 THEN 'HighCPU' END, (g % 100) / 100.0,
				now() - g * interval '1 minute', '` + testSA + `', now() - g * interval '1 minute'
			FROM generate_series(1, ` + strconv.Itoa(n) + `) g`,
		`INSERT INTO remediation_audit (id, remediation_request_id, created_at, service_account, received_at)
			VALUES ('` + keyed + `', 'rr-keyed', now() - interval '40 days', '` + testSA + `', now() - interval '40 days')`,
		`INSERT INTO workflow_audit (id, workflow_id, step_name, step_status, executed_at, service_account, received_at)
			SELECT 'audit-w' || g, 'wf-' || (g % 300), 'step', 'ok', now() - g * interval '1 minute', '` + testSA + `', now()
			FROM generate_series(1, ` + strconv.Itoa(n) + `) g`,
	} {
		_, err := conn.Exec(ctx, stmt)
		require.NoError(t, err)
	}
	digest := func(table string) string {
		var d string
		require.NoError(t, conn.QueryRow(ctx, `SELECT md5(string_agg((to_jsonb(t) - 'ledger_batch')::text, '|' ORDER BY t.id)) FROM `+table+` t`).Scan(&d))
		return d
	}
	remBefore, wfBefore := digest("remediation_audit"), digest("workflow_audit")

	require.NoError(t, storage.Migrate(ctx, dsn))

	assert.Equal(t, remBefore, digest("remediation_audit"), "every remediation row, unchanged")
	assert.Equal(t, wfBefore, digest("workflow_audit"), "every workflow row, unchanged")
	var keys, elsewhere int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM audit_ids`).Scan(&keys))
	assert.Equal(t, 2*n+1, keys, "one key per row")
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM remediation_audit
		WHERE tableoid <> 'remediation_audit_history'::regclass`).Scan(&elsewhere))
	assert.Zero(t, elsewhere)

	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	parts, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	_, err = db.EnsurePartitions(ctx, parts[0].To.AddDate(0, 1, 0), storage.PeriodMonth)
	require.NoError(t, err)
	later := parts[0].To.Add(time.Hour)
	st, err := db.WriteBatch(ctx, testSA, []wire.Record{
		{ID: keyed, Kind: wire.KindRemediation, ReceivedAt: later, Remediation: &wire.RemediationAudit{RemediationRequestID: "retry"}},
		{ID: "audit-7", Kind: wire.KindRemediation, ReceivedAt: later, Remediation: &wire.RemediationAudit{RemediationRequestID: "retry"}},
		{ID: newID(), Kind: wire.KindRemediation, ReceivedAt: later, Remediation: &wire.RemediationAudit{RemediationRequestID: "new"}},
	})
	require.NoError(t, err)
	assert.Equal(t, []wire.ItemStatus{wire.StatusDuplicate, wire.StatusDuplicate, wire.StatusPersisted}, st)
	var total int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM remediation_audit`).Scan(&total))
	assert.Equal(t, n+2, total)
}

// schemaObjects lists the tables, functions and triggers of the public
// schema, partitions left out (EnsurePartitions adds them at any version).
func schemaObjects(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(testContext(t), `
		SELECT 'table ' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
			AND relkind IN ('r', 'p') AND NOT relispartition
		UNION ALL SELECT 'function ' || oid::regprocedure::text FROM pg_proc
			WHERE pronamespace = 'public'::regnamespace AND prokind = 'f'
			AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = pg_proc.oid AND d.deptype = 'e')
		UNION ALL SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal
		ORDER BY 1`)
	require.NoError(t, err)
	objects, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return objects
}

func TestMigrate_LedgerAndLegalHoldsDownRemoveTheirTablesAndEveryTrigger(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)
	conn := connect(t, dsn)
	require.NoError(t, storage.MigrateTo(ctx, dsn, 7))
	at7 := schemaObjects(t, conn)

	require.NoError(t, storage.Migrate(ctx, dsn))
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	parts, err := db.Partitions(ctx, wire.KindWorkflow)
	require.NoError(t, err)
	created, err := db.EnsurePartitions(ctx, parts[0].To.AddDate(0, 1, 0), storage.PeriodMonth)
	require.NoError(t, err)
	require.NotEmpty(t, created, "partitions with triggers of their own")
	_, err = db.PlaceHold(ctx, newHold(wire.KindWorkflow, "wf-1", 0))
	require.NoError(t, err)
	require.Contains(t, schemaObjects(t, conn), "table legal_holds")

	// Down through the replicas' table (0010), the ledger (0009), then the holds.
	down, err := storage.MigrationFiles.ReadFile("migrations/0010_central_replicas.down.sql")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, string(down))
	require.NoError(t, err)
	require.NotContains(t, schemaObjects(t, conn), "table central_replicas")
	down, err = storage.MigrationFiles.ReadFile("migrations/0009_ledger.down.sql")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, string(down))
	require.NoError(t, err)
	for _, o := range schemaObjects(t, conn) {
		assert.NotContains(t, o, "tamper_guard", "the append-only guard is gone from every table")
		assert.NotContains(t, o, "ledger")
	}
	down, err = storage.MigrationFiles.ReadFile("migrations/0008_legal_holds.down.sql")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, string(down))
	require.NoError(t, err)
	assert.Equal(t, at7, schemaObjects(t, conn))
	var triggers int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal`).Scan(&triggers))
	assert.Zero(t, triggers, "none left on any partition")
	_, err = conn.Exec(ctx, "TRUNCATE remediation_audit, workflow_audit")
	require.NoError(t, err)
}
