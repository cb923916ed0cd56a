-- 0002_load: what the load engine measured, kept beside its probe so a
-- stored run can be re-judged exactly (docs/MEASUREMENT.md): each
-- histogram serialized by lib/hist (hist_serialize, canonical bytes), and
-- the per-second timeline. Rows go with their run (ON DELETE CASCADE).
-- The raw_ prefix marks them for retention.raw_days (lib/store/sqlite/sqlite_retention.c):
-- summaries and verdicts are kept forever, these are pruned.
CREATE TABLE raw_histograms (
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    probe_idx INTEGER NOT NULL,
    name      TEXT NOT NULL CHECK (name IN ('latency', 'latency_uncorrected', 'failed')),
    data      BLOB NOT NULL,
    PRIMARY KEY (run_id, probe_idx, name)
);

CREATE TABLE raw_timelines (
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    probe_idx INTEGER NOT NULL,
    second    INTEGER NOT NULL CHECK (second >= 0),
    requests  INTEGER NOT NULL,
    errors    INTEGER NOT NULL,
    p50_ms    REAL,
    p99_ms    REAL,
    PRIMARY KEY (run_id, probe_idx, second)
);
