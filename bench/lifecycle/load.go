package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/bench/readload"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// Load is the partitioned database as loaded.
type Load struct {
	RemediationRows, WorkflowRows, Keys int64
	// Copy is the COPY of the rows and their keys; Vacuum the VACUUM
	// ANALYZE after it.
	Copy, Vacuum time.Duration
	// Start and End are the span of the loaded event times: whole months.
	Start, End time.Time
	// Layout is each table's partitions, oldest first: the empty history,
	// the loaded months, and the current and next months.
	Layout map[wire.Kind][]storage.Partition
	// MonthRows is the rows of each loaded month, both tables (the
	// statistics after VACUUM).
	MonthRows []int64
	Sizes     Sizes
}

// Rows is both tables' rows.
func (l *Load) Rows() int64 { return l.RemediationRows + l.WorkflowRows }

// load fills the database at dsn with cfg.Rows over cfg.Months months.
func load(ctx context.Context, cfg Config, dsn string) (*Load, error) {
	progressf(cfg, "loading %d rows over %d months", cfg.Rows, cfg.Months)
	res, err := readload.Load(ctx, cfg.loadConfig(dsn, 0))
	if err != nil {
		return nil, err
	}
	l := &Load{RemediationRows: res.RemediationRows, WorkflowRows: res.WorkflowRows, Keys: res.Keys,
		Copy: res.Copy, Vacuum: res.Vacuum, Start: res.Start, End: res.End, Layout: map[wire.Kind][]storage.Partition{}}
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn, MaxConns: 1})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		if l.Layout[kind], err = db.Partitions(ctx, kind); err != nil {
			return nil, err
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if l.MonthRows, err = monthRows(ctx, conn, l); err != nil {
		return nil, err
	}
	if l.Sizes, err = measureSizes(ctx, conn); err != nil {
		return nil, err
	}
	return l, nil
}

// monthRows is the estimated rows of each loaded month's two partitions.
func monthRows(ctx context.Context, conn *pgx.Conn, l *Load) ([]int64, error) {
	rem, wf := l.loadedMonths(wire.KindRemediation), l.loadedMonths(wire.KindWorkflow)
	if len(rem) != len(wf) {
		return nil, fmt.Errorf("lifecycle: %d remediation and %d workflow months", len(rem), len(wf))
	}
	out := make([]int64, len(rem))
	for i := range rem {
		err := conn.QueryRow(ctx, `SELECT sum(greatest(reltuples, 0))::bigint FROM pg_class
			WHERE oid IN ($1::regclass, $2::regclass)`, rem[i].Name, wf[i].Name).Scan(&out[i])
		if err != nil {
			return nil, fmt.Errorf("lifecycle: rows of %s: %w", rem[i].Name, err)
		}
	}
	return out, nil
}

// loadedMonths is kind's partitions inside the loaded span.
func (l *Load) loadedMonths(kind wire.Kind) []storage.Partition {
	var out []storage.Partition
	for _, p := range l.Layout[kind] {
		if !p.From.Before(l.Start) && !p.To.After(l.End) {
			out = append(out, p)
		}
	}
	return out
}
