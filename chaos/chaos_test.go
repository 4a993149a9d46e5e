package chaos_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/chaos"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
)

// TestRun_ShortRunLosesAndDuplicatesNothing is `make chaos` in small,
// inside `make test`: every fault kind at least once under load through real
// agent and central processes. It uses the shared TEST_DATABASE_URL cluster,
// which it does not own, so the database outage is a cut of the TCP proxy
// between the central and PostgreSQL rather than pg_ctl stop. The disk-full
// fault mounts a tmpfs and so needs root (CAP_SYS_ADMIN); without it the test
// fails and says so.
func TestRun_ShortRunLosesAndDuplicatesNothing(t *testing.T) {
	admin := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := chaos.Short()
	cfg.DatabaseURL = admin
	res, err := chaos.Run(ctx, cfg)
	var table strings.Builder
	if res != nil {
		res.WriteTable(&table)
	}
	require.NoError(t, err, "%s", table.String())

	for _, kind := range chaos.FaultKinds {
		switch kind {
		case chaos.FaultDatabaseStop:
			assert.Zero(t, res.Faults[kind], "the shared cluster is not stopped")
		case chaos.FaultFailover:
			assert.Zero(t, res.Faults[kind], "the shared cluster has no standby")
		default:
			assert.Positive(t, res.Faults[kind], "%s injected", kind)
		}
	}
	assert.GreaterOrEqual(t, res.Faults[chaos.FaultAgentKill], 3)
	require.NotNil(t, res.Verify)
	assert.Positive(t, res.Verify.Acked)
	assert.Zero(t, res.Verify.Lost)
	assert.Zero(t, res.Verify.Duplicated)
	assert.True(t, res.Drained, "every agent drained")

	// Exactly once across partitions: every resent record answered
	// duplicate and is still one unchanged row in its partition, and the
	// rows spread over the daily partitions, with the central creating the
	// ones ahead.
	assert.Positive(t, res.Resent.OtherPartition)
	assert.Positive(t, res.Resent.SamePartition)
	assert.Equal(t, res.Resent.OtherPartition+res.Resent.SamePartition, res.Resent.Duplicate)
	assert.Zero(t, res.Resent.Changed)
	require.NotNil(t, res.Partitions)
	assert.GreaterOrEqual(t, res.Partitions.WithRows, 2, "partitions holding rows")
	assert.Positive(t, res.Partitions.Ahead, "partitions the central created ahead")
	// The ledger, through kill -9s of the central mid-commit: every entry
	// in the chain without a gap or a fork, every row as its entry
	// recorded, against the checkpoints signed during the run.
	require.NotNil(t, res.Ledger)
	assert.True(t, res.Ledger.OK, "%v", res.Ledger.Failures)
	assert.Positive(t, res.Ledger.Rows)
	assert.Positive(t, res.Ledger.Checkpoints)
	assert.Contains(t, table.String(), "| lost |")
	t.Logf("\n%s", table.String())
}
