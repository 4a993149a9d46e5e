package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

const benchBatchSize = 500

// benchDB returns a fresh migrated database (empty tables, all indexes).
func benchDB(b *testing.B) string {
	b.Helper()
	dsn := pgtest.NewDatabase(b)
	require.NoError(b, storage.Migrate(context.Background(), dsn))
	return dsn
}

func openBenchDB(b *testing.B, dsn string) *storage.DB {
	b.Helper()
	db, err := storage.Open(context.Background(), storage.Config{DatabaseURL: dsn, MaxConns: 2})
	require.NoError(b, err)
	b.Cleanup(db.Close)
	return db
}

// BenchmarkWriteBatch writes batches of 500 realistic records (3/4
// remediation from the three remediation writers, 1/4 workflow steps)
// through WriteBatch.
func BenchmarkWriteBatch(b *testing.B) {
	db := openBenchDB(b, benchDB(b))
	benchWrites(b, func(ctx context.Context, batch []wire.Record) error {
		_, err := db.WriteBatch(ctx, testSA, batch)
		return err
	})
}

// BenchmarkWriteSmallBatches writes batches of 1 and 8 records, the
// single-record endpoints' case, through the pipelined INSERT (the default
// below the COPY threshold) and through the COPY path, to justify the
// threshold.
func BenchmarkWriteSmallBatches(b *testing.B) {
	for _, size := range []int{1, 8, 32} {
		for _, path := range []struct {
			name        string
			copyMinRows int
		}{{"insert", 1 << 30}, {"copy", 1}} {
			b.Run(fmt.Sprintf("records=%d/%s", size, path.name), func(b *testing.B) {
				defer storage.SetCopyMinRows(path.copyMinRows)()
				db := openBenchDB(b, benchDB(b))
				ctx := context.Background()
				start := time.Now()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					batch := realisticBatch(size, start)
					b.StartTimer()
					_, err := db.WriteBatch(ctx, testSA, batch)
					require.NoError(b, err)
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkCopyDirect COPYs the same rows into the same schema with pgx
// CopyFrom (binary), one transaction per batch: the ceiling WriteBatch is
// measured against.
func BenchmarkCopyDirect(b *testing.B) {
	conn, err := pgx.Connect(context.Background(), benchDB(b))
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close(context.Background()) })
	benchWrites(b, func(ctx context.Context, batch []wire.Record) error {
		return copyDirect(ctx, conn, batch)
	})
}

// BenchmarkWriteBatchVsCopy alternates one WriteBatch and one direct COPY of
// equal batches (which goes first alternates too), each into its own fresh
// database, and reports the ratio of their rates from the same run: less
// sensitive than two separate benchmarks to the load of a shared machine.
func BenchmarkWriteBatchVsCopy(b *testing.B) {
	ctx := context.Background()
	db := openBenchDB(b, benchDB(b))
	conn, err := pgx.Connect(ctx, benchDB(b))
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close(context.Background()) })

	var writeTime, copyTime time.Duration
	start := time.Now()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w, c := realisticBatch(benchBatchSize, start), realisticBatch(benchBatchSize, start)
		b.StartTimer()
		writeBatch := func() {
			t0 := time.Now()
			_, err := db.WriteBatch(ctx, testSA, w)
			writeTime += time.Since(t0)
			require.NoError(b, err)
		}
		copyBatch := func() {
			t0 := time.Now()
			err := copyDirect(ctx, conn, c)
			copyTime += time.Since(t0)
			require.NoError(b, err)
		}
		if i%2 == 0 {
			writeBatch()
			copyBatch()
		} else {
			copyBatch()
			writeBatch()
		}
	}
	records := float64(b.N * benchBatchSize)
	b.ReportMetric(records/writeTime.Seconds(), "writebatch-records/s")
	b.ReportMetric(records/copyTime.Seconds(), "copy-records/s")
	b.ReportMetric(copyTime.Seconds()/writeTime.Seconds(), "writebatch/copy")
}

func benchWrites(b *testing.B, write func(context.Context, []wire.Record) error) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		batch := realisticBatch(benchBatchSize, start)
		b.StartTimer()
		t0 := time.Now()
		require.NoError(b, write(ctx, batch))
		elapsed += time.Since(t0)
	}
	b.ReportMetric(float64(b.N*benchBatchSize)/elapsed.Seconds(), "records/s")
}

var (
	remediationColumns = []string{"id", "remediation_request_id", "alert_name", "namespace", "cluster",
		"priority", "action_type", "status", "confidence", "reasoning", "target_resource", "duration_ms",
		"error_message", "created_at", "executed_at", "service_account", "received_at"}
	workflowColumns = []string{"id", "workflow_id", "step_name", "step_status", "duration_ms",
		"error_message", "executed_at", "service_account", "received_at"}
)

// copyDirect maps records to rows as WriteBatch stores them and COPYs them
// into the audit tables in one transaction.
func copyDirect(ctx context.Context, conn *pgx.Conn, batch []wire.Record) error {
	var rem, wf [][]any
	for i := range batch {
		r := &batch[i]
		switch r.Kind {
		case wire.KindRemediation:
			a := r.Remediation
			created := r.ReceivedAt
			if a.CreatedAt != nil {
				created = *a.CreatedAt
			}
			rem = append(rem, []any{r.ID, a.RemediationRequestID, nullable(a.AlertName), nullable(a.Namespace),
				nullable(a.Cluster), nullable(a.Priority), nullable(a.ActionType), nullable(a.Status), a.Confidence,
				nullable(a.Reasoning), nullable(a.TargetResource), millis(a.DurationNanos), nullable(a.ErrorMessage),
				created, a.ExecutedAt, testSA, r.ReceivedAt})
		case wire.KindWorkflow:
			w := r.Workflow
			executed := r.ReceivedAt
			if w.ExecutedAt != nil {
				executed = *w.ExecutedAt
			}
			wf = append(wf, []any{r.ID, w.WorkflowID, w.StepName, w.StepStatus, millis(w.DurationNanos),
				nullable(w.ErrorMessage), executed, testSA, r.ReceivedAt})
		}
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"remediation_audit"}, remediationColumns, pgx.CopyFromRows(rem)); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"workflow_audit"}, workflowColumns, pgx.CopyFromRows(wf))
		return err
	})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func millis(nanos *int64) any {
	if nanos == nil {
		return nil
	}
	return int32(time.Duration(*nanos).Milliseconds())
}

// BenchmarkWriteGroupsSmall writes transactions shaped like the central's
// coalesced single-record writes under load: four writers (three of
// remediation audits, one of workflow steps) with four records each, on
// the ON CONFLICT path (groups of fewer than 16 rows).
//
// go test -run '^$' -bench WriteGroupsSmall -benchtime 3000x ./storage/
func BenchmarkWriteGroupsSmall(b *testing.B) {
	const writers, perWriter = 4, 4
	db := openBenchDB(b, benchDB(b))
	ctx := context.Background()
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// realisticBatch cycles through the four writers' records.
		recs := realisticBatch(writers*perWriter, start)
		groups := make([]storage.Group, writers)
		for j, rec := range recs {
			w := j % writers
			groups[w].ServiceAccount = fmt.Sprintf("kubernaut-system/writer-%d", w)
			groups[w].Records = append(groups[w].Records, rec)
		}
		b.StartTimer()
		_, err := db.WriteGroups(ctx, groups)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.N*writers*perWriter)/b.Elapsed().Seconds(), "records/s")
}
