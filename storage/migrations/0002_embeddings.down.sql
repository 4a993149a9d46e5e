BEGIN;
DROP TABLE IF EXISTS audit_embeddings;
DROP TABLE IF EXISTS embeddings;
DROP TABLE IF EXISTS embedding_outbox;
COMMIT;
