package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/wire"
)

// The read side (issue 13): pages of a query, a remediation's timeline, one
// record by ID, the export. Every read orders a table by its event time,
// then service_account, then id (scan.go names the columns): the primary
// key is (id, service_account), so the order is total and a row's place in
// it never changes, which is what makes keyset pages stable while writes
// continue. service_account and id compare as bytes (COLLATE "C") whatever
// the database's locale, so the order is the same everywhere and a Go
// client can reproduce it. Migration 0006 holds the indexes these
// statements rely on.
//
// SQL is assembled only from the fixed table descriptions of scan.go;
// every value is a parameter.

// MaxQueryLimit is the largest AuditQuery.Limit: the API's largest page,
// 1,000, and the one row more that tells whether another page follows.
const MaxQueryLimit = 1001

// ErrInvalidQuery is wrapped by every *QueryError.
var ErrInvalidQuery = errors.New("storage: invalid query")

// QueryError is a query the storage refuses, for a reason the caller can
// show. Field names what is wrong: "kind", "limit", "since", "until",
// "after", "kinds", or a filter's API name (as FilterFields lists it).
type QueryError struct {
	Field, Reason string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("storage: invalid query: %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidQuery) true.
func (e *QueryError) Unwrap() error { return ErrInvalidQuery }

// FilterFields lists the query filters of kind by their API names, nil for
// an unknown kind:
//
//	remediation: remediationRequestID alertName cluster namespace actionType status serviceAccount
//	workflow:    workflowID stepName stepStatus serviceAccount
func FilterFields(k wire.Kind) []string {
	t := auditTables[k]
	if t == nil {
		return nil
	}
	names := make([]string, len(t.filters))
	for i, f := range t.filters {
		names[i] = f.name
	}
	return names
}

// Position is a row's place in the order of the reads: its event time,
// writer and ID.
type Position struct {
	OccurredAt     time.Time
	ServiceAccount string
	ID             string
}

// PositionOf is e's place in the order of the reads.
func PositionOf(e *wire.AuditEntry) Position {
	return Position{OccurredAt: e.OccurredAt, ServiceAccount: e.ServiceAccount, ID: e.AuditID}
}

// AuditQuery asks for one page of audits of one kind.
type AuditQuery struct {
	Kind wire.Kind // required: remediation or workflow
	// Filters maps API field names (FilterFields) to the exact value the
	// field must have; all must hold. An unknown name is refused, and so is
	// an empty value (an omitted field is not stored as "").
	Filters map[string]string
	// Since <= event time < Until; a zero bound is open. Times compare at
	// PostgreSQL's precision: microseconds, finer digits truncated.
	Since, Until time.Time
	Ascending    bool // false: newest first
	// After, when set, keeps only rows strictly after this one in the
	// query's order (the last row of the previous page).
	After *Position
	Limit int // 1..MaxQueryLimit
}

// validate checks q and returns its table.
func (q *AuditQuery) validate() (*auditTable, error) {
	t := auditTables[q.Kind]
	if t == nil {
		return nil, &QueryError{"kind", fmt.Sprintf("unknown kind %q: want %q or %q", q.Kind, wire.KindRemediation, wire.KindWorkflow)}
	}
	// Name the unknown filters in a stable order.
	names := make([]string, 0, len(q.Filters))
	for name := range q.Filters {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.ContainsFunc(t.filters, func(f filterColumn) bool { return f.name == name }) {
			return nil, &QueryError{name, fmt.Sprintf("unknown filter for %s audits: want one of %s",
				q.Kind, strings.Join(FilterFields(q.Kind), ", "))}
		}
		if err := checkValue(q.Filters[name]); err != "" {
			return nil, &QueryError{name, err}
		}
	}
	if q.Limit < 1 || q.Limit > MaxQueryLimit {
		return nil, &QueryError{"limit", fmt.Sprintf("must be between 1 and %d, got %d", MaxQueryLimit, q.Limit)}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return nil, &QueryError{"since", "must be before until"}
	}
	if a := q.After; a != nil && (a.OccurredAt.IsZero() || a.ServiceAccount == "" || a.ID == "" ||
		checkValue(a.ServiceAccount) != "" || checkValue(a.ID) != "") {
		return nil, &QueryError{"after", "not the position of a stored audit"}
	}
	return t, nil
}

// checkValue says what makes v unusable as a filter value, "" if nothing:
// PostgreSQL text holds neither NUL nor invalid UTF-8.
func checkValue(v string) string {
	switch {
	case v == "":
		return "must not be empty"
	case !utf8.ValidString(v):
		return "must be valid UTF-8"
	case strings.IndexByte(v, 0) >= 0:
		return "must not contain NUL"
	}
	return ""
}

// matchable reports whether v can equal a stored value (see checkValue).
func matchable(v string) bool { return checkValue(v) == "" }

// custom plans every read statement for its own values (an unnamed prepared
// statement, its description cached by pgx) instead of letting PostgreSQL
// switch to a generic plan after five runs: a plan chosen for an average
// value can be wrong for a very common or very rare one (statuses, action
// types and writers are skewed), and planning costs well under a
// millisecond.
const custom = pgx.QueryExecModeCacheDescribe

// QueryAudits returns one page of q: at most q.Limit audits of q.Kind
// matching every filter and the time range, in event-time order (newest
// first unless q.Ascending), after q.After when set. A refused query returns
// a *QueryError.
//
// A page under a single filter reads about q.Limit index entries. A
// combination of common values that matches few rows can read every row of
// one of them (SCHEMA.md): give ctx a deadline. When it passes, pgx sends
// the server a cancel request for the statement and drops the connection,
// so the server stops too; the error wraps ErrUnavailable.
func (db *DB) QueryAudits(ctx context.Context, q AuditQuery) ([]wire.AuditEntry, error) {
	const op = "storage: query audits"
	t, err := q.validate()
	if err != nil {
		return nil, err
	}
	spans, err := db.spans(ctx, t)
	if err != nil {
		return nil, wrapErr(op, err)
	}
	if !q.Ascending {
		spans = slices.Clone(spans)
		slices.Reverse(spans)
	}
	// One statement per partition, in the page's order, until it is full.
	out := make([]wire.AuditEntry, 0, q.Limit)
	for _, s := range spans {
		if a := q.After; a != nil && s.before(a.OccurredAt, q.Ascending) {
			continue // wholly on the far side of the cursor
		}
		pq := q
		var ok bool
		if pq.Since, pq.Until, ok = s.clip(q.Since, q.Until); !ok {
			continue
		}
		pq.Limit = q.Limit - len(out)
		sql, args := pageSQL(t, &pq)
		rows, err := db.pool.Query(ctx, sql, args...)
		if err != nil {
			return nil, wrapErr(op, err)
		}
		if out, err = appendEntries(out, rows, t); err != nil {
			return nil, wrapErr(op, err)
		}
		if len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

// before reports whether s lies wholly before a keyset position at time at
// in the page's order: every row of it comes before the position, so a page
// continuing after the position reads none of it.
func (s span) before(at time.Time, ascending bool) bool {
	if ascending {
		return !s.to.IsZero() && !s.to.After(at)
	}
	return !s.from.IsZero() && s.from.After(at)
}

// pageSQL builds the statement of a validated query. For a page under
// field = v: WHERE field = v [AND time bounds] [AND keyset] ORDER BY time,
// service_account, id LIMIT n, served by the (field, event time) index of
// migration 0006 in time order, ties sorted in groups (incremental sort).
// The keyset row comparison is preceded by its first column alone, which
// the index can use as a bound.
func pageSQL(t *auditTable, q *AuditQuery) (string, []any) {
	args := []any{custom}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args)-1)
	}
	var where []string
	for _, f := range t.filters { // fixed order: one statement text per set of filters
		if v, ok := q.Filters[f.name]; ok {
			where = append(where, f.column+" = "+param(v))
		}
	}
	if len(where) == 0 {
		where = append(where, everyRow)
	}
	if !q.Since.IsZero() {
		where = append(where, t.eventTime+" >= "+param(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, t.eventTime+" < "+param(q.Until))
	}
	cmp, dir := "<", "DESC"
	if q.Ascending {
		cmp, dir = ">", "ASC"
	}
	if a := q.After; a != nil {
		ts := param(a.OccurredAt)
		where = append(where,
			t.eventTime+" "+cmp+"= "+ts,
			"("+t.eventTime+`, service_account COLLATE "C", id COLLATE "C") `+cmp+
				" ("+ts+", "+param(a.ServiceAccount)+", "+param(a.ID)+")")
	}
	var b strings.Builder
	b.WriteString("SELECT " + t.columns + " FROM " + t.name)
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY " + orderBy(t, dir) + " LIMIT " + param(q.Limit))
	return b.String(), args
}

// everyRow is true of every stored row (received_at is a real time), and is
// the predicate of the event-time indexes (migration 0006): only statements
// that say it, the unfiltered pages and the export, can use them. A page
// under a filter then uses that field's index, which yields its matches in
// time order, instead of walking the time index and skipping non-matching
// rows: the planner's cost of that walk assumes matches spread evenly over
// time, and a value that stopped appearing a month ago (a deleted
// namespace, a retired writer) would cost a walk over a month of rows.
const everyRow = "received_at > '-infinity'"

// orderBy is the order of the reads in direction dir (ASC or DESC).
func orderBy(t *auditTable, dir string) string {
	return t.eventTime + " " + dir + `, service_account COLLATE "C" ` + dir + `, id COLLATE "C" ` + dir
}

// appendEntries appends every row to out as entries of their own.
func appendEntries(out []wire.AuditEntry, rows pgx.Rows, t *auditTable) ([]wire.AuditEntry, error) {
	s := t.newScan()
	_, err := pgx.ForEachRow(rows, s.targets(), func() error {
		out = append(out, wire.AuditEntry{})
		s.entry(&out[len(out)-1], true)
		return nil
	})
	return out, err
}

// Timeline returns the remediation_audit rows with that
// remediation_request_id, oldest first ((created_at, service_account, id)
// ascending), at most limit (> 0) of them; none when there are none.
//
// Nothing says which partitions hold a remediation, so every partition is
// read, each by its own statement served by its (remediation_request_id,
// created_at) index, all sent in one round trip. Their bounds are literals,
// so each statement is prepared once per connection and planned over its
// own partition only: one statement over the partitioned table would be
// planned over all of them every time (at 31 partitions, warm: 1.75 ms a
// timeline, against 0.48 ms for this, and 6.6 ms for one round trip per
// partition; BenchmarkTimelineAt31Partitions).
func (db *DB) Timeline(ctx context.Context, remediationRequestID string, limit int) ([]wire.AuditEntry, error) {
	const op = "storage: timeline"
	if limit < 1 {
		return nil, &QueryError{"limit", fmt.Sprintf("must be positive, got %d", limit)}
	}
	if !matchable(remediationRequestID) {
		return nil, nil
	}
	t := auditTables[wire.KindRemediation]
	spans, err := db.spans(ctx, t)
	if err != nil {
		return nil, wrapErr(op, err)
	}
	var out []wire.AuditEntry
	b := &pgx.Batch{}
	for _, s := range spans {
		b.Queue("SELECT "+t.columns+" FROM "+t.name+" WHERE remediation_request_id = $1"+s.literalBounds(t)+
			" ORDER BY "+orderBy(t, "ASC")+" LIMIT $2", remediationRequestID, limit).Query(func(rows pgx.Rows) error {
			got, err := appendEntries(nil, rows, t)
			out = append(out, got[:min(len(got), limit-len(out))]...)
			return err
		})
	}
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, wrapErr(op, err)
	}
	return out, nil
}

// literalBounds is " AND" s's bounds on t's event time as literals (times
// of our own, never input).
func (s span) literalBounds(t *auditTable) string {
	var where string
	if !s.from.IsZero() {
		where += " AND " + t.eventTime + " >= '" + s.from.UTC().Format(time.RFC3339Nano) + "'"
	}
	if !s.to.IsZero() {
		where += " AND " + t.eventTime + " < '" + s.to.UTC().Format(time.RFC3339Nano) + "'"
	}
	return where
}

// spanWhere is " AND" the bounds of [from, to) (zero: open) on t's event
// time, as parameters appended to args (which hold the statement's first
// parameters, after a leading query exec mode if any).
func spanWhere(t *auditTable, from, to time.Time, args []any) (string, []any) {
	n := len(args)
	if _, mode := args[0].(pgx.QueryExecMode); mode {
		n--
	}
	var where string
	if !from.IsZero() {
		args, n = append(args, from), n+1
		where += " AND " + t.eventTime + " >= $" + strconv.Itoa(n)
	}
	if !to.IsZero() {
		args, n = append(args, to), n+1
		where += " AND " + t.eventTime + " < $" + strconv.Itoa(n)
	}
	return where, args
}

// AuditsByID returns every writer's record of kind with this ID, normally
// one (an ID is unique per writer, not globally: DESIGN.md decision 10),
// ordered by service_account; none when there are none. An unknown kind is
// a *QueryError. audit_ids says who stored the ID and its event time, and
// so the partition of each row.
func (db *DB) AuditsByID(ctx context.Context, kind wire.Kind, id string) ([]wire.AuditEntry, error) {
	const op = "storage: audits by ID"
	t := auditTables[kind]
	if t == nil {
		return nil, &QueryError{"kind", fmt.Sprintf("unknown kind %q", kind)}
	}
	if !matchable(id) {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT service_account, event_time FROM audit_ids
		WHERE id = $1 AND kind = $2 ORDER BY service_account COLLATE "C"`, id, string(kind))
	if err != nil {
		return nil, wrapErr(op, err)
	}
	type key struct {
		sa string
		at time.Time
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (key, error) {
		var k key
		return k, r.Scan(&k.sa, &k.at)
	})
	if err != nil {
		return nil, wrapErr(op, err)
	}
	var out []wire.AuditEntry
	for _, k := range keys {
		// Equality on the partition key: planned over its partition only.
		rows, err := db.pool.Query(ctx, "SELECT "+t.columns+" FROM "+t.name+
			" WHERE id = $1 AND service_account = $2 AND "+t.eventTime+" = $3", custom, id, k.sa, k.at)
		if err != nil {
			return nil, wrapErr(op, err)
		}
		if out, err = appendEntries(out, rows, t); err != nil {
			return nil, wrapErr(op, err)
		}
	}
	return out, nil
}

// ExportQuery selects what ExportAudits streams.
type ExportQuery struct {
	Kinds []wire.Kind // required, each once; streamed in this order
	// Since <= event time < Until. Until is required (the export is of a
	// closed range, so it says exactly what it covers); a zero Since is
	// from the start.
	Since, Until time.Time
}

func (q *ExportQuery) validate() error {
	if len(q.Kinds) == 0 {
		return &QueryError{"kinds", "at least one kind is required"}
	}
	for i, k := range q.Kinds {
		if auditTables[k] == nil {
			return &QueryError{"kind", fmt.Sprintf("unknown kind %q: want %q or %q", k, wire.KindRemediation, wire.KindWorkflow)}
		}
		if slices.Contains(q.Kinds[:i], k) {
			return &QueryError{"kind", fmt.Sprintf("kind %q given twice", k)}
		}
	}
	if q.Until.IsZero() {
		return &QueryError{"until", "is required"}
	}
	if !q.Since.IsZero() && !q.Since.Before(q.Until) {
		return &QueryError{"since", "must be before until"}
	}
	return nil
}

// ExportAudits streams every row matching q to each, the kinds in the given
// order, each kind ascending by (event time, service_account, id), all from
// one READ ONLY REPEATABLE READ snapshot: rows committed after the export
// began are not in it, and none is missing or repeated however long it
// runs.
//
// Memory is constant: rows are decoded as they arrive from the server (one
// query per kind, read as pgx receives it), and the *wire.AuditEntry passed
// to each is the same one every time, overwritten by the next row: it and
// everything it points to is valid only during the call; batch is the row's
// ledger batch (0: stored before the ledger), which an export's proof
// needs. An error from
// each, or ctx cancelled (the client gone), stops the query at once (pgx
// sends the server a cancel request and drops the connection, rather than
// reading the remaining rows) and is returned: each's error as is,
// cancellation wrapping ctx's error. A refused query is a *QueryError.
//
// The snapshot holds back VACUUM's cleanup of rows deleted after it began
// for as long as the export runs.
func (db *DB) ExportAudits(ctx context.Context, q ExportQuery, each func(*wire.AuditEntry, int64) error) error {
	const op = "storage: export audits"
	if err := q.validate(); err != nil {
		return err
	}
	// Cancelling the statement's context makes pgx cancel it on the server
	// and drop the connection; rows.Close would otherwise read every
	// remaining row.
	qctx, stop := context.WithCancel(ctx)
	defer stop()
	tx, err := db.pool.BeginTx(qctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return wrapErr(op, err)
	}
	// Read only: ending it by rollback loses nothing.
	defer func() {
		rbCtx, rbCancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		_ = tx.Rollback(rbCtx)
		rbCancel()
	}()
	// The export reads one partition after another: the parents' lock
	// keeps retention from detaching any of them until it ends, so every
	// row of the snapshot is read.
	for _, kind := range q.Kinds {
		if _, err := tx.Exec(qctx, "LOCK TABLE "+auditTables[kind].name+" IN ACCESS SHARE MODE"); err != nil {
			return wrapErr(op, err)
		}
	}
	var e wire.AuditEntry
	for _, kind := range q.Kinds {
		t := auditTables[kind]
		spans, err := db.spans(qctx, t)
		if err == nil {
			err = exportKind(qctx, stop, tx, t, &q, spans, &e, each)
		}
		var stopped *stopError
		switch {
		case err == nil:
		case errors.As(err, &stopped):
			return stopped.err
		case ctx.Err() != nil:
			return wrapErr(op, fmt.Errorf("%s: %w", kind, context.Cause(ctx)))
		default:
			return wrapErr(op, fmt.Errorf("%s: %w", kind, err))
		}
	}
	return nil
}

// exportSQL is the statement of one kind of an export within one
// partition's span: the event-time index in its order, ties sorted in
// groups.
func exportSQL(t *auditTable, q *ExportQuery, s span) (string, []any, bool) {
	from, to, ok := s.clip(q.Since, q.Until)
	where, args := spanWhere(t, from, to, []any{custom})
	return "SELECT " + t.columns + ", ledger_batch FROM " + t.name + " WHERE " + everyRow + where + " ORDER BY " + orderBy(t, "ASC"), args, ok
}

// stopError carries each's error out of exportKind.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// exportKind streams one kind's rows of q to each, through e, a partition
// at a time. When it fails it calls stop, which cancels ctx, before closing
// the rows.
func exportKind(ctx context.Context, stop context.CancelFunc, tx pgx.Tx, t *auditTable, q *ExportQuery,
	spans []span, e *wire.AuditEntry, each func(*wire.AuditEntry, int64) error) error {
	for _, sp := range spans {
		sql, args, ok := exportSQL(t, q, sp)
		if !ok {
			continue
		}
		if err := exportSpan(ctx, stop, tx, t, sql, args, e, each); err != nil {
			return err
		}
	}
	return nil
}

func exportSpan(ctx context.Context, stop context.CancelFunc, tx pgx.Tx, t *auditTable, sql string, args []any,
	e *wire.AuditEntry, each func(*wire.AuditEntry, int64) error) (err error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			stop()
		}
		rows.Close()
	}()
	s := t.newScan()
	var batch int64
	dest := slices.Concat(s.targets(), []any{&batch})
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		s.entry(e, false)
		if err := each(e, batch); err != nil {
			return &stopError{err}
		}
		// Rows already received are still read after a cancellation:
		// stop at the next one.
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return rows.Err()
}
