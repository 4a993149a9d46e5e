package storage

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
)

// planNode is a node of a JSON plan that reads or writes a relation.
type planNode struct{ Type, Relation string }

func (n planNode) String() string { return n.Type + " on " + n.Relation }

// planNodes lists the nodes of a JSON plan that read or write a table or
// partition, depth first.
func planNodes(t *testing.T, plan []byte) []planNode {
	t.Helper()
	var doc []struct{ Plan map[string]any }
	require.NoError(t, json.Unmarshal(plan, &doc))
	var nodes []planNode
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if r, ok := n["Relation Name"].(string); ok {
			typ, _ := n["Node Type"].(string)
			nodes = append(nodes, planNode{Type: typ, Relation: r})
		}
		kids, _ := n["Plans"].([]any)
		for _, c := range kids {
			walk(c.(map[string]any))
		}
	}
	walk(doc[0].Plan)
	return nodes
}

// planRelations lists the tables and partitions a plan reads or writes.
func planRelations(t *testing.T, plan []byte) []string {
	t.Helper()
	var rels []string
	for _, n := range planNodes(t, plan) {
		rels = append(rels, n.Relation)
	}
	return rels
}

// The write path's statements at 30 partitions: an INSERT into a
// partitioned table routes each row at execution, so the plan names the
// parent tables only, never a partition (no planning cost per partition).
func TestWriteSQL_PlansNoPartition(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, Migrate(ctx, dsn))
	db, err := Open(ctx, Config{DatabaseURL: dsn})
	require.NoError(t, err)
	defer db.Close()
	parts, err := db.Partitions(ctx, "remediation")
	require.NoError(t, err)
	_, err = db.EnsurePartitions(ctx, parts[0].To.AddDate(0, 30, 0), PeriodMonth)
	require.NoError(t, err)
	parts, err = db.Partitions(ctx, "remediation")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(parts), 30)

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	now := []time.Time{time.Now()}
	ids, texts := []string{"a"}, []string{"x"}
	explain := func(sql string, args ...any) []string {
		t.Helper()
		var plan []byte
		require.NoError(t, conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&plan))
		return planRelations(t, plan)
	}
	digest, rows := make([]byte, 32), make([]byte, 8)
	assert.ElementsMatch(t, []string{"audit_ids", "remediation_audit", "embedding_outbox", "audit_ledger"}, explain(insertRemediation,
		ids, texts, texts, texts, texts, texts, texts, texts, []float64{0.5}, texts, texts, []int32{1}, texts,
		now, now, now, "sa", digest, now[0], rows))
	assert.ElementsMatch(t, []string{"audit_ids", "workflow_audit", "embedding_outbox", "audit_ledger"}, explain(insertWorkflow,
		ids, texts, texts, texts, []int32{1}, texts, now, now, "sa", digest, now[0], rows))
}
