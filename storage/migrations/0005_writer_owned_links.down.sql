-- Fails (unique violation) once an ID is linked for two writers or both kinds.
BEGIN;
DROP INDEX IF EXISTS idx_audit_embeddings_unowned;
ALTER TABLE audit_embeddings DROP CONSTRAINT audit_embeddings_pkey,
    ADD CONSTRAINT audit_embeddings_pkey PRIMARY KEY (audit_id);
ALTER TABLE audit_embeddings DROP COLUMN IF EXISTS service_account;
COMMIT;
