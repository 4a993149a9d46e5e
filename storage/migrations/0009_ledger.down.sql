-- Back to version 8: no ledger, no append-only guard. Dropping the guard
-- functions with CASCADE drops every trigger that runs them, those that
-- storage.EnsurePartitions put on each partition included.
BEGIN;

DROP FUNCTION audit_append_only() CASCADE;
DROP FUNCTION audit_ledger_guard() CASCADE;
DROP FUNCTION audit_ledger_sequence_guard() CASCADE;
DROP TABLE audit_ledger, ledger_legacy, ledger_checkpoints;
ALTER TABLE remediation_audit DROP COLUMN ledger_batch;
ALTER TABLE workflow_audit DROP COLUMN ledger_batch;
DROP SEQUENCE audit_ledger_batch;

COMMIT;
