-- Back to unpartitioned audit tables (version 6). Unlike the up migration
-- this copies every row, under both tables' locks: minutes for millions of
-- rows. audit_ids kept one row per (kind, writer, ID), so the old primary
-- key (id, service_account) holds for the rows copied.
BEGIN;

LOCK TABLE remediation_audit, workflow_audit IN ACCESS EXCLUSIVE MODE;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['remediation_audit', 'workflow_audit']
    LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_partitioned');
        EXECUTE format('ALTER INDEX %I RENAME TO %I', t || '_pkey', t || '_partitioned_pkey');
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', t, t || '_partitioned');
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', t, t || '_partitioned');
        EXECUTE format('DROP TABLE %I', t || '_partitioned');
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id, service_account)', t, t || '_pkey');
    END LOOP;
END
$$;

-- The indexes of 0006.
CREATE INDEX idx_remediation_audit_unfiltered_created_at ON remediation_audit (created_at)
    WHERE received_at > '-infinity';
CREATE INDEX idx_workflow_audit_unfiltered_executed_at ON workflow_audit (executed_at)
    WHERE received_at > '-infinity';
CREATE INDEX idx_remediation_audit_request_created_at ON remediation_audit (remediation_request_id, created_at);
CREATE INDEX idx_remediation_audit_alert_created_at ON remediation_audit (alert_name, created_at)
    WHERE alert_name IS NOT NULL;
CREATE INDEX idx_remediation_audit_cluster_created_at ON remediation_audit (cluster, created_at)
    WHERE cluster IS NOT NULL;
CREATE INDEX idx_remediation_audit_namespace_created_at ON remediation_audit (namespace, created_at)
    WHERE namespace IS NOT NULL;
CREATE INDEX idx_remediation_audit_action_created_at ON remediation_audit (action_type, created_at)
    WHERE action_type IS NOT NULL;
CREATE INDEX idx_remediation_audit_status_created_at ON remediation_audit (status, created_at)
    WHERE status IS NOT NULL;
CREATE INDEX idx_remediation_audit_writer_created_at ON remediation_audit (service_account, created_at);
CREATE INDEX idx_workflow_audit_workflow_executed_at ON workflow_audit (workflow_id, executed_at);
CREATE INDEX idx_workflow_audit_step_executed_at ON workflow_audit (step_name, executed_at);
CREATE INDEX idx_workflow_audit_step_status_executed_at ON workflow_audit (step_status, executed_at);
CREATE INDEX idx_workflow_audit_writer_executed_at ON workflow_audit (service_account, executed_at);

DROP TABLE audit_ids;
DROP TABLE partition_drops;

COMMIT;
