-- 0003_history: waivers, rejudgements and the index behind GET /v1/gates
-- (docs/spec.md "Gates"). Times are ms since the Unix epoch (UTC), as in 0001.

-- A waiver turns a failing gate of a service (in one environment, or any
-- when environment is NULL) into a recorded, expiring "waived" outcome.
-- Rows are never deleted: DELETE sets revoked_at, so reports that used a
-- waiver can still name it.
CREATE TABLE waivers (
    id          INTEGER PRIMARY KEY,
    service     TEXT NOT NULL,
    environment TEXT,
    expr        TEXT NOT NULL,      -- gate expression, normalized spacing
    reason      TEXT NOT NULL,
    approver    TEXT NOT NULL,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX waivers_by_service ON waivers (service, expr, expires_at);

-- The waiver a gate result used: {id, reason, approver, expires_at} JSON.
ALTER TABLE gate_results ADD COLUMN waiver TEXT;

-- Re-decisions of a stored run (POST /v1/runs/{id}/rejudge), kept beside
-- the original verdict, which stays the run's.
CREATE TABLE judgements (
    run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    requested_by TEXT,
    gates        TEXT NOT NULL,     -- JSON array of gate results
    verdict      TEXT NOT NULL CHECK (verdict IN ('PASS', 'FAIL', 'ERROR')),
    PRIMARY KEY (run_id, seq)
);

-- GET /v1/gates and baselines read only decided, valid runs: a partial
-- index keeps that one index walk however many runs are queued or
-- invalidated. The query must repeat this WHERE clause to use it.
CREATE INDEX runs_decided ON runs (service, environment, id)
    WHERE state IN ('passed', 'failed', 'error') AND invalidated_at IS NULL;
