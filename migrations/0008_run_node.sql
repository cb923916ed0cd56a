-- 0008_run_node: the node that ran each run (readyd.yaml node_id), shown
-- as the run resource's `node`. With SQLite one readyd uses the database,
-- so it is the node that accepted the run; runs stored before this
-- migration have none.
ALTER TABLE runs ADD COLUMN node TEXT;
