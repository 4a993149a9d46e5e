-- Embedding backlog claims become leases (storage/outbox.go): a worker marks
-- the entries it takes with leased_until and commits at once, rather than
-- holding a transaction open while a remote embedder answers (an "idle in
-- transaction" session that idle_in_transaction_session_timeout may kill and
-- that holds back vacuum). Entries are deleted by id once their vectors are
-- stored; an expired lease (a worker that died) makes them claimable again.
-- id is the entries' stable identity: a row's ctid changes when its lease is
-- written. One entry per committed batch, so the index costs one insert per
-- batch, not per audit.
BEGIN;
ALTER TABLE embedding_outbox
    ADD COLUMN id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ADD COLUMN leased_until TIMESTAMPTZ;
COMMIT;
