package storage

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/wire"
)

// BenchmarkTimelineAt31Partitions compares the timeline as it reads now,
// one statement per partition sent in one batch, with one statement over
// the partitioned table (planned over all 31), warm, on a remediation whose
// two audits are in two partitions.
//
//	go test -run '^$' -bench TimelineAt31 -benchtime 2000x ./storage/
func BenchmarkTimelineAt31Partitions(b *testing.B) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(b)
	require.NoError(b, Migrate(ctx, dsn))
	db, err := Open(ctx, Config{DatabaseURL: dsn, MaxConns: 2})
	require.NoError(b, err)
	defer db.Close()
	parts, err := db.Partitions(ctx, wire.KindRemediation)
	require.NoError(b, err)
	_, err = db.EnsurePartitions(ctx, parts[0].To.AddDate(0, 30, 0), PeriodMonth)
	require.NoError(b, err)
	parts, err = db.Partitions(ctx, wire.KindRemediation)
	require.NoError(b, err)
	var recs []wire.Record
	for m := range parts {
		for i := range 200 {
			at := parts[m].To.Add(-time.Duration(i+1) * time.Minute)
			rr := "rr-other"
			if (m == 3 || m == 6) && i == 0 {
				rr = "rr-1"
			}
			recs = append(recs, wire.Record{ID: newTestID(m, i), Kind: wire.KindRemediation, ReceivedAt: at,
				Remediation: &wire.RemediationAudit{RemediationRequestID: rr, CreatedAt: &at}})
		}
	}
	_, err = db.WriteBatch(ctx, "ns/sa", recs)
	require.NoError(b, err)
	_, err = db.pool.Exec(ctx, "ANALYZE remediation_audit")
	require.NoError(b, err)
	t := auditTables[wire.KindRemediation]
	one := "SELECT " + t.columns + " FROM " + t.name + " WHERE remediation_request_id = $1 ORDER BY " + orderBy(t, "ASC") + " LIMIT $2"

	b.Run("batch-per-partition", func(b *testing.B) {
		for b.Loop() {
			got, err := db.Timeline(ctx, "rr-1", 1001)
			require.NoError(b, err)
			require.Len(b, got, 2)
		}
	})
	b.Run("one-statement", func(b *testing.B) {
		for b.Loop() {
			rows, err := db.pool.Query(ctx, one, custom, "rr-1", 1001)
			require.NoError(b, err)
			got, err := appendEntries(nil, rows, t)
			require.NoError(b, err)
			require.Len(b, got, 2)
		}
	})
}

func newTestID(m, i int) string {
	return "audit-" + time.Unix(int64(m*1000+i), 0).UTC().Format("20060102150405")
}
