-- Records belong to their writer (DESIGN.md decision 10). A record's identity
-- becomes (id, service_account): the ID a client or an agent chose is unique
-- per service account, not globally, so nothing one writer sends can match,
-- replace, suppress or reveal another writer's record. WriteBatch writes with
-- ON CONFLICT (id, service_account) DO NOTHING: a writer's own retry is still
-- a duplicate, another writer's record with the same ID is its own row.
--
-- id comes first in the key, so a look-up by ID alone still uses it.
--
-- Existing rows keep their IDs and owners: before this migration IDs were
-- unique on their own, so they are unique per writer too. The new keys are
-- built under the lock of this transaction: writers wait for it, 4.2 s for
-- a million rows on a 2-core machine (measured with a throwaway test that
-- loads 1M rows at version 3 and times storage.Migrate).
--
-- The embedding backlog records the writer of each entry (one entry per
-- committed batch, and a batch has one writer), so the worker reads back that
-- writer's rows and no other's. Existing entries take their writer from the
-- rows they list.
BEGIN;

ALTER TABLE remediation_audit DROP CONSTRAINT remediation_audit_pkey,
    ADD CONSTRAINT remediation_audit_pkey PRIMARY KEY (id, service_account);
ALTER TABLE workflow_audit DROP CONSTRAINT workflow_audit_pkey,
    ADD CONSTRAINT workflow_audit_pkey PRIMARY KEY (id, service_account);

ALTER TABLE embedding_outbox ADD COLUMN service_account TEXT;
-- '' (no writer) only for an entry whose rows are all gone: it is cleared
-- when claimed, as such entries always were.
UPDATE embedding_outbox o SET service_account = coalesce(
    (SELECT r.service_account FROM remediation_audit r WHERE r.id = ANY(o.remediation_ids) LIMIT 1),
    (SELECT w.service_account FROM workflow_audit w WHERE w.id = ANY(o.workflow_ids) LIMIT 1),
    '');
ALTER TABLE embedding_outbox ALTER COLUMN service_account SET NOT NULL;

COMMIT;
