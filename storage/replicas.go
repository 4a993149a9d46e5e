package storage

import (
	"context"
	"time"
)

// The SQL of the central's membership (package central/replicas; table
// central_replicas, migration 0010). Every time is the database's clock, so
// the replicas' own clocks need not agree.

// heartbeatSQL renews this replica's row ($1 ID, $2 hostname), deletes the
// others' rows older than the TTL ($3 seconds; rows another replica is
// deleting at the same moment are skipped, not waited for), and counts the
// replicas seen within it, this one included. The statements of one WITH
// share a snapshot, so the count reads the other rows as they were and adds
// one for this replica.
const heartbeatSQL = `
WITH me AS (
	INSERT INTO central_replicas (id, hostname, started_at, seen_at)
	VALUES ($1, $2, now(), now())
	ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, seen_at = excluded.seen_at
), expired AS (
	DELETE FROM central_replicas WHERE id IN (
		SELECT id FROM central_replicas
		WHERE id <> $1 AND seen_at < now() - $3::float8 * interval '1 second'
		FOR UPDATE SKIP LOCKED)
)
SELECT 1 + count(*) FROM central_replicas
WHERE id <> $1 AND seen_at >= now() - $3::float8 * interval '1 second'`

// ReplicaHeartbeat records that replica id (on host hostname) is alive now,
// forgets replicas not seen within ttl, and returns how many are alive: those
// seen within ttl, id included.
func (db *DB) ReplicaHeartbeat(ctx context.Context, id, hostname string, ttl time.Duration) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, heartbeatSQL, id, hostname, ttl.Seconds()).Scan(&n); err != nil {
		return 0, wrapErr("storage: replica heartbeat", err)
	}
	return n, nil
}

// ReplicaLeave deletes replica id's row: it stops, and the others count one
// fewer at their next heartbeat.
func (db *DB) ReplicaLeave(ctx context.Context, id string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM central_replicas WHERE id = $1`, id); err != nil {
		return wrapErr("storage: replica leave", err)
	}
	return nil
}
