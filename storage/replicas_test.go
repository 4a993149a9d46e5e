package storage_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
)

func TestReplicaHeartbeat_CountsTheLiveAndForgetsTheExpired(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)

	var persistence string
	require.NoError(t, conn.QueryRow(ctx, `SELECT relpersistence FROM pg_class WHERE relname = 'central_replicas'`).Scan(&persistence))
	assert.Equal(t, "u", persistence, "unlogged: rebuilt within a heartbeat after a crash")

	n, err := db.ReplicaHeartbeat(ctx, "a", "host-a", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "alone")
	n, err = db.ReplicaHeartbeat(ctx, "b", "host-b", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = db.ReplicaHeartbeat(ctx, "a", "host-a", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "a heartbeat renews, it does not add")

	// b stops beating: once its row is older than the TTL it is not counted,
	// and the next heartbeat deletes it.
	_, err = conn.Exec(ctx, `UPDATE central_replicas SET seen_at = now() - interval '6 seconds' WHERE id = 'b'`)
	require.NoError(t, err)
	n, err = db.ReplicaHeartbeat(ctx, "a", "host-a", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	var rows int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM central_replicas`).Scan(&rows))
	assert.Equal(t, 1, rows, "the expired row is gone")

	// A replica that was taken for dead and beats again is back.
	n, err = db.ReplicaHeartbeat(ctx, "b", "host-b", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 2, n)

	require.NoError(t, db.ReplicaLeave(ctx, "b"))
	n, err = db.ReplicaHeartbeat(ctx, "a", "host-a", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "an orderly stop counts at once")
	require.NoError(t, db.ReplicaLeave(ctx, "nobody"), "leaving twice is harmless")
}

func TestReplicaHeartbeat_OwnRowOlderThanTheTTLIsRenewedNotDeleted(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)
	_, err := db.ReplicaHeartbeat(ctx, "a", "host-a", 5*time.Second)
	require.NoError(t, err)
	// a paused longer than the TTL (the database was unreachable, say).
	_, err = conn.Exec(ctx, `UPDATE central_replicas SET seen_at = now() - interval '1 hour'`)
	require.NoError(t, err)
	n, err := db.ReplicaHeartbeat(ctx, "a", "host-a", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	var fresh bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT seen_at > now() - interval '5 seconds' FROM central_replicas WHERE id = 'a'`).Scan(&fresh))
	assert.True(t, fresh)
}

func TestReplicaHeartbeat_ConcurrentReplicas(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dsn, db := migratedDB(t)
	conn := connect(t, dsn)
	// Expired rows for every beat to delete at once.
	for i := range 20 {
		_, err := conn.Exec(ctx, `INSERT INTO central_replicas VALUES ($1, 'gone', now() - interval '1 hour', now() - interval '1 hour')`,
			fmt.Sprint("dead-", i))
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6*20)
	for r := range 6 {
		wg.Go(func() {
			for range 20 {
				if _, err := db.ReplicaHeartbeat(ctx, fmt.Sprint("r", r), "host", 5*time.Second); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	n, err := db.ReplicaHeartbeat(ctx, "r0", "host", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 6, n)
}

func TestReplicaHeartbeat_UnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: closedPortDSN(t)})
	if err != nil {
		require.ErrorIs(t, err, storage.ErrUnavailable)
		return
	}
	defer db.Close()
	_, err = db.ReplicaHeartbeat(ctx, "a", "host-a", 5*time.Second)
	require.ErrorIs(t, err, storage.ErrUnavailable)
}
