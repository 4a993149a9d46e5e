BEGIN;
DROP TABLE IF EXISTS workflow_audit;
DROP TABLE IF EXISTS remediation_audit;
COMMIT;
