// Package storage owns PostgreSQL: the connection pool (pgx v5, pgxpool), the
// embedded SQL migrations, the idempotent, batched write of audit records and
// their reading back (read.go: query pages with keyset positions, a
// remediation's timeline, records by ID, the streamed export; scan.go: the
// one mapping of a row to wire), the time partitions (partitions.go) and the
// legal holds with the database's guard of held rows (holds.go, migration
// 0008).
//
// It imports wire for the record types. It must not import agent, central,
// cmd or anything HTTP: the HTTP edge maps its errors (ErrUnavailable → 503)
// with errors.Is. It also owns the embedding backlog (outbox.go: written in
// WriteBatch's transaction, claimed by the pipeline's workers) and the vector
// database (vectors.go: pgvector-go, deduplicated COPY, HNSW, similarity
// search), and the central replicas' membership table (replicas.go: the
// heartbeat that counts the replicas sharing the rate limits, migration
// 0010).
package storage
