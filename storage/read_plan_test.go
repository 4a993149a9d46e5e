package storage

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/wire"
)

// TestPageSQL_OnlyUnfilteredStatementsCanUseTheTimeIndex checks the plans
// migration 0006 is built for, on an empty table with sequential scans
// and sorts disabled, so that the planner shows which indexes a statement
// can use at all: every page uses an index; a page without a filter and the
// export read the event-time index; a page under any set of filters cannot
// (it uses a filter's own index), whatever the direction, range or keyset;
// the timeline uses the remediation_request_id index.
func TestPageSQL_OnlyUnfilteredStatementsCanUseTheTimeIndex(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, Migrate(ctx, dsn))
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SET enable_seqscan = off; SET enable_sort = off")
	require.NoError(t, err)

	explain := func(sql string, args ...any) string {
		t.Helper()
		rows, err := conn.Query(ctx, "EXPLAIN "+sql, args...)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return strings.Join(lines, "\n")
	}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	timeIndex := map[wire.Kind]string{wire.KindRemediation: "idx_remediation_audit_unfiltered_created_at",
		wire.KindWorkflow: "idx_workflow_audit_unfiltered_executed_at"}

	// The statements of every page shape: each set of filters, both
	// directions, first page, keyset, time range.
	pages := func(kind wire.Kind, tb *auditTable, each func(q *AuditQuery, sql string, args []any)) {
		for set := 0; set < 1<<len(tb.filters); set++ {
			for variant := range 6 {
				q := AuditQuery{Kind: kind, Limit: 100, Ascending: variant%2 == 1, Filters: map[string]string{}}
				for i, f := range tb.filters {
					if set&(1<<i) != 0 {
						q.Filters[f.name] = "v"
					}
				}
				switch variant / 2 {
				case 1:
					q.After = &Position{OccurredAt: at, ServiceAccount: "a/b", ID: "x"}
				case 2:
					q.Since, q.Until = at.Add(-time.Hour), at
				}
				_, err := q.validate()
				require.NoError(t, err)
				sql, args := pageSQL(tb, &q)
				each(&q, sql, args[1:]) // without the exec mode
			}
		}
	}
	for kind, tb := range auditTables {
		pages(kind, tb, func(q *AuditQuery, sql string, args []any) {
			plan := explain(sql, args...)
			assert.NotContains(t, plan, "Seq Scan", "%s %v:\n%s", kind, q.Filters, plan)
			if len(q.Filters) == 0 {
				assert.Contains(t, plan, timeIndex[kind], "unfiltered %s:\n%s", kind, plan)
			}
		})
		for _, since := range []time.Time{{}, at.Add(-time.Hour)} {
			sql, args, _ := exportSQL(tb, &ExportQuery{Kinds: []wire.Kind{kind}, Since: since, Until: at}, span{})
			plan := explain(sql, args[1:]...)
			assert.Contains(t, plan, timeIndex[kind], "export of %s:\n%s", kind, plan)
		}

		// Without the filters' own indexes (dropped in a transaction rolled
		// back after), a filtered page could only use the time index, and
		// must not be able to.
		_, err := conn.Exec(ctx, "BEGIN")
		require.NoError(t, err)
		rows, err := conn.Query(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = $1
			AND indexname <> $2 AND indexname NOT LIKE '%pkey'`, tb.name, timeIndex[kind])
		require.NoError(t, err)
		others, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, idx := range others {
			_, err := conn.Exec(ctx, "DROP INDEX "+idx)
			require.NoError(t, err)
		}
		pages(kind, tb, func(q *AuditQuery, sql string, args []any) {
			if len(q.Filters) > 0 {
				plan := explain(sql, args...)
				assert.NotContains(t, plan, timeIndex[kind], "%s %v:\n%s", kind, q.Filters, plan)
			}
		})
		_, err = conn.Exec(ctx, "ROLLBACK")
		require.NoError(t, err)
	}
	tb := auditTables[wire.KindRemediation]
	plan := explain("SELECT "+tb.columns+" FROM "+tb.name+
		" WHERE remediation_request_id = $1 ORDER BY "+orderBy(tb, "ASC")+" LIMIT $2", "rr", 1001)
	assert.Contains(t, plan, "idx_remediation_audit_request_created_at", "timeline:\n%s", plan)
}
