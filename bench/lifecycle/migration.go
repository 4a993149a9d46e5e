package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/bench/loadgen"
	"github.com/kubernaut/datastorage/bench/readload"
	"github.com/kubernaut/datastorage/storage"
)

// unpartitionedVersion is the last migration before the time partitions:
// plain audit tables, no audit_ids.
const unpartitionedVersion = 6

// Migration is migration 7 on the plain tables of version 6 holding the
// same rows as the partitioned load, run twice on copies of one database.
type Migration struct {
	RemediationRows, WorkflowRows int64
	// Copy is the COPY of the rows; Clone the file copy of the loaded
	// database for the second run.
	Copy, Clone    time.Duration
	AsIs, Prebuilt MigrationRun
}

// MigrationRun is one run of storage.Migrate with a writer inserting single
// rows meanwhile.
type MigrationRun struct {
	// Prebuild is the CREATE UNIQUE INDEX CONCURRENTLY of both tables'
	// new keys before the migration (zero as is); PrebuildWait the longest
	// insert meanwhile.
	Prebuild, PrebuildWait time.Duration
	// Migrate is storage.Migrate's duration; MaxWait the longest insert
	// that overlapped it.
	Migrate, MaxWait time.Duration
	// Inserts is how many single-row inserts succeeded over the run and
	// Failed how many did not (FirstError says why).
	Inserts, Failed int
	FirstError      string
	// Keys is audit_ids' rows after the migration: every row stored then.
	Keys int64
	// Reused says the history partitions' primary keys are the indexes
	// built beforehand (both tables).
	Reused bool
}

// measureMigration loads the rows into a database at version 6, copies it,
// and runs the migration on each: as is, and after building the new keys
// concurrently.
func measureMigration(ctx context.Context, cfg Config) (*Migration, error) {
	dsn, drop, err := loadgen.CreateDatabase(ctx, cfg.DatabaseURL, "lifecycle_v6")
	if err != nil {
		return nil, fmt.Errorf("lifecycle: %w", err)
	}
	defer drop()
	progressf(cfg, "loading %d rows into the plain tables of migration %d", cfg.Rows, unpartitionedVersion)
	res, err := readload.Load(ctx, cfg.loadConfig(dsn, unpartitionedVersion))
	if err != nil {
		return nil, err
	}
	m := &Migration{RemediationRows: res.RemediationRows, WorkflowRows: res.WorkflowRows, Copy: res.Copy}
	t0 := time.Now()
	prebuiltDSN, dropPrebuilt, err := loadgen.CopyDatabase(ctx, cfg.DatabaseURL, dsn, "lifecycle_v6_prebuilt")
	if err != nil {
		return m, fmt.Errorf("lifecycle: %w", err)
	}
	defer dropPrebuilt()
	m.Clone = time.Since(t0)

	progressf(cfg, "migrating as is")
	if m.AsIs, err = migrateUnderWrites(ctx, cfg, dsn, false); err != nil {
		return m, err
	}
	drop() // the disk for the second run
	progressf(cfg, "migrating with the keys built beforehand")
	if m.Prebuilt, err = migrateUnderWrites(ctx, cfg, prebuiltDSN, true); err != nil {
		return m, err
	}
	return m, nil
}

// historyKeys are the unique indexes migration 7 reuses when they exist:
// the partitioned tables' keys, built on the plain tables.
var historyKeys = []string{
	`CREATE UNIQUE INDEX CONCURRENTLY remediation_audit_history_key ON remediation_audit (id, service_account, created_at)`,
	`CREATE UNIQUE INDEX CONCURRENTLY workflow_audit_history_key ON workflow_audit (id, service_account, executed_at)`,
}

// migrateUnderWrites runs storage.Migrate on the database at dsn (after
// building the history keys if prebuild) while an inserter writes.
func migrateUnderWrites(ctx context.Context, cfg Config, dsn string, prebuild bool) (MigrationRun, error) {
	var run MigrationRun
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return run, fmt.Errorf("lifecycle: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := checkpoint(ctx, conn); err != nil {
		return run, err
	}
	ins, err := startInserter(ctx, dsn, cfg.InsertRate)
	if err != nil {
		return run, err
	}
	defer ins.stop()
	if err := sleep(ctx, time.Second); err != nil { // inserts before, for comparison
		return run, err
	}

	var prebuilt []uint32
	var p0, p1 time.Time
	if prebuild {
		p0 = time.Now()
		for _, stmt := range historyKeys {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				return run, fmt.Errorf("lifecycle: %s: %w", stmt, err)
			}
		}
		p1 = time.Now()
		if prebuilt, err = indexOIDs(ctx, conn, "remediation_audit_history_key", "workflow_audit_history_key"); err != nil {
			return run, err
		}
	}
	m0 := time.Now()
	if err := storage.Migrate(ctx, dsn); err != nil {
		return run, err
	}
	m1 := time.Now()
	if err := sleep(ctx, time.Second); err != nil { // and after
		return run, err
	}
	samples := ins.stop()
	run.Migrate, run.MaxWait = m1.Sub(m0), ins.maxWait(m0, m1)
	if prebuild {
		run.Prebuild, run.PrebuildWait = p1.Sub(p0), ins.maxWait(p0, p1)
	}
	for _, s := range samples {
		if s.err != nil {
			if run.Failed++; run.FirstError == "" {
				run.FirstError = s.err.Error()
			}
		} else {
			run.Inserts++
		}
	}
	return run, finishRun(ctx, conn, &run, prebuilt)
}

// finishRun reads the keys the migration copied and whether it kept the
// indexes built beforehand.
func finishRun(ctx context.Context, conn *pgx.Conn, run *MigrationRun, prebuilt []uint32) error {
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_ids`).Scan(&run.Keys); err != nil {
		return fmt.Errorf("lifecycle: keys: %w", err)
	}
	if prebuilt == nil {
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT conindid::int8 FROM pg_constraint
		WHERE conname IN ('remediation_audit_history_pkey', 'workflow_audit_history_pkey') ORDER BY conname`)
	if err != nil {
		return fmt.Errorf("lifecycle: history keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("lifecycle: history keys: %w", err)
	}
	run.Reused = len(keys) == 2 && uint32(keys[0]) == prebuilt[0] && uint32(keys[1]) == prebuilt[1]
	return nil
}

// indexOIDs are the OIDs of the named indexes, in order.
func indexOIDs(ctx context.Context, conn *pgx.Conn, names ...string) ([]uint32, error) {
	out := make([]uint32, len(names))
	for i, n := range names {
		var oid int64
		if err := conn.QueryRow(ctx, `SELECT $1::text::regclass::oid::int8`, n).Scan(&oid); err != nil {
			return nil, fmt.Errorf("lifecycle: index %s: %w", n, err)
		}
		out[i] = uint32(oid)
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
