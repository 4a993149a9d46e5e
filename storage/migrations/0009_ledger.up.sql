-- Tamper evidence (issue 18; storage/SCHEMA.md "Ledger"; package ledger).
--
-- Every transaction that stores audit rows stores one entry in audit_ledger:
-- its writer, and for each row its ID, event time and leaf (the SHA-256 of
-- the row's canonical bytes). Each row carries its entry's batch number
-- (ledger_batch). Entries are written pending (seq NULL); the sequencer
-- (storage.DB.SequenceLedger, every central replica) gives them gapless
-- sequence numbers and chain hashes. Retention writes an anchor entry (the
-- prune_* columns) in the transaction that drops a partition.
--
-- The guard: audit rows are append-only (no UPDATE, DELETE or TRUNCATE, for
-- any client: only retention's partition drop removes rows); a ledger entry
-- is never changed but by its one sequencing, never removed. SQLSTATE LG001
-- for an audit row, LG002 for the ledger. As with the legal holds' guard
-- (0008), the tables' owner or a superuser can still disable a trigger: that
-- is what the ledger and its signed checkpoints catch.
--
-- Rows that exist now carry batch 0: they predate the ledger and are not
-- covered; ledger_legacy keeps how many there were, and the verifier
-- reports more than that as rows written outside the central. Adding the
-- column with a default rewrites no row.

BEGIN;

LOCK TABLE remediation_audit, workflow_audit IN ACCESS EXCLUSIVE MODE;

CREATE SEQUENCE audit_ledger_batch; -- 1, 2, …; batch 0 is "before the ledger"

-- A writer takes nextval('audit_ledger_batch') first in its transaction and
-- stores its rows with that batch. A row inserted any other way gets 0, as
-- the rows that exist now do: "before the ledger", which the verifier counts
-- against ledger_legacy.
ALTER TABLE remediation_audit ADD COLUMN ledger_batch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workflow_audit ADD COLUMN ledger_batch BIGINT NOT NULL DEFAULT 0;

CREATE TABLE audit_ledger (
    batch             BIGINT        NOT NULL, -- unique: nextval
    seq               BIGINT,                 -- NULL while pending
    hash              BYTEA,                  -- the chain hash, with seq
    digest            BYTEA         NOT NULL, -- SHA-256 of the content below (ledger.Entry.ComputeDigest)
    service_account   TEXT          NOT NULL, -- the writer
    written_at        TIMESTAMPTZ   NOT NULL,
    -- The rows stored: for each kind (remediation, then workflow) their
    -- count, then per row, sorted by ID, its ID, event time and leaf
    -- (ledger.Entry.EncodeRows). One binary value: no array to build or
    -- parse on the write path.
    rows              BYTEA         NOT NULL,
    -- An anchor: retention dropped prune_kind's partition [prune_from,
    -- prune_to) (prune_from NULL: MINVALUE) when the head was
    -- prune_head_seq with prune_head_hash.
    prune_kind        TEXT,
    prune_from        TIMESTAMPTZ,
    prune_to          TIMESTAMPTZ,
    prune_head_seq    BIGINT,
    prune_head_hash   BYTEA,
    CHECK ((seq IS NULL) = (hash IS NULL))
);
-- Few indexes, each written once per entry: the pending ones by batch
-- (what the sequencer takes; an entry leaves it when sequenced), the
-- sequenced ones by seq. The verifier reads the whole range and maps
-- batches itself.
CREATE INDEX audit_ledger_pending ON audit_ledger (batch) WHERE seq IS NULL;
CREATE UNIQUE INDEX audit_ledger_seq ON audit_ledger (seq) WHERE seq IS NOT NULL;
-- Out of line without compression: leaves are random bytes, which pglz
-- would try to compress on every write, for little.
ALTER TABLE audit_ledger ALTER COLUMN rows SET STORAGE EXTERNAL;

-- The genesis entry: sequence 0, hash and digest 32 zero bytes.
INSERT INTO audit_ledger (batch, seq, hash, digest, service_account, written_at, rows)
VALUES (0, 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'), '', now(), '');

CREATE TABLE ledger_legacy (
    kind TEXT   PRIMARY KEY,
    row_count BIGINT NOT NULL
);
INSERT INTO ledger_legacy (kind, row_count)
SELECT 'remediation', count(*) FROM remediation_audit
UNION ALL SELECT 'workflow', count(*) FROM workflow_audit;

-- The checkpoints the centrals signed, also kept here so that an export can
-- carry one (the copies that count are those kept outside the database: a
-- signature cannot be forged, but a row can be deleted).
CREATE TABLE ledger_checkpoints (
    seq       BIGINT      NOT NULL,
    hash      BYTEA       NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL,
    key_id    TEXT        NOT NULL,
    signature BYTEA       NOT NULL,
    PRIMARY KEY (seq, key_id)
);

CREATE FUNCTION audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        RAISE EXCEPTION 'audit rows are append-only: cannot % row % of %', lower(TG_OP), quote_literal(OLD.id), TG_TABLE_NAME
            USING ERRCODE = 'LG001',
                  HINT = 'Only retention removes audit rows, by dropping whole partitions (central maintain --retention).';
    END IF;
    RAISE EXCEPTION 'audit rows are append-only: cannot truncate %', TG_TABLE_NAME
        USING ERRCODE = 'LG001',
              HINT = 'Only retention removes audit rows, by dropping whole partitions (central maintain --retention).';
END
$$;

-- On audit_ledger, ledger_legacy and ledger_checkpoints: every change
-- refused, but the sequencing of an entry (below).
CREATE FUNCTION audit_ledger_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: cannot %', TG_TABLE_NAME, lower(TG_OP)
        USING ERRCODE = 'LG002';
END
$$;

-- The one change an entry takes: its sequencing, seq and hash set once. It
-- runs for an UPDATE that sets seq or hash; one that sets any other column
-- fires audit_ledger_guard (a trigger per column list, so that no entry's
-- arrays are read back to compare them).
CREATE FUNCTION audit_ledger_sequence_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_ledger: entry % is sequenced already (seq %): an entry is never changed', OLD.batch, OLD.seq
        USING ERRCODE = 'LG002';
END
$$;

DO $$
DECLARE
    schema text := current_schema();
    t text;
    part record;
BEGIN
    EXECUTE format('ALTER FUNCTION audit_append_only() SET search_path = %I, pg_temp', schema);
    EXECUTE format('ALTER FUNCTION audit_ledger_guard() SET search_path = %I, pg_temp', schema);
    EXECUTE format('ALTER FUNCTION audit_ledger_sequence_guard() SET search_path = %I, pg_temp', schema);
    -- Named to fire after the legal holds' guard (triggers fire in name
    -- order): a held row is refused as held (LH001), the others as
    -- append-only.
    FOREACH t IN ARRAY ARRAY['remediation_audit', 'workflow_audit']
    LOOP
        EXECUTE format('CREATE TRIGGER tamper_guard BEFORE UPDATE OR DELETE ON %I
            FOR EACH ROW EXECUTE FUNCTION audit_append_only()', t);
        EXECUTE format('CREATE TRIGGER tamper_guard_truncate BEFORE TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()', t);
        FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = t::regclass
        LOOP
            EXECUTE format('CREATE TRIGGER tamper_guard_truncate BEFORE TRUNCATE ON %I
                FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()', part.relname);
        END LOOP;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['ledger_legacy', 'ledger_checkpoints']
    LOOP
        EXECUTE format('CREATE TRIGGER tamper_guard BEFORE UPDATE OR DELETE ON %I
            FOR EACH ROW EXECUTE FUNCTION audit_ledger_guard()', t);
        EXECUTE format('CREATE TRIGGER tamper_guard_truncate BEFORE TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION audit_ledger_guard()', t);
    END LOOP;
END
$$;

CREATE TRIGGER tamper_guard BEFORE DELETE OR UPDATE OF batch, digest, service_account, written_at, rows,
        prune_kind, prune_from, prune_to, prune_head_seq, prune_head_hash ON audit_ledger
    FOR EACH ROW EXECUTE FUNCTION audit_ledger_guard();
CREATE TRIGGER tamper_guard_sequence BEFORE UPDATE OF seq, hash ON audit_ledger
    FOR EACH ROW EXECUTE FUNCTION audit_ledger_sequence_guard();
CREATE TRIGGER tamper_guard_truncate BEFORE TRUNCATE ON audit_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION audit_ledger_guard();

COMMIT;
