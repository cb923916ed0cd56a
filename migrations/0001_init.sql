-- 0001_init: runs, their probes, gate and checklist results, and the long
-- metrics table that trends read. Times are ms since the Unix epoch (UTC).

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    service         TEXT NOT NULL,
    version         TEXT NOT NULL,
    environment     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'passed',
                        'failed', 'error', 'cancelled', 'interrupted')),
    verdict         TEXT CHECK (verdict IN ('PASS', 'FAIL', 'ERROR')),
    submitted_by    TEXT,
    idempotency_key TEXT UNIQUE,
    spec            TEXT NOT NULL,          -- redacted spec as JSON
    error           TEXT,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    invalidated_at  INTEGER,                -- excluded from baselines and trends
    invalid_reason  TEXT
);
CREATE INDEX runs_by_service ON runs (service, environment, id);
CREATE INDEX runs_by_state ON runs (state, id);

CREATE TABLE probe_results (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    type        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'passed',
                    'failed', 'error', 'cancelled', 'interrupted')),
    started_at  INTEGER,
    finished_at INTEGER,
    metrics     TEXT NOT NULL DEFAULT '{}', -- JSON object name -> number
    details     TEXT,                       -- JSON or NULL
    error       TEXT,
    PRIMARY KEY (run_id, idx)
);

-- One row per published metric of a finished probe: what trends query.
CREATE TABLE metrics (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    service     TEXT NOT NULL,
    environment TEXT NOT NULL,
    probe       TEXT NOT NULL,
    metric      TEXT NOT NULL,
    value       REAL,
    ts          INTEGER NOT NULL,
    PRIMARY KEY (run_id, probe, metric)
);
CREATE INDEX metrics_trend ON metrics (service, probe, metric, environment, ts);

CREATE TABLE gate_results (
    run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    expr         TEXT NOT NULL,
    metric       TEXT,
    op           TEXT,
    threshold    REAL,
    value        REAL,
    samples      INTEGER,
    baseline     REAL,
    baseline_run INTEGER,
    advisory     INTEGER NOT NULL DEFAULT 0,
    outcome      TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'error', 'waived',
                     'no-baseline')),
    reason       TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE checklist_results (
    run_id   INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    item     TEXT NOT NULL,
    required INTEGER NOT NULL,
    evidence TEXT,
    outcome  TEXT NOT NULL CHECK (outcome IN ('pass', 'fail')),
    reason   TEXT NOT NULL,
    PRIMARY KEY (run_id, item)
);
