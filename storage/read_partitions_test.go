package storage

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/wire"
)

// recorder keeps the statements a pool sends that read the audit tables.
type recorder struct {
	mu    sync.Mutex
	stmts []recorded
}

type recorded struct {
	sql  string
	args []any
}

func (r *recorder) add(sql string, args []any) {
	if !strings.Contains(sql, "FROM remediation_audit") && !strings.Contains(sql, "FROM workflow_audit") {
		return
	}
	var kept []any
	for _, a := range args {
		if _, mode := a.(pgx.QueryExecMode); !mode {
			kept = append(kept, a)
		}
	}
	r.mu.Lock()
	r.stmts = append(r.stmts, recorded{sql, kept})
	r.mu.Unlock()
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.add(d.SQL, d.Args)
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (r *recorder) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	r.add(d.SQL, d.Args)
}

func (r *recorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (r *recorder) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stmts
	r.stmts = nil
	return s
}

// Every read statement at 31 partitions per table is planned over one
// partition at most (the write path's: write_plan_test.go), and the reads
// still find every row: a timeline and a page spanning partitions, one
// record by ID, the embedding pipeline's read-back, an export.
func TestReads_PlanOnePartitionEachAt31Partitions(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, Migrate(ctx, dsn))
	rec := &recorder{}
	pcfg, err := pgxpool.ParseConfig(dsn)
	require.NoError(t, err)
	pcfg.ConnConfig.Tracer = rec
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	require.NoError(t, err)
	db := &DB{pool: pool, maxConns: 4}
	defer db.Close()

	parts, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	_, err = db.EnsurePartitions(ctx, parts[0].To.AddDate(0, 30, 0), PeriodMonth)
	require.NoError(t, err)
	parts, err = db.Partitions(ctx, wire.KindRemediation)
	require.NoError(t, err)
	require.Len(t, parts, 31)

	// rr-1 has an audit in the 3rd and the 6th month after the history.
	at := []time.Time{parts[3].From.Add(time.Hour), parts[6].From.Add(time.Hour)}
	var recs []wire.Record
	for i, a := range at {
		recs = append(recs,
			wire.Record{ID: "r" + string(rune('0'+i)), Kind: wire.KindRemediation, ReceivedAt: a,
				Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1", CreatedAt: &a}},
			wire.Record{ID: "w" + string(rune('0'+i)), Kind: wire.KindWorkflow, ReceivedAt: a,
				Workflow: &wire.WorkflowAudit{WorkflowID: "wf-1", StepName: "s", StepStatus: "ok", ExecutedAt: &a}})
	}
	_, err = db.WriteBatch(ctx, "ns/sa", recs)
	require.NoError(t, err)
	rec.take()

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	checkPlans := func(what string, wantStatements int) {
		t.Helper()
		stmts := rec.take()
		assert.GreaterOrEqual(t, len(stmts), wantStatements, what)
		for _, s := range stmts {
			var plan []byte
			require.NoError(t, conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+s.sql, s.args...).Scan(&plan), "%s: %s", what, s.sql)
			n := 0
			for _, r := range planRelations(t, plan) {
				if strings.Contains(r, "_audit_p") || strings.HasSuffix(r, "_audit_history") {
					n++
				}
			}
			assert.LessOrEqual(t, n, 1, "%s: planned over %d partitions:\n%s", what, n, s.sql)
		}
	}

	tl, err := db.Timeline(ctx, "rr-1", 1001)
	require.NoError(t, err)
	require.Len(t, tl, 2)
	assert.Equal(t, "r0", tl[0].AuditID)
	checkPlans("timeline", 31)

	page, err := db.QueryAudits(ctx, AuditQuery{Kind: wire.KindRemediation, Limit: 100, Filters: map[string]string{"remediationRequestID": "rr-1"}})
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, "r1", page[0].AuditID, "newest first")
	checkPlans("page", 2)

	// A page of one continues after the first, in the older partition.
	first, err := db.QueryAudits(ctx, AuditQuery{Kind: wire.KindWorkflow, Limit: 1, Ascending: true})
	require.NoError(t, err)
	require.Len(t, first, 1)
	next, err := db.QueryAudits(ctx, AuditQuery{Kind: wire.KindWorkflow, Limit: 1, Ascending: true, After: &Position{
		OccurredAt: first[0].OccurredAt, ServiceAccount: first[0].ServiceAccount, ID: first[0].AuditID}})
	require.NoError(t, err)
	require.Len(t, next, 1)
	assert.Equal(t, []string{"w0", "w1"}, []string{first[0].AuditID, next[0].AuditID})
	checkPlans("keyset pages", 2)

	byID, err := db.AuditsByID(ctx, wire.KindRemediation, "r1")
	require.NoError(t, err)
	require.Len(t, byID, 1)
	checkPlans("one record", 1)

	got, err := db.Records(ctx, []RecordRef{{wire.KindRemediation, "ns/sa", "r0"}, {wire.KindRemediation, "ns/sa", "r1"}, {wire.KindWorkflow, "ns/sa", "w1"}})
	require.NoError(t, err)
	assert.Len(t, got, 3)
	checkPlans("records", 3)

	var exported []string
	require.NoError(t, db.ExportAudits(ctx, ExportQuery{Kinds: []wire.Kind{wire.KindWorkflow, wire.KindRemediation},
		Since: parts[2].From, Until: parts[7].From}, func(e *wire.AuditEntry, _ int64) error {
		exported = append(exported, e.AuditID)
		return nil
	}))
	assert.Equal(t, []string{"w0", "w1", "r0", "r1"}, exported)
	checkPlans("export", 10)
}
