-- 0004_audit: who changed what, and when. One row per change made through
-- the API to a run (cancel, invalidate, rejudge) or a waiver (create,
-- revoke), with the name of the token that made it (NULL when readyd runs
-- without tokens). Rows are never updated; they go with their run.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,    -- ms since the Unix epoch (UTC)
    action    TEXT NOT NULL CHECK (action IN ('cancel', 'invalidate', 'rejudge',
                  'waiver-create', 'waiver-revoke')),
    actor     TEXT,                -- token name
    service   TEXT NOT NULL,
    run_id    INTEGER REFERENCES runs (id) ON DELETE CASCADE,
    waiver_id INTEGER REFERENCES waivers (id),
    reason    TEXT
);
CREATE INDEX audit_by_run ON audit (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX audit_by_waiver ON audit (waiver_id) WHERE waiver_id IS NOT NULL;
