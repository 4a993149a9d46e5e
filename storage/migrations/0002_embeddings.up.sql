-- Embeddings (DESIGN.md decisions 2-4). The same migrations run on the audit
-- database and on the vector database (they may be one database): each side
-- uses its own tables and leaves the others empty.
--
-- Audit side: embedding_outbox, written in the transaction that commits the
-- audit rows: one entry per committed batch, holding the IDs of the rows that
-- batch stored (COPY fast path: every row; ON CONFLICT fallback: only the rows
-- actually inserted, one entry per kind). One row per batch rather than per
-- audit keeps the audit write within 0.80 of a raw COPY (a row per audit cost
-- 15%). Workers claim entries with SELECT … FOR UPDATE SKIP LOCKED, and
-- delete them (by ctid, under the same lock) once the vectors are stored. It
-- has no index on purpose: it is a queue, read in heap order and emptied.
--
-- Vector side: embeddings holds one vector per distinct embedding document
-- (content_hash = SHA-256 of the embedder's identity and the document, see
-- central/embed); audit_embeddings links each audit to its vector and carries
-- the columns similarity search filters on. The HNSW index on
-- embeddings.embedding is not created here: its parameters (m,
-- ef_construction) are configuration, applied by storage.VectorDB.EnsureIndex.

BEGIN;

CREATE EXTENSION IF NOT EXISTS vector;

-- IDs and names are TEXT here: wire bounds them, and only the audit tables
-- mirror wire's limits in their column sizes.

CREATE TABLE embedding_outbox (
    remediation_ids TEXT[]      NOT NULL,
    workflow_ids    TEXT[]      NOT NULL,
    enqueued_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- lz4 (cheaper than pglz): the IDs of one batch share their "audit-" prefix
-- and UUIDv7 time bits, and every byte saved is WAL not written.
ALTER TABLE embedding_outbox ALTER COLUMN remediation_ids SET COMPRESSION lz4,
    ALTER COLUMN workflow_ids SET COMPRESSION lz4;

CREATE TABLE embeddings (
    content_hash BYTEA       PRIMARY KEY,
    embedding    vector(768) NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE audit_embeddings (
    audit_id     TEXT         PRIMARY KEY,
    kind         TEXT         NOT NULL,
    content_hash BYTEA        NOT NULL,
    cluster      TEXT,
    namespace    TEXT,
    -- The audit's own time: created_at (remediation) or executed_at (workflow).
    occurred_at  TIMESTAMPTZ  NOT NULL,
    embedded_at  TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE INDEX idx_audit_embeddings_content_hash ON audit_embeddings (content_hash);
CREATE INDEX idx_audit_embeddings_occurred_at ON audit_embeddings (occurred_at DESC);

COMMIT;
