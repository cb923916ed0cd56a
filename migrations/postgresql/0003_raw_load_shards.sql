-- 0003_raw_load_shards (PostgreSQL): a load probe fanned out over several
-- nodes (spec `nodes:`, docs/scale-out.md). The node executing the run
-- (the coordinator) runs shard 0 itself and queues one row here for each
-- other shard; another alive node claims each (one shard of a probe per
-- node), they agree on a start time on the database's clock, and each
-- node hands back its engine's result (serialized histograms, counters,
-- timeline) for the coordinator to merge. Times written by the database
-- are on its clock (clock_timestamp()), so no two nodes' clocks are ever
-- compared.
-- Once the run has ended the rows are raw measurements like
-- raw_histograms' (the merge is stored there): the raw_ prefix puts them
-- under retention.raw_days.

CREATE TABLE raw_load_shards (
    run_id       BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    probe_idx    INTEGER NOT NULL,
    shard        INTEGER NOT NULL CHECK (shard >= 1),
    shards       INTEGER NOT NULL CHECK (shards > shard),
    coordinator  TEXT NOT NULL,             -- the node executing the run
    node         TEXT,                      -- the node that claimed the shard
    state        TEXT NOT NULL CHECK (state IN ('queued', 'claimed', 'running', 'done',
                     'failed')),
    params       TEXT NOT NULL,             -- JSON: the shard's share of the load
    start_at     BIGINT,                    -- agreed start, database clock (ms)
    offset_ms    DOUBLE PRECISION,          -- the node's clock minus the database's
    started_at   BIGINT,                    -- when it started, database clock (ms)
    heartbeat_at BIGINT,                    -- database clock (ms)
    requests     BIGINT,                    -- measured so far, then in all
    stop         BOOLEAN NOT NULL DEFAULT false, -- the coordinator asks it to end
    result       TEXT,                      -- JSON: the engine's result
    error        TEXT,
    PRIMARY KEY (run_id, probe_idx, shard)
);
CREATE INDEX raw_load_shards_queued ON raw_load_shards (run_id) WHERE state = 'queued';

-- A queued shard moves every node's generation, so idle nodes look for
-- it at once; heartbeats and results notify nobody (only the coordinator
-- reads them).
CREATE TRIGGER raw_load_shards_notify AFTER INSERT ON raw_load_shards
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
