package readload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// ArrangePartitions lays out the time partitions (migration 7) of a
// database whose audit tables are empty as a system running since from
// would have them: the history partition ends where from's period starts
// (it holds nothing), then one partition per period follows, created by
// storage's EnsurePartitions, until the one holding until's last instant
// (the layout ends at the first boundary at or after until). A freshly
// migrated database has one history partition ending after now instead, so
// rows loaded with older event times would all land in it.
//
// Plain DDL, for the benchmarks only: the service never moves the history
// partition's bound. Every partition the tables have is dropped first,
// which is why they must be empty.
func ArrangePartitions(ctx context.Context, databaseURL string, from, until time.Time, period storage.Period) error {
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: databaseURL, MaxConns: 2})
	if err != nil {
		return fmt.Errorf("readload: partitions: %w", err)
	}
	defer db.Close()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("readload: partitions: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var parts []storage.Partition
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		p, err := db.Partitions(ctx, kind)
		if err != nil {
			return fmt.Errorf("readload: partitions: %w", err)
		}
		parts = append(parts, p...)
	}
	historyTo := period.Start(from)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE remediation_audit, workflow_audit IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		var stored bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM remediation_audit)
			OR EXISTS (SELECT 1 FROM workflow_audit)`).Scan(&stored); err != nil {
			return err
		}
		if stored {
			return errors.New("the audit tables are not empty")
		}
		for _, p := range parts {
			if _, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{p.Name}.Sanitize()); err != nil {
				return fmt.Errorf("drop %s: %w", p.Name, err)
			}
		}
		for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
			t := tables[kind]
			if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (MINVALUE) TO ('%s')`,
				pgx.Identifier{t + "_history"}.Sanitize(), pgx.Identifier{t}.Sanitize(),
				historyTo.Format(time.RFC3339Nano))); err != nil {
				return fmt.Errorf("create %s_history: %w", t, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("readload: partitions: %w", err)
	}
	if _, err := db.EnsurePartitions(ctx, until, period); err != nil {
		return fmt.Errorf("readload: partitions: %w", err)
	}
	return nil
}
