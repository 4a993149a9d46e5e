package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/wire"
)

// The run's audit tables are partitioned by day around now (issue 17), so
// that exactly-once is checked across partitions: before the central starts,
// the history partition migration 0007 made (empty, ending at the next month
// boundary) is replaced by one ending two days before today, followed by one
// partition per day up to the end of today. The central creates the days
// after those itself (--partition-period day --partitions-ahead 2), and the
// load's event times spread over the last eventSpread, across midnights.
const (
	historyDays       = 2                            // the history partition ends at today-2d 00:00 UTC
	eventSpread       = historyDays * 24 * time.Hour // the load's createdAt/executedAt: now minus 0 to 48 h
	partitionsAhead   = 2
	partitionInterval = 5 * time.Second
)

// auditTables are the partitioned tables, their kind and event-time column.
var auditTables = [...]struct {
	name  string
	kind  wire.Kind
	event string
}{
	{"remediation_audit", wire.KindRemediation, "created_at"},
	{"workflow_audit", wire.KindWorkflow, "executed_at"},
}

func tableOf(kind wire.Kind) (name, event string) {
	for _, t := range auditTables {
		if t.kind == kind {
			return t.name, t.event
		}
	}
	return "", ""
}

// dayPartition is the name the run gives to table's partition of day (a UTC
// midnight): the central's convention, "<table>_p<YYYYMMDD>".
func dayPartition(table string, day time.Time) string {
	return table + "_p" + day.UTC().Format("20060102")
}

// migrate applies the central's migrations (`central migrate`) to the run's
// database, so that its partitions can be arranged before the central serves.
func migrate(ctx context.Context, central, dsn string) error {
	out, err := exec.CommandContext(ctx, central, "migrate", "--database-url", dsn, "--log-level", "warn").CombinedOutput()
	if err != nil {
		return fmt.Errorf("central migrate: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dailyPartitions replaces each audit table's history partition by one
// ending historyDays before today (UTC) and adds a partition per day from
// there to the end of today. The tables must be empty. It returns the
// history partition's upper bound.
func dailyPartitions(ctx context.Context, dsn string, now time.Time) (time.Time, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	history := today.AddDate(0, 0, -historyDays)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return time.Time{}, fmt.Errorf("daily partitions: %w", err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, t := range auditTables {
			hist := pgx.Identifier{t.name + "_history"}.Sanitize()
			stmts := []string{
				fmt.Sprintf(`ALTER TABLE %s DETACH PARTITION %s`, t.name, hist),
				`DROP TABLE ` + hist,
				fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (MINVALUE) TO ('%s')`,
					hist, t.name, history.Format(time.RFC3339)),
			}
			for day := history; !day.After(today); day = day.AddDate(0, 0, 1) {
				stmts = append(stmts, fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
					pgx.Identifier{dayPartition(t.name, day)}.Sanitize(), t.name,
					day.Format(time.RFC3339), day.AddDate(0, 0, 1).Format(time.RFC3339)))
			}
			for _, s := range stmts {
				if _, err := tx.Exec(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("daily partitions: %w", err)
	}
	return history, nil
}

// PartitionReport is what the run found of the time partitions at its end.
type PartitionReport struct {
	// WithRows counts the partitions (of both tables) holding rows, by the
	// rows' tableoid; Rows is the count per partition.
	WithRows int            `json:"with_rows"`
	Rows     map[string]int `json:"rows"`
	// Ahead counts the partitions the central created after the run's own,
	// which end with today; Newest is the latest upper bound of any.
	Ahead  int       `json:"ahead"`
	Newest time.Time `json:"newest"`
}

// ErrPartitions is returned by Run when the rows did not spread over at
// least two partitions, or the central created no partition ahead: the
// run did not exercise what it claims to.
var ErrPartitions = errors.New("chaos: the run did not exercise the time partitions")

// inspectPartitions counts the rows per partition and the partitions the
// central created after ours (ours end at ownEnd).
func inspectPartitions(ctx context.Context, dsn string, ownEnd time.Time) (*PartitionReport, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("inspect partitions: %w", err)
	}
	defer conn.Close(ctx)
	rep := &PartitionReport{Rows: map[string]int{}}
	for _, t := range auditTables {
		rows, err := conn.Query(ctx, `SELECT tableoid::regclass::text, count(*) FROM `+t.name+` GROUP BY 1`)
		if err != nil {
			return nil, fmt.Errorf("inspect partitions: %w", err)
		}
		var name string
		var n int
		if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { rep.Rows[name] = n; return nil }); err != nil {
			return nil, fmt.Errorf("inspect partitions: %w", err)
		}
		// pg_get_expr prints the bounds in the session's time zone, with
		// their offset: they read back exactly.
		rows, err = conn.Query(ctx, `SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
			FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`, t.name)
		if err != nil {
			return nil, fmt.Errorf("inspect partitions: %w", err)
		}
		var to time.Time
		if _, err := pgx.ForEachRow(rows, []any{&to}, func() error {
			if to.After(ownEnd) {
				rep.Ahead++
			}
			if to.After(rep.Newest) {
				rep.Newest = to.UTC()
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("inspect partitions: %w", err)
		}
	}
	rep.WithRows = len(rep.Rows)
	return rep, nil
}

// check fails unless the rows are in two partitions or more and the
// central created partitions beyond tomorrow (ownEnd is the end of today
// when the run began).
func (p *PartitionReport) check(ownEnd time.Time) error {
	switch {
	case p.WithRows < 2:
		return fmt.Errorf("%w: rows in %d partition(s), want 2 or more", ErrPartitions, p.WithRows)
	case !p.Newest.After(ownEnd.AddDate(0, 0, 1)):
		return fmt.Errorf("%w: the newest partition ends %s: the central created none beyond tomorrow",
			ErrPartitions, p.Newest.Format(time.RFC3339))
	}
	return nil
}

// note is the report's line for the table's notes.
func (p *PartitionReport) note() string {
	names := slices.Sorted(maps.Keys(p.Rows))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " " + strconv.Itoa(p.Rows[n])
	}
	return fmt.Sprintf("partitions: rows in %d (by tableoid: %s); the central created %d ahead, the newest ending %s",
		p.WithRows, strings.Join(parts, ", "), p.Ahead, p.Newest.Format("2006-01-02"))
}
