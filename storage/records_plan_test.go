package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/wire"
)

// A batch of the embedding pipeline's records (a few hundred keys) is read
// back by probing the primary keys. Planned as a join, the look-up of the
// keys scanned all of audit_ids at this size (20k rows), whether its
// statistics were fresh or, as here, taken while it was small.
func TestRecordLookups_ProbeThePrimaryKeys(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, Migrate(ctx, dsn))
	db, err := Open(ctx, Config{DatabaseURL: dsn, MaxConns: 2})
	require.NoError(t, err)
	defer db.Close()

	const sa, stored, batch = "ns/writer", 20000, 500
	at := time.Now().UTC().Add(-time.Hour)
	var sas, ids []string
	for n := 0; n < stored; n += 1000 {
		recs := make([]wire.Record, 1000)
		for i := range recs {
			id := fmt.Sprintf("audit-%08d", n+i)
			recs[i] = wire.Record{ID: id, Kind: wire.KindRemediation, ReceivedAt: at,
				Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-" + id, AlertName: "HighMemoryUsage",
					Reasoning: "Memory usage of deployment payment-api has exceeded 92% of its limit for 15 minutes.",
					CreatedAt: &at}}
			if (n+i)%(stored/batch) == 0 {
				sas, ids = append(sas, sa), append(ids, id)
			}
		}
		_, err := db.WriteBatch(ctx, sa, recs)
		require.NoError(t, err)
		if n == 0 {
			// Statistics of the table when it was small, as autovacuum
			// leaves them while it grows fast.
			_, err = db.pool.Exec(ctx, "ANALYZE")
			require.NoError(t, err)
		}
	}
	require.Len(t, ids, batch)

	t.Run("keys", func(t *testing.T) {
		var plan []byte
		require.NoError(t, db.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+keyLookupSQL,
			sas, ids, string(wire.KindRemediation)).Scan(&plan))
		assert.Equal(t, []planNode{{"Index Scan", "audit_ids"}}, planNodes(t, plan), "%s", plan)
	})
	t.Run("rows", func(t *testing.T) {
		tb := auditTables[wire.KindRemediation]
		spans, err := db.spans(ctx, tb)
		require.NoError(t, err)
		var of *span
		for i := range spans {
			if spans[i].holds(at) {
				of = &spans[i]
			}
		}
		require.NotNil(t, of)
		where, args := spanWhere(tb, of.from, of.to, []any{sas, ids})
		var plan []byte
		require.NoError(t, db.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+recordLookupSQL(tb, where), args...).Scan(&plan))
		nodes := planNodes(t, plan)
		require.Len(t, nodes, 1, "%s", plan)
		assert.Equal(t, "Index Scan", nodes[0].Type, "%s", plan)
		assert.Regexp(t, `^remediation_audit_`, nodes[0].Relation)
	})

	recs, err := db.Records(ctx, []RecordRef{{Kind: wire.KindRemediation, ServiceAccount: sa, ID: ids[7]},
		{Kind: wire.KindRemediation, ServiceAccount: "ns/other", ID: ids[8]}})
	require.NoError(t, err)
	require.Len(t, recs, 1, "only the writer's own record")
	rec := recs[RecordRef{Kind: wire.KindRemediation, ServiceAccount: sa, ID: ids[7]}]
	require.NotNil(t, rec)
	assert.Equal(t, "rr-"+ids[7], rec.Remediation.RemediationRequestID)
}
