package storage

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/wire"
)

// The audit tables are range-partitioned by event time (migration 0007,
// SCHEMA.md "Partitions"). The first partition, "<table>_history", runs
// from MINVALUE to a period boundary; the central creates the ones after it
// ahead of time (EnsurePartitions) and retention drops whole partitions
// (retention.go). Bounds are UTC period starts.

// Period is the span of one partition.
type Period string

const (
	PeriodMonth Period = "month"
	PeriodWeek  Period = "week" // Monday to Monday
	PeriodDay   Period = "day"
)

// ParsePeriod accepts "month", "week" or "day".
func ParsePeriod(s string) (Period, error) {
	switch p := Period(s); p {
	case PeriodMonth, PeriodWeek, PeriodDay:
		return p, nil
	}
	return "", fmt.Errorf("partition period %q: want month, week or day", s)
}

// Start is the start of the period holding t, in UTC.
func (p Period) Start(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch p {
	case PeriodMonth:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	case PeriodWeek:
		return day.AddDate(0, 0, -(int(day.Weekday())+6)%7)
	default:
		return day
	}
}

// Next is the first period boundary after t.
func (p Period) Next(t time.Time) time.Time {
	s := p.Start(t)
	switch p {
	case PeriodMonth:
		return s.AddDate(0, 1, 0)
	case PeriodWeek:
		return s.AddDate(0, 0, 7)
	default:
		return s.AddDate(0, 0, 1)
	}
}

// Partition is one time partition of an audit table: rows whose event time
// is in [From, To). From is the zero time for the history partition, which
// starts at MINVALUE.
type Partition struct {
	Kind wire.Kind
	Name string
	From time.Time
	To   time.Time
}

// partitioned lists the audit tables in a fixed order (scan.go describes
// each): partition DDL takes their locks in this order.
var partitioned = []*auditTable{auditTables[wire.KindRemediation], auditTables[wire.KindWorkflow]}

func tableOf(kind wire.Kind) (*auditTable, error) {
	if t := auditTables[kind]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// ddlLockTimeout bounds how long partition DDL waits for the parent table's
// lock. It must be short: while it waits, every writer queues behind it (a
// long export holds a lock it conflicts with). Creation runs periods ahead
// and retention daily, so giving up and trying again later costs nothing.
const ddlLockTimeout = "2s"

// Partitions lists kind's partitions, oldest first.
func (db *DB) Partitions(ctx context.Context, kind wire.Kind) ([]Partition, error) {
	const op = "storage: partitions"
	t, err := tableOf(kind)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var parts []Partition
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		parts, err = listPartitions(ctx, tx, t)
		return err
	})
	if err != nil {
		return nil, wrapErr(op, err)
	}
	return parts, nil
}

// boundRE matches a range partition's bound as pg_get_expr prints it.
var boundRE = regexp.MustCompile(`^FOR VALUES FROM \((.+)\) TO \((.+)\)$`)

// listPartitions reads the partitions of t from the catalog, the only
// record of them (DDL is transactional, so it is never out of step).
func listPartitions(ctx context.Context, tx pgx.Tx, t *auditTable) ([]Partition, error) {
	// Bounds print in the session's time zone.
	if _, err := tx.Exec(ctx, `SET LOCAL TimeZone = 'UTC'`); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass`, t.name)
	if err != nil {
		return nil, err
	}
	var parts []Partition
	var name, bound string
	_, err = pgx.ForEachRow(rows, []any{&name, &bound}, func() error {
		m := boundRE.FindStringSubmatch(bound)
		if m == nil {
			return fmt.Errorf("partition %s: unexpected bound %q", name, bound)
		}
		from, err := parseBound(m[1])
		if err != nil {
			return fmt.Errorf("partition %s: %w", name, err)
		}
		to, err := parseBound(m[2])
		if err != nil || to.IsZero() {
			return fmt.Errorf("partition %s: upper bound %q: %v", name, m[2], err)
		}
		parts = append(parts, Partition{Kind: t.kind, Name: name, From: from, To: to})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(parts, func(a, b Partition) int { return a.From.Compare(b.From) })
	return parts, nil
}

// parseBound parses one bound: MINVALUE (the zero time) or a quoted
// timestamptz in UTC.
func parseBound(s string) (time.Time, error) {
	if s == "MINVALUE" {
		return time.Time{}, nil
	}
	s = strings.Trim(s, "'")
	t, err := time.Parse("2006-01-02 15:04:05.999999-07", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bound %q: %w", s, err)
	}
	return t.UTC(), nil
}

// partitionLock serializes partition DDL across central replicas.
const partitionLock = `SELECT pg_advisory_xact_lock(hashtext('datastorage.partitions'))`

// EnsurePartitions creates the partitions of every audit table up to until:
// each new one starts where the newest ends and ends at the next boundary of
// period. Safe to call from many replicas at once (an advisory lock, and each
// run reads the catalog afresh); it returns the partitions it created. Each
// partition gets the TRUNCATE guards (guardTruncate), which
// PostgreSQL does not clone from the parent as it does the row triggers.
func (db *DB) EnsurePartitions(ctx context.Context, until time.Time, period Period) ([]Partition, error) {
	const op = "storage: ensure partitions"
	var created []Partition
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		created = created[:0]
		if _, err := tx.Exec(ctx, partitionLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+ddlLockTimeout+`'`); err != nil {
			return err
		}
		for _, t := range partitioned {
			parts, err := listPartitions(ctx, tx, t)
			if err != nil {
				return err
			}
			if len(parts) == 0 {
				return fmt.Errorf("%s has no partition: migration 0007 creates its first", t.name)
			}
			for from := parts[len(parts)-1].To; from.Before(until); {
				p := Partition{Kind: t.kind, Name: partitionName(t, from), From: from, To: period.Next(from)}
				if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
					pgx.Identifier{p.Name}.Sanitize(), t.name,
					p.From.Format(time.RFC3339Nano), p.To.Format(time.RFC3339Nano))); err != nil {
					return fmt.Errorf("create %s: %w", p.Name, err)
				}
				created = append(created, p)
				from = p.To
			}
			if err := guardTruncate(ctx, tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(op, err)
	}
	return created, nil
}

// truncateGuards are the statement-level TRUNCATE triggers each partition
// carries: the legal holds' (migration 0008) and the append-only guard's
// (0009). A statement-level trigger on a partitioned table is not cloned to
// its partitions, and does not fire for TRUNCATE of one of them.
var truncateGuards = []struct{ trigger, call string }{
	{"legal_hold_guard_truncate", "legal_hold_guard_truncate('%s')"},
	{"tamper_guard_truncate", "audit_append_only()"},
}

// guardTruncate gives each partition of t the TRUNCATE guards it lacks.
// EnsurePartitions calls it for the partitions it creates, in their
// transaction, and so also repairs any partition created by other means. A
// partition that has them costs nothing: no lock is taken.
func guardTruncate(ctx context.Context, tx pgx.Tx, t *auditTable) error {
	for _, g := range truncateGuards {
		rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_trigger g
				WHERE g.tgrelid = c.oid AND g.tgname = $2)`, t.name, g.trigger)
		if err != nil {
			return err
		}
		unguarded, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		call := g.call
		if strings.Contains(call, "%s") {
			call = fmt.Sprintf(call, t.kind)
		}
		for _, name := range unguarded {
			if _, err := tx.Exec(ctx, `CREATE TRIGGER `+g.trigger+` BEFORE TRUNCATE ON `+
				pgx.Identifier{name}.Sanitize()+` FOR EACH STATEMENT EXECUTE FUNCTION `+call); err != nil {
				return fmt.Errorf("guard %s against TRUNCATE: %w", name, err)
			}
		}
	}
	return nil
}

// partitionName is "<table>_p<YYYYMMDD>" after the partition's first day
// (with the time when it does not start at midnight).
func partitionName(t *auditTable, from time.Time) string {
	if from.Equal(from.Truncate(24 * time.Hour)) {
		return t.name + "_p" + from.Format("20060102")
	}
	return t.name + "_p" + from.Format("20060102t150405")
}

// Reads are planned over one partition at a time (SCHEMA.md "Partitions
// and reads"): PostgreSQL plans a statement on a partitioned table over
// every partition its constants cannot exclude, so a read walks the
// partitions itself, each statement bounded by one partition's range.

// span is one partition's range for reads; a zero bound is open. The
// oldest span is open below and the newest open above.
type span struct{ from, to time.Time }

// spanTTL is how long a replica reads by its list of partitions before it
// lists them again. A stale list still reads right: a partition created
// since falls in the newest span (open above), and one dropped since has no
// rows to read.
const spanTTL = time.Minute

type spanCache struct {
	mu     sync.Mutex
	byKind map[wire.Kind]spanList
}

type spanList struct {
	spans []span
	at    time.Time
}

// spans returns t's partitions as spans, oldest first.
func (db *DB) spans(ctx context.Context, t *auditTable) ([]span, error) {
	c := &db.spanCache
	c.mu.Lock()
	l, ok := c.byKind[t.kind]
	c.mu.Unlock()
	if ok && time.Since(l.at) < spanTTL {
		return l.spans, nil
	}
	parts, err := db.Partitions(ctx, t.kind)
	if err != nil {
		return nil, err
	}
	spans := make([]span, len(parts))
	for i, p := range parts {
		spans[i] = span{from: p.From, to: p.To}
	}
	if len(spans) == 0 {
		spans = []span{{}}
	}
	spans[0].from, spans[len(spans)-1].to = time.Time{}, time.Time{}
	c.mu.Lock()
	if c.byKind == nil {
		c.byKind = map[wire.Kind]spanList{}
	}
	c.byKind[t.kind] = spanList{spans: spans, at: time.Now()}
	c.mu.Unlock()
	return spans, nil
}

// clip is the part of s in [since, until) (zero bounds open), and whether
// it is not empty.
func (s span) clip(since, until time.Time) (from, to time.Time, ok bool) {
	from, to = s.from, s.to
	if !since.IsZero() && (from.IsZero() || since.After(from)) {
		from = since
	}
	if !until.IsZero() && (to.IsZero() || until.Before(to)) {
		to = until
	}
	return from, to, from.IsZero() || to.IsZero() || from.Before(to)
}

// holds reports whether s holds the instant at.
func (s span) holds(at time.Time) bool {
	return (s.from.IsZero() || !at.Before(s.from)) && (s.to.IsZero() || at.Before(s.to))
}
