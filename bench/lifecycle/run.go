package lifecycle

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/bench/loadgen"
)

// Report is what Run measured; a step left out or not reached is nil.
type Report struct {
	// Rows, Months and Seed are the configuration's (defaults applied).
	Rows   int64
	Months int
	Seed   uint64
	// Machine describes where it ran: CPUs, PostgreSQL, load average.
	Machine   string
	Load      *Load
	Writes    *Writes
	Drop      *Drop
	Migration *Migration
	Elapsed   time.Duration
}

// Run measures the partitions' lifecycle (see the package documentation).
// It returns what it measured before an error too.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	t0 := time.Now()
	rep := &Report{Rows: cfg.Rows, Months: cfg.Months, Seed: cfg.Seed}
	var err error
	if rep.Machine, err = machine(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	if !cfg.SkipWrites || !cfg.SkipDrop {
		err = runPartitioned(ctx, cfg, rep)
	}
	if err == nil && !cfg.SkipMigration {
		rep.Migration, err = measureMigration(ctx, cfg)
	}
	rep.Elapsed = time.Since(t0)
	if la, lerr := loadAverage(); lerr == nil {
		rep.Machine += "; load average at the end " + la
	}
	return rep, err
}

// runPartitioned loads the partitioned database, then measures the writes
// and the drop on it; both databases are dropped when it returns.
func runPartitioned(ctx context.Context, cfg Config, rep *Report) error {
	dsn, drop, err := loadgen.CreateDatabase(ctx, cfg.DatabaseURL, "lifecycle_loaded")
	if err != nil {
		return fmt.Errorf("lifecycle: %w", err)
	}
	defer drop()
	if rep.Load, err = load(ctx, cfg, dsn); err != nil {
		return err
	}
	if !cfg.SkipWrites {
		if rep.Writes, err = measureWrites(ctx, cfg, dsn, rep.Load); err != nil {
			return err
		}
	}
	if !cfg.SkipDrop {
		if rep.Drop, err = measureDrop(ctx, cfg, dsn, rep.Load); err != nil {
			return err
		}
	}
	return nil
}

// machine is the CPUs, the server's version and shared_buffers, and the
// load average now.
func machine(ctx context.Context, dsn string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("lifecycle: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var version, buffers string
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('shared_buffers')`).Scan(&version, &buffers); err != nil {
		return "", fmt.Errorf("lifecycle: server: %w", err)
	}
	m := fmt.Sprintf("%d CPUs, PostgreSQL %s (shared_buffers %s)", runtime.NumCPU(), version, buffers)
	if la, err := loadAverage(); err == nil {
		m += "; load average at the start " + la
	}
	return m, nil
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() (string, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "", fmt.Errorf("/proc/loadavg: %q", b)
	}
	return strings.Join(f[:3], " "), nil
}

// checkpoint makes the cluster write its dirty buffers now, so that a
// measurement does not pay for the previous one's.
func checkpoint(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("lifecycle: checkpoint: %w", err)
	}
	return nil
}

// Sizes are bytes on disk: the database, each partitioned table with all
// its partitions, indexes and TOAST (pg_partition_tree), and audit_ids.
type Sizes struct {
	Database, Remediation, Workflow, Keys int64
}

func measureSizes(ctx context.Context, conn *pgx.Conn) (Sizes, error) {
	var s Sizes
	err := conn.QueryRow(ctx, `SELECT pg_database_size(current_database()),
		(SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('remediation_audit')),
		(SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('workflow_audit')),
		coalesce(pg_total_relation_size(to_regclass('audit_ids')), 0)`).Scan(&s.Database, &s.Remediation, &s.Workflow, &s.Keys)
	if err != nil {
		return s, fmt.Errorf("lifecycle: sizes: %w", err)
	}
	return s, nil
}

func progressf(cfg Config, format string, args ...any) {
	fmt.Fprintf(cfg.Progress, "lifecycle: "+format+"\n", args...)
}
