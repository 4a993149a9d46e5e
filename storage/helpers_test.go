package storage_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

const testSA = "kubernaut-system/gateway-sa"

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// migratedDB returns a fresh, migrated database's DSN and a DB open on it.
func migratedDB(t testing.TB) (string, *storage.DB) {
	t.Helper()
	ctx := testContext(t)
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(ctx, dsn))
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return dsn, db
}

// connect opens a plain connection for reading rows back with SQL.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// closedPortDSN points at a local port where nothing listens.
func closedPortDSN(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return fmt.Sprintf("postgres://postgres@%s/nowhere?sslmode=disable&connect_timeout=2", addr)
}

func newID() string { return "audit-" + uuid.Must(uuid.NewV7()).String() }

func ptr[T any](v T) *T { return &v }

// realisticBatch returns n records as the four writers send them, in
// proportions close to a remediation's life: gateway, AI analysis, executor,
// workflow steps.
func realisticBatch(n int, receivedAt time.Time) []wire.Record {
	recs := make([]wire.Record, n)
	for i := range recs {
		rr := fmt.Sprintf("rr-%06d", i/8)
		recs[i] = wire.Record{ID: newID(), ReceivedAt: receivedAt.Add(time.Duration(i) * time.Millisecond)}
		switch i % 4 {
		case 0: // Gateway
			recs[i].Kind = wire.KindRemediation
			recs[i].Remediation = &wire.RemediationAudit{
				RemediationRequestID: rr, AlertName: "HighMemoryUsage", Namespace: "production",
				Cluster: "us-west-2", Priority: "P0", CreatedAt: ptr(receivedAt),
			}
		case 1: // AI Analysis
			recs[i].Kind = wire.KindRemediation
			recs[i].Remediation = &wire.RemediationAudit{
				RemediationRequestID: rr, AlertName: "HighMemoryUsage", Namespace: "production",
				Cluster: "us-west-2", ActionType: "scale_deployment", Confidence: ptr(0.87),
				Reasoning: "Memory usage of deployment payment-api has exceeded 92% of its limit for 15 minutes " +
					"across all replicas; the pattern matches previous incidents resolved by scaling out. " +
					"No recent deployments or config changes; traffic is 40% above the weekly baseline.",
				CreatedAt: ptr(receivedAt),
			}
		case 2: // Kubernetes Executor
			recs[i].Kind = wire.KindRemediation
			recs[i].Remediation = &wire.RemediationAudit{
				RemediationRequestID: rr, ActionType: "scale_deployment",
				TargetResource: "production/deployment/payment-api", Status: "completed",
				DurationNanos: ptr(int64(2350 * time.Millisecond)), ExecutedAt: ptr(receivedAt.Add(-3 * time.Second)),
			}
		case 3: // Workflow Execution
			recs[i].Kind = wire.KindWorkflow
			wf := &wire.WorkflowAudit{
				WorkflowID: "wf-" + rr, StepName: "scale-out", StepStatus: "completed",
				DurationNanos: ptr(int64(1200 * time.Millisecond)), ExecutedAt: ptr(receivedAt.Add(-2 * time.Second)),
			}
			if i%16 == 3 {
				wf.StepStatus = "failed"
				wf.ErrorMessage = "deployments.apps \"payment-api\" is forbidden: exceeded quota: compute-resources"
			}
			recs[i].Workflow = wf
		}
	}
	return recs
}

// testRef is the identity of an audit written by testSA.
func testRef(kind wire.Kind, id string) storage.RecordRef {
	return storage.RecordRef{Kind: kind, ServiceAccount: testSA, ID: id}
}

// indexedVectors is openVectors with the HNSW index made sure of.
func indexedVectors(t testing.TB, dsn string) *storage.VectorDB {
	t.Helper()
	v := openVectors(t, dsn)
	_, err := v.EnsureIndex(testContext(t))
	require.NoError(t, err)
	return v
}

// openVectors opens the vector side on dsn with the default HNSW settings.
func openVectors(t testing.TB, dsn string) *storage.VectorDB {
	t.Helper()
	v, err := storage.OpenVectors(testContext(t), storage.Config{DatabaseURL: dsn}, storage.HNSWConfig{})
	require.NoError(t, err)
	t.Cleanup(v.Close)
	return v
}
