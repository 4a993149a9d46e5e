-- The central's replicas (storage/SCHEMA.md "Central replicas"; package
-- central/replicas): each serving replica keeps a row here, renewed every
-- heartbeat with the database's clock, and counts the rows renewed within a
-- TTL to learn how many replicas share the per-service-account rate limits.
-- A replica deletes its row when it stops in order; the others delete rows
-- older than the TTL.
--
-- UNLOGGED: the rows are worth one heartbeat. After a crash of the server
-- or a failover to a standby the table is empty, and the replicas fill it
-- again within a heartbeat; in exchange a heartbeat writes no WAL.
BEGIN;

CREATE UNLOGGED TABLE central_replicas (
    id         text        PRIMARY KEY CHECK (length(id) <= 64),
    hostname   text        NOT NULL CHECK (length(hostname) <= 255),
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL
);

COMMIT;
