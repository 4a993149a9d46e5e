-- Audit tables of the spec (docs: spec/integration-points.md, "PostgreSQL (Audit Trail)"),
-- in valid PostgreSQL: the spec's inline INDEX clauses are MySQL syntax and become
-- CREATE INDEX statements; TIMESTAMP becomes timestamptz.
--
-- Column sizes follow wire's length limits: VARCHAR(255) for IDs and names,
-- VARCHAR(50) for statuses and priority, VARCHAR(512) for target_resource,
-- TEXT for reasoning and error_message.
--
-- Every row also records who wrote it (service_account, "namespace/name") and
-- when it was first accepted (received_at: the record's receivedAt, assigned by
-- the agent or the central). Rows are written with INSERT ... ON CONFLICT (id)
-- DO NOTHING: a retried record never changes a stored row.
--
-- NULL always means "the writer did not send this field"; the storage layer
-- turns an omitted (empty) optional string into NULL.

BEGIN;

CREATE TABLE remediation_audit (
    id                     VARCHAR(255)     PRIMARY KEY,
    remediation_request_id VARCHAR(255)     NOT NULL,
    -- The spec marks alert_name, namespace, cluster and status NOT NULL, but
    -- its own writers disagree: the Kubernetes Executor sends none of
    -- alert_name/namespace/cluster, and the Gateway and AI Analysis send no
    -- status. They are NULLable here; NULL = "not sent".
    alert_name             VARCHAR(255),
    namespace              VARCHAR(255),
    cluster                VARCHAR(255),
    priority               VARCHAR(50),
    action_type            VARCHAR(255),
    status                 VARCHAR(50),
    confidence             DOUBLE PRECISION CHECK (confidence >= 0 AND confidence <= 1),
    reasoning              TEXT,
    target_resource        VARCHAR(512),
    duration_ms            INTEGER,
    error_message          TEXT,
    -- The record's createdAt, else its receivedAt (never NULL).
    created_at             TIMESTAMPTZ      NOT NULL,
    executed_at            TIMESTAMPTZ,
    service_account        TEXT             NOT NULL,
    received_at            TIMESTAMPTZ      NOT NULL
);

CREATE INDEX idx_remediation_audit_remediation_request_id ON remediation_audit (remediation_request_id);
CREATE INDEX idx_remediation_audit_alert_name ON remediation_audit (alert_name);
CREATE INDEX idx_remediation_audit_cluster_namespace ON remediation_audit (cluster, namespace);
CREATE INDEX idx_remediation_audit_created_at ON remediation_audit (created_at DESC);

CREATE TABLE workflow_audit (
    id              VARCHAR(255) PRIMARY KEY,
    workflow_id     VARCHAR(255) NOT NULL,
    step_name       VARCHAR(255) NOT NULL,
    step_status     VARCHAR(50)  NOT NULL,
    -- NULL when the writer sent no duration (the spec's NOT NULL would force
    -- an invented 0).
    duration_ms     INTEGER,
    error_message   TEXT,
    -- The record's executedAt, else its receivedAt (never NULL).
    executed_at     TIMESTAMPTZ  NOT NULL,
    service_account TEXT         NOT NULL,
    received_at     TIMESTAMPTZ  NOT NULL
);

CREATE INDEX idx_workflow_audit_workflow_id ON workflow_audit (workflow_id);
CREATE INDEX idx_workflow_audit_executed_at ON workflow_audit (executed_at DESC);

COMMIT;
