// Package storage owns PostgreSQL: the connection pool (pgx v5, pgxpool), the
// embedded SQL migrations and the idempotent, batched write of audit records.
//
// It imports wire for the record types. It must not import agent, central,
// cmd or anything HTTP: the HTTP edge maps its errors (ErrUnavailable → 503)
// with errors.Is. Vector storage (pgvector, the embedding outbox) will live
// here too; WriteBatch keeps the whole batch in one transaction so that an
// outbox insert can join it.
package storage
