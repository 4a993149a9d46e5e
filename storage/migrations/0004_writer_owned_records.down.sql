-- Fails (unique violation) once two writers have stored the same ID: such
-- rows cannot go back to a global key without deleting one of them.
BEGIN;
ALTER TABLE embedding_outbox DROP COLUMN IF EXISTS service_account;
ALTER TABLE workflow_audit DROP CONSTRAINT workflow_audit_pkey,
    ADD CONSTRAINT workflow_audit_pkey PRIMARY KEY (id);
ALTER TABLE remediation_audit DROP CONSTRAINT remediation_audit_pkey,
    ADD CONSTRAINT remediation_audit_pkey PRIMARY KEY (id);
COMMIT;
