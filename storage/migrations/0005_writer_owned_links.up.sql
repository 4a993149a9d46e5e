-- An audit's embedding link carries the audit's full identity (kind, writer,
-- ID; migration 0004): before, a workflow step with the same ID as a
-- remediation shared its link (primary key audit_id alone), and search joined
-- results to audits by ID only, so one writer could hide or stand in for
-- another's record. Search now joins by (kind, service_account, id) and says
-- who wrote each result.
--
-- A separate migration from 0004 so that rewriting the links does not hold
-- the audit tables' lock.
--
-- Existing links take their writer from the audit tables when those are in
-- this database (the vector database is the audit database by default).
-- Where they are not (a separate vector database), service_account is ''
-- ("not known"), and the embedding pipeline re-links those audits at start
-- (storage.VectorDB.LegacyLinks): it enqueues every audit with that kind and
-- ID, whose vectors are stored already, then deletes the unowned links.
BEGIN;

ALTER TABLE audit_embeddings ADD COLUMN service_account TEXT;
UPDATE audit_embeddings l SET service_account = r.service_account
    FROM remediation_audit r WHERE l.kind = 'remediation' AND r.id = l.audit_id;
UPDATE audit_embeddings l SET service_account = w.service_account
    FROM workflow_audit w WHERE l.kind = 'workflow' AND w.id = l.audit_id;
UPDATE audit_embeddings SET service_account = '' WHERE service_account IS NULL;
ALTER TABLE audit_embeddings ALTER COLUMN service_account SET NOT NULL,
    DROP CONSTRAINT audit_embeddings_pkey,
    ADD CONSTRAINT audit_embeddings_pkey PRIMARY KEY (audit_id, kind, service_account);
-- The unowned links the pipeline looks for at start (normally none).
CREATE INDEX idx_audit_embeddings_unowned ON audit_embeddings (kind, audit_id) WHERE service_account = '';

COMMIT;
