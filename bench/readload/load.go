package readload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// Defaults for the zero values of LoadConfig.
const (
	DefaultRows      = 10_000_000
	DefaultDays      = 90
	DefaultChunkRows = 200_000
)

// LoadConfig configures Load.
type LoadConfig struct {
	// DatabaseURL is the database to migrate and fill; its audit tables
	// must be empty. Required.
	DatabaseURL string
	// Rows is how many rows to write, both tables together. Zero: DefaultRows.
	Rows int64
	// Days is the span of the event times, ending at End. Zero: DefaultDays.
	Days int
	// End is the newest event time. Zero: now.
	End time.Time
	// Seed makes the data. Zero is a seed like any other.
	Seed uint64
	// ChunkRows is about how many rows each COPY writes. Zero: DefaultChunkRows.
	ChunkRows int
	// Progress receives a line per chunk. Nil: none.
	Progress io.Writer
	// Version is the migration to load at. Zero applies them all: the audit
	// tables are partitioned by event time (migration 7, laid out by
	// ArrangePartitions) and every row's key is copied into audit_ids. An
	// earlier version loads that release's schema: 6 is the plain tables,
	// without audit_ids, that migration 7 upgrades.
	Version uint
	// Period is the span of one partition (with partitions). Zero:
	// storage.PeriodMonth.
	Period storage.Period
}

// LoadResult says what Load wrote and how long each step took.
type LoadResult struct {
	Remediations, RemediationRows, WorkflowRows int64
	// Keys is how many keys were copied into audit_ids: every row, or none
	// before migration 7.
	Keys int64
	// Start and End are the span of the remediations' first event times
	// (the last ones' later audits follow End by minutes).
	Start, End time.Time
	// Migrate includes laying out the partitions.
	Migrate, Copy, Vacuum time.Duration
}

// Load migrates the database (to cfg.Version), lays out its partitions from
// the oldest event time's period through the one after now (with
// partitions), COPYs cfg.Rows rows into the audit tables in time order
// (each chunk in one transaction per table, the two tables at once on two
// connections: the chunk's keys into audit_ids, then its rows), then VACUUM
// ANALYZEs them, as autovacuum would have on a table that grew over 90 days
// (visibility map, hint bits, statistics).
func Load(ctx context.Context, cfg LoadConfig) (*LoadResult, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("readload: DatabaseURL is required")
	}
	rows := cmp.Or(cfg.Rows, DefaultRows)
	span := time.Duration(cmp.Or(cfg.Days, DefaultDays)) * 24 * time.Hour
	end := cfg.End
	if end.IsZero() {
		end = time.Now()
	}
	start, chunkRows := end.Add(-span), cmp.Or(cfg.ChunkRows, DefaultChunkRows)
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}

	res := &LoadResult{Start: start, End: end}
	t0 := time.Now()
	migrate := storage.Migrate
	if cfg.Version > 0 {
		migrate = func(ctx context.Context, url string) error { return storage.MigrateTo(ctx, url, cfg.Version) }
	}
	if err := migrate(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	var conns [2]*pgx.Conn
	for i := range conns {
		c, err := pgx.Connect(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("readload: connect: %w", err)
		}
		defer c.Close(context.WithoutCancel(ctx))
		conns[i] = c
	}
	var stored bool
	if err := conns[0].QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM remediation_audit)
		OR EXISTS (SELECT 1 FROM workflow_audit)`).Scan(&stored); err != nil {
		return nil, fmt.Errorf("readload: %w", err)
	}
	if stored {
		return nil, errors.New("readload: the audit tables are not empty: load into a new database")
	}
	var keyed bool
	if err := conns[0].QueryRow(ctx, `SELECT to_regclass('audit_ids') IS NOT NULL`).Scan(&keyed); err != nil {
		return nil, fmt.Errorf("readload: %w", err)
	}
	if keyed {
		period := cmp.Or(cfg.Period, storage.PeriodMonth)
		latest := end
		if now := time.Now(); now.After(latest) {
			latest = now
		}
		if err := ArrangePartitions(ctx, cfg.DatabaseURL, start, period.Next(period.Next(latest)), period); err != nil {
			return nil, err
		}
	}
	res.Migrate = time.Since(t0)

	g := newGenerator(cfg.Seed)
	t0 = time.Now()
	var (
		written int64
		rem     []remRow
		wf      []wfRow
	)
	for written < rows {
		rem, wf = rem[:0], wf[:0]
		for n := 0; n < chunkRows && written < rows; {
			// Remediations begin at an even pace over the span, so rows
			// arrive in about event-time order, as a live system stores them.
			at := start.Add(time.Duration(float64(span) * float64(written) / float64(rows)))
			k := g.remediation(at, &rem, &wf)
			n += k
			written += int64(k)
			res.Remediations++
		}
		var eg errgroup.Group
		eg.Go(func() error {
			return copyChunk(ctx, conns[0], keyed, &remKeys{rows: rem, i: -1}, "remediation_audit", remediationColumns,
				&remSource{rows: rem, i: -1})
		})
		eg.Go(func() error {
			return copyChunk(ctx, conns[1], keyed, &wfKeys{rows: wf, i: -1}, "workflow_audit", workflowColumns,
				&wfSource{rows: wf, i: -1})
		})
		if err := eg.Wait(); err != nil {
			return res, fmt.Errorf("readload: copy: %w", err)
		}
		res.RemediationRows += int64(len(rem))
		res.WorkflowRows += int64(len(wf))
		if keyed {
			res.Keys += int64(len(rem) + len(wf))
		}
		el := time.Since(t0)
		fmt.Fprintf(progress, "readload: %d/%d rows in %s (%.0f rows/s)\n", written, rows,
			el.Round(time.Second), float64(written)/el.Seconds())
	}
	res.Copy = time.Since(t0)

	t0 = time.Now()
	fmt.Fprintln(progress, "readload: VACUUM ANALYZE")
	stmts := []string{"VACUUM ANALYZE remediation_audit", "VACUUM ANALYZE workflow_audit"}
	if keyed {
		stmts = append(stmts, "VACUUM ANALYZE audit_ids")
	}
	for _, stmt := range stmts {
		if _, err := conns[0].Exec(ctx, stmt); err != nil {
			return res, fmt.Errorf("readload: %s: %w", stmt, err)
		}
	}
	res.Vacuum = time.Since(t0)
	return res, nil
}

// copyChunk COPYs one chunk of one table in one transaction: its keys into
// audit_ids first when keyed (as storage's COPY path does), then its rows.
func copyChunk(ctx context.Context, conn *pgx.Conn, keyed bool, keys pgx.CopyFromSource, table string,
	columns []string, rows pgx.CopyFromSource) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if keyed {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_ids"}, auditIDColumns, keys); err != nil {
				return fmt.Errorf("audit_ids: %w", err)
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, columns, rows); err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		return nil
	})
}

// The columns of the audit tables and of audit_ids, as storage writes them.
var (
	remediationColumns = []string{"id", "remediation_request_id", "alert_name", "namespace", "cluster",
		"priority", "action_type", "status", "confidence", "reasoning", "target_resource", "duration_ms",
		"error_message", "created_at", "executed_at", "service_account", "received_at"}
	workflowColumns = []string{"id", "workflow_id", "step_name", "step_status", "duration_ms",
		"error_message", "executed_at", "service_account", "received_at"}
	auditIDColumns = []string{"id", "service_account", "kind", "event_time"}
)

func text(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

func int4(v int32) pgtype.Int4 { return pgtype.Int4{Int32: v, Valid: v >= 0} }

// remSource feeds remRows to CopyFrom, one reused slice of values.
type remSource struct {
	rows []remRow
	i    int
	vals []any
}

func (s *remSource) Next() bool { s.i++; return s.i < len(s.rows) }
func (s *remSource) Err() error { return nil }
func (s *remSource) Values() ([]any, error) {
	r := &s.rows[s.i]
	s.vals = append(s.vals[:0], r.id, r.rr, text(r.alert), text(r.ns), text(r.cluster), text(r.prio),
		text(r.action), text(r.status), pgtype.Float8{Float64: r.conf, Valid: r.conf >= 0}, text(r.reason),
		text(r.target), int4(r.dur), text(r.errMsg), r.created,
		pgtype.Timestamptz{Time: r.executed, Valid: !r.executed.IsZero()}, r.sa, r.received)
	return s.vals, nil
}

// wfSource is remSource for wfRows.
type wfSource struct {
	rows []wfRow
	i    int
	vals []any
}

func (s *wfSource) Next() bool { s.i++; return s.i < len(s.rows) }
func (s *wfSource) Err() error { return nil }
func (s *wfSource) Values() ([]any, error) {
	r := &s.rows[s.i]
	s.vals = append(s.vals[:0], r.id, r.wfID, r.step, r.stepStatus, int4(r.dur), text(r.errMsg), r.executed,
		r.sa, r.received)
	return s.vals, nil
}

// remKeys feeds the audit_ids keys of remRows to CopyFrom: the row's
// partition key is its event time.
type remKeys struct {
	rows []remRow
	i    int
	vals []any
}

func (s *remKeys) Next() bool { s.i++; return s.i < len(s.rows) }
func (s *remKeys) Err() error { return nil }
func (s *remKeys) Values() ([]any, error) {
	r := &s.rows[s.i]
	s.vals = append(s.vals[:0], r.id, r.sa, string(wire.KindRemediation), r.created)
	return s.vals, nil
}

// wfKeys is remKeys for wfRows.
type wfKeys struct {
	rows []wfRow
	i    int
	vals []any
}

func (s *wfKeys) Next() bool { s.i++; return s.i < len(s.rows) }
func (s *wfKeys) Err() error { return nil }
func (s *wfKeys) Values() ([]any, error) {
	r := &s.rows[s.i]
	s.vals = append(s.vals[:0], r.id, r.sa, string(wire.KindWorkflow), r.executed)
	return s.vals, nil
}
