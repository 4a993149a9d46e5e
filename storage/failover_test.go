package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/patroni"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// TestDB_FollowsThePrimaryThroughAPatroniFailover runs a real Patroni
// cluster (internal/tstest/patroni: etcd, two PostgreSQL nodes, synchronous
// and strict; installed by scripts/provision-ha.sh when missing, as root,
// never skipped). One pool on the multi-host URL with
// target_session_attrs=read-write writes a batch; the primary node is
// killed (Patroni and postmaster, SIGKILL). While no node takes writes,
// and while the promoted standby waits for a synchronous standby of its own
// (synchronous_mode_strict), a write is ErrUnavailable (503), never another
// error; once the dead node has rejoined, the same pool writes to the new
// primary, and the acknowledged batch is there, exactly once.
func TestDB_FollowsThePrimaryThroughAPatroniFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := patroni.Start(ctx, patroni.Config{})
	require.NoError(t, err)
	dir := c.Dir
	defer func() {
		c.Close()
		assert.NoDirExists(t, dir, "Close removes the cluster")
	}()
	dsn := c.URL("postgres")
	require.NoError(t, storage.Migrate(ctx, dsn))
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn, MaxConns: 4, ConnectTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer db.Close()

	acked := realisticBatch(16, received)
	_, err = db.WriteBatch(ctx, testSA, acked)
	require.NoError(t, err)
	old, err := c.Primary(ctx)
	require.NoError(t, err)

	killed := time.Now()
	require.NoError(t, c.Kill(old))
	unavailable := func(phase string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := db.WriteBatch(wctx, testSA, realisticBatch(4, received))
		require.Error(t, err, phase)
		assert.ErrorIs(t, err, storage.ErrUnavailable, phase)
	}
	unavailable("no primary")
	require.Eventually(t, func() bool {
		p, err := c.Primary(ctx)
		return err == nil && p != old
	}, time.Minute, 100*time.Millisecond, "the synchronous standby is promoted")
	t.Logf("promoted %s after the kill", time.Since(killed).Round(10*time.Millisecond))
	unavailable("promoted, no synchronous standby yet (strict)")

	require.NoError(t, c.StartNode(old))
	next := realisticBatch(8, received)
	var statuses []wire.ItemStatus
	require.Eventually(t, func() bool {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		statuses, err = db.WriteBatch(wctx, testSA, next)
		return err == nil
	}, 2*time.Minute, 200*time.Millisecond, "the same pool writes to the new primary: %v", err)
	t.Logf("writes accepted %s after the kill", time.Since(killed).Round(10*time.Millisecond))
	assert.Len(t, statuses, len(next))

	// Every record of the batch acknowledged before the kill is stored:
	// sending it again stores nothing.
	statuses, err = db.WriteBatch(ctx, testSA, acked)
	require.NoError(t, err)
	for i, s := range statuses {
		assert.Equal(t, wire.StatusDuplicate, s, "record %d", i)
	}
	require.NoError(t, c.WaitHealthy(ctx))
}
