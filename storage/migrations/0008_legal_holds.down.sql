-- Back to version 7: no legal holds, no guard. Dropping the audit tables'
-- trigger functions with CASCADE drops every trigger that runs them: those
-- on the audit tables, their clones on each partition, and the TRUNCATE
-- triggers that the migration and storage.EnsurePartitions put on each
-- partition. The holds themselves go with their table.
BEGIN;

DROP FUNCTION legal_hold_guard_row() CASCADE;
DROP FUNCTION legal_hold_guard_truncate() CASCADE;
DROP FUNCTION legal_hold_refuse(text, text, text, legal_holds);
DROP TABLE legal_holds;
DROP FUNCTION legal_holds_guard();
DROP FUNCTION legal_hold_column(text);

COMMIT;
