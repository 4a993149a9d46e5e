-- Time partitions (issue 17, storage/SCHEMA.md "Partitions"): each audit
-- table becomes range-partitioned by its event time (created_at,
-- executed_at), so that retention drops whole partitions and reads bounded
-- in time touch only their partitions.
--
-- No row is copied. The existing table becomes the first partition,
-- "<table>_history", bounded FROM (MINVALUE) TO the start of the month after
-- the newest of now() and its newest row: every row it holds fits, and so
-- does every write until that boundary. The central creates the partitions
-- after it, ahead of time (storage/partitions.go). Retention drops the
-- history partition like any other once its upper bound is past.
--
-- PostgreSQL puts the partition key into every unique constraint: the
-- primary key becomes (id, service_account, <event time>), unique only
-- within a partition. A record is still stored once, whatever time a retry
-- carries: audit_ids is the global key of every stored record (kind,
-- writer, ID), claimed in the same transaction as the row, and a record
-- whose key is claimed already is a duplicate (storage/SCHEMA.md, "Exactly
-- once across partitions"). It also tells a look-up by ID which partition
-- holds the record.
--
-- Writers wait for this migration (it holds both tables' locks): the time
-- to copy every record's key into audit_ids, to build the new unique index
-- on the history partition unless it exists already (create it beforehand
-- with CREATE UNIQUE INDEX CONCURRENTLY, see docs/deploy.md), and one scan
-- of each table to check the partition bound.

BEGIN;

LOCK TABLE remediation_audit, workflow_audit IN ACCESS EXCLUSIVE MODE;

CREATE TABLE audit_ids (
    id              TEXT        NOT NULL,
    service_account TEXT        NOT NULL,
    kind            TEXT        NOT NULL,
    -- The stored row's event time, its partition key: a look-up by ID goes
    -- to that partition only, and retention deletes the keys of the
    -- partitions it dropped by it (a BRIN index: keys arrive in about time
    -- order, and it costs almost nothing to maintain).
    event_time      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, service_account, kind)
);
CREATE INDEX audit_ids_event_time ON audit_ids USING brin (event_time);

INSERT INTO audit_ids (id, service_account, kind, event_time)
SELECT id, service_account, 'remediation', created_at FROM remediation_audit;
INSERT INTO audit_ids (id, service_account, kind, event_time)
SELECT id, service_account, 'workflow', executed_at FROM workflow_audit;

-- What retention dropped (storage/retention.go): one row per partition,
-- written in the transaction that drops it, so that what was pruned, when,
-- and how much stays on record after the rows are gone. keys_deleted_at and
-- links_deleted_at mark the clean-ups that follow the drop (the partition's
-- keys in audit_ids, its embedding links): a crash between the steps leaves
-- them NULL and the next run finishes them.
CREATE TABLE partition_drops (
    kind             TEXT        NOT NULL,
    partition        TEXT        NOT NULL,
    range_from       TIMESTAMPTZ,          -- NULL: MINVALUE (the history partition)
    range_to         TIMESTAMPTZ NOT NULL,
    dropped_at       TIMESTAMPTZ NOT NULL,
    size_bytes       BIGINT      NOT NULL,
    rows_estimate    BIGINT      NOT NULL, -- pg_class.reltuples: counting would cost a scan
    keys_deleted_at  TIMESTAMPTZ,
    links_deleted_at TIMESTAMPTZ,
    PRIMARY KEY (kind, range_to)
);

DO $$
DECLARE
    t record;
    idx record;
    upper_bound timestamptz;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('remediation_audit', 'created_at'), ('workflow_audit', 'executed_at')) AS v(tbl, col)
    LOOP
        -- The old table, renamed, with its indexes renamed after it.
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t.tbl, t.tbl || '_history');
        FOR idx IN SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = t.tbl || '_history'
                AND indexname <> t.tbl || '_history_key'
        LOOP
            EXECUTE format('ALTER INDEX %I RENAME TO %I', idx.indexname, 'history_' || idx.indexname);
        END LOOP;
        -- The key the partitioned table requires, built here unless it was
        -- created beforehand (docs/deploy.md); then the old one goes.
        EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %I (id, service_account, %I)',
            t.tbl || '_history_key', t.tbl || '_history', t.col);
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', t.tbl || '_history', 'history_' || t.tbl || '_pkey');
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I',
            t.tbl || '_history', t.tbl || '_history_pkey', t.tbl || '_history_key');

        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (%I)',
            t.tbl, t.tbl || '_history', t.col);
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id, service_account, %I)',
            t.tbl, t.tbl || '_pkey', t.col);

        EXECUTE format('SELECT date_trunc(''month'', greatest(now(), max(%I)) AT TIME ZONE ''UTC'') AT TIME ZONE ''UTC'' + interval ''1 month'' FROM %I',
            t.col, t.tbl || '_history') INTO upper_bound;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
            t.tbl, t.tbl || '_history', upper_bound);
    END LOOP;
END
$$;

-- The read indexes of 0006, now on the partitioned tables: the history
-- partition's own (renamed above) are attached to them, not rebuilt.
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

COMMIT;
