-- Legal holds (issue 17, storage/SCHEMA.md "Legal holds"). A hold names a
-- remediation (kind 'remediation', correlation_id = remediation_request_id)
-- or a workflow (kind 'workflow', correlation_id = workflow_id); while it is
-- active (released_at IS NULL) the audit rows it names must be kept.
-- Retention (storage/retention.go) keeps every partition that holds such a
-- row; the triggers below make the database itself refuse to remove one, for
-- any client, psql as the tables' owner included.
--
-- What the guard refuses (SQLSTATE LH001 for a held row, LH002 for a change
-- to legal_holds; not P0001, which any RAISE EXCEPTION gives, so a client can
-- tell these refusals from other errors):
--   * DELETE of a held audit row, and UPDATE of one (an UPDATE could change
--     the ID that makes it held, or its content); a row-level trigger on the
--     partitioned tables, which PostgreSQL clones to every partition,
--     present and future (created or attached later). A delete of many rows
--     stops at the first held one and removes nothing.
--   * TRUNCATE of an audit table, or of one partition, holding a held row. A
--     statement-level trigger on a partitioned table fires only for TRUNCATE
--     of that table (then PostgreSQL fires every partition's own TRUNCATE
--     triggers too), not for TRUNCATE of a partition, and it is not cloned:
--     so each partition gets its own, here for the existing ones and in
--     storage.EnsurePartitions for the ones it creates (it also adds it to
--     any partition that lacks it, one created by hand, say).
--   * On legal_holds: DELETE and TRUNCATE, always; INSERT of a hold that is
--     not active; any UPDATE but the one release of an active hold, which
--     sets released_by, released_at and release_reason (all three, not
--     empty) and changes nothing else.
--
-- What the guard does not stop: it guards against mistakes and ordinary
-- statements, not against the tables' owner or a superuser set on it.
--   * A superuser can SET session_replication_role = replica, which
--     disables ordinary triggers for the session.
--   * The owner can ALTER TABLE … DISABLE TRIGGER (on a table or one
--     partition), DROP TRIGGER (on a parent; a clone cannot be dropped
--     alone), DROP FUNCTION … CASCADE, or replace these functions.
--   * DETACH PARTITION removes the cloned row triggers from the detached
--     table; DROP TABLE of a partition fires no trigger at all. Dropping
--     whole partitions is retention's path, and retention checks the holds
--     itself before it drops one.
-- Each of these is DDL (or a superuser setting), which log_statement = 'ddl'
-- records; run the central as a role that does not own the tables to take
-- them out of its reach.
--
-- A hold protects from the moment it commits: a DELETE whose check ran
-- before (in its own snapshot) may still remove rows it names.
--
-- The functions run with search_path fixed to this schema (then pg_temp,
-- explicitly last), so that a temporary table named legal_holds cannot stand
-- in for this one.

BEGIN;

CREATE TABLE legal_holds (
    id             TEXT        PRIMARY KEY,          -- "hold-" + UUIDv7 (or v8 derived from an Idempotency-Key)
    kind           TEXT        NOT NULL CHECK (kind IN ('remediation', 'workflow')),
    correlation_id TEXT        NOT NULL,             -- remediation_request_id (kind remediation) or workflow_id (kind workflow)
    reason         TEXT        NOT NULL,
    placed_by      TEXT        NOT NULL,             -- service account "namespace/name"
    placed_at      TIMESTAMPTZ NOT NULL,
    released_by    TEXT,
    released_at    TIMESTAMPTZ,
    release_reason TEXT
);
CREATE INDEX legal_holds_active ON legal_holds (kind, correlation_id) WHERE released_at IS NULL;

-- The column of an audit table that a hold of kind names.
CREATE FUNCTION legal_hold_column(kind text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE kind WHEN 'remediation' THEN 'remediation_request_id' WHEN 'workflow' THEN 'workflow_id' END
$$;

-- The refusal of a change to held rows: hold is the active hold that names
-- correlation_id.
CREATE FUNCTION legal_hold_refuse(what text, kind text, correlation_id text, hold legal_holds) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: % % is under legal hold %', what, legal_hold_column(kind), quote_literal(correlation_id), hold.id
        USING ERRCODE = 'LH001',
              DETAIL = format('Hold %s was placed by %s at %s: %s', hold.id, hold.placed_by, hold.placed_at, hold.reason),
              HINT = format('Release hold %s first (DELETE /api/v1/legal-holds/%s?reason=...); the active holds: SELECT * FROM legal_holds WHERE released_at IS NULL', hold.id, hold.id);
END
$$;

-- BEFORE UPDATE OR DELETE FOR EACH ROW on an audit table (cloned to each
-- partition); TG_ARGV[0] is its kind.
CREATE FUNCTION legal_hold_guard_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    correlation text;
    hold legal_holds;
BEGIN
    IF TG_ARGV[0] = 'remediation' THEN
        correlation := OLD.remediation_request_id;
    ELSE
        correlation := OLD.workflow_id;
    END IF;
    SELECT h.* INTO hold FROM legal_holds h
        WHERE h.kind = TG_ARGV[0] AND h.correlation_id = correlation AND h.released_at IS NULL
        ORDER BY h.placed_at, h.id LIMIT 1;
    IF FOUND THEN
        PERFORM legal_hold_refuse(format('cannot %s row %s of %s', lower(TG_OP), quote_literal(OLD.id), TG_TABLE_NAME),
            TG_ARGV[0], correlation, hold);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

-- BEFORE TRUNCATE FOR EACH STATEMENT on an audit table and on each of its
-- partitions; TG_ARGV[0] is its kind. One index probe of the table per
-- active hold of that kind.
CREATE FUNCTION legal_hold_guard_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    hold legal_holds;
BEGIN
    EXECUTE format('SELECT h.* FROM legal_holds h WHERE h.kind = $1 AND h.released_at IS NULL
            AND EXISTS (SELECT 1 FROM %I.%I a WHERE a.%I = h.correlation_id)
            ORDER BY h.placed_at, h.id LIMIT 1',
        TG_TABLE_SCHEMA, TG_TABLE_NAME, legal_hold_column(TG_ARGV[0]))
        INTO hold USING TG_ARGV[0];
    IF hold.id IS NOT NULL THEN
        PERFORM legal_hold_refuse(format('cannot truncate %s', TG_TABLE_NAME), TG_ARGV[0], hold.correlation_id, hold);
    END IF;
    RETURN NULL;
END
$$;

-- On legal_holds: a hold is inserted active, released once, never deleted.
CREATE FUNCTION legal_holds_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.released_by IS NOT NULL OR NEW.released_at IS NOT NULL OR NEW.release_reason IS NOT NULL THEN
            RAISE EXCEPTION 'legal hold %: a hold is placed active; release it afterwards', NEW.id
                USING ERRCODE = 'LH002';
        END IF;
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD.released_at IS NOT NULL THEN
            RAISE EXCEPTION 'legal hold % was released at % by %: a released hold is never changed',
                    OLD.id, OLD.released_at, OLD.released_by
                USING ERRCODE = 'LH002';
        END IF;
        IF (NEW.id, NEW.kind, NEW.correlation_id, NEW.reason, NEW.placed_by, NEW.placed_at)
                IS DISTINCT FROM (OLD.id, OLD.kind, OLD.correlation_id, OLD.reason, OLD.placed_by, OLD.placed_at) THEN
            RAISE EXCEPTION 'legal hold %: only released_by, released_at and release_reason may be set, once', OLD.id
                USING ERRCODE = 'LH002';
        END IF;
        IF NEW.released_at IS NULL OR coalesce(NEW.released_by, '') = '' OR coalesce(NEW.release_reason, '') = '' THEN
            RAISE EXCEPTION 'legal hold %: a release sets released_by, released_at and release_reason, all three', OLD.id
                USING ERRCODE = 'LH002';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'legal holds are never removed (%): release a hold instead', lower(TG_OP)
        USING ERRCODE = 'LH002',
              HINT = 'DELETE /api/v1/legal-holds/{id}?reason=... releases a hold and keeps its record';
END
$$;

DO $$
DECLARE
    schema text := current_schema();
    fn text;
    t record;
    part record;
BEGIN
    FOREACH fn IN ARRAY ARRAY['legal_hold_refuse(text, text, text, legal_holds)', 'legal_hold_guard_row()',
            'legal_hold_guard_truncate()', 'legal_holds_guard()']
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', fn, schema);
    END LOOP;

    FOR t IN SELECT * FROM (VALUES ('remediation_audit', 'remediation'), ('workflow_audit', 'workflow')) AS v(tbl, kind)
    LOOP
        EXECUTE format('CREATE TRIGGER legal_hold_guard BEFORE UPDATE OR DELETE ON %I
            FOR EACH ROW EXECUTE FUNCTION legal_hold_guard_row(%L)', t.tbl, t.kind);
        EXECUTE format('CREATE TRIGGER legal_hold_guard_truncate BEFORE TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION legal_hold_guard_truncate(%L)', t.tbl, t.kind);
        FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = t.tbl::regclass
        LOOP
            EXECUTE format('CREATE TRIGGER legal_hold_guard_truncate BEFORE TRUNCATE ON %I
                FOR EACH STATEMENT EXECUTE FUNCTION legal_hold_guard_truncate(%L)', part.relname, t.kind);
        END LOOP;
    END LOOP;
END
$$;

CREATE TRIGGER legal_holds_guard BEFORE INSERT OR UPDATE OR DELETE ON legal_holds
    FOR EACH ROW EXECUTE FUNCTION legal_holds_guard();
CREATE TRIGGER legal_holds_no_truncate BEFORE TRUNCATE ON legal_holds
    FOR EACH STATEMENT EXECUTE FUNCTION legal_holds_guard();

COMMIT;
