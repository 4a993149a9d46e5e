-- Back to version 9: no membership table (replicas then count themselves
-- as one each, or take --replicas).
BEGIN;

DROP TABLE central_replicas;

COMMIT;
