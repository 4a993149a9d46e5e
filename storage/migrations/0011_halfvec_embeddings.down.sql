-- Back to version 10: full-precision vector(768). The values keep their
-- half-precision rounding; VectorDB.EnsureIndex of that version builds the
-- vector_cosine_ops index.
BEGIN;

DROP INDEX IF EXISTS idx_embeddings_embedding_hnsw;
ALTER TABLE embeddings ALTER COLUMN embedding TYPE vector(768) USING embedding::vector(768);

COMMIT;
