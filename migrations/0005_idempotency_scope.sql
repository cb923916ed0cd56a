-- 0005_idempotency_scope: an Idempotency-Key belongs to the service of the
-- run it created. Keys were unique across every service, so a token
-- scoped to one team could take another team's predictable key (a commit
-- sha) and make that team's submits fail. The same key for two services
-- now names two runs. runs.idempotency_key (UNIQUE, which SQLite cannot
-- drop without rebuilding the table every other table references) is
-- emptied and no longer written.
CREATE TABLE idempotency_keys (
    service TEXT NOT NULL,
    key     TEXT NOT NULL,
    run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    PRIMARY KEY (service, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_run ON idempotency_keys (run_id);

INSERT INTO idempotency_keys (service, key, run_id)
    SELECT service, idempotency_key, id FROM runs WHERE idempotency_key IS NOT NULL;
UPDATE runs SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL;
