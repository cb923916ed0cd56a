-- 0004_node_sessions (PostgreSQL): each node's database session, as its
-- heartbeat last saw it (the server process id and when that session
-- began), and until when that beat vouches for it (the database's clock
-- plus the node's own lease). A node's load slots are session advisory
-- locks (max_concurrent_load across the cluster); a node that stopped
-- renewing its lease without its session ending (a stopped process, a
-- host gone without a word, a cut-off network) would keep them until the
-- server's TCP keepalive gives up, hours later. Once session_until has
-- passed, another node ends that session (pg_terminate_backend), which
-- frees the slots; the pair (pid, start) names one session, never a later
-- one that reuses the process id. A node that reconnected ends its own
-- previous session the same way at its next beat.

ALTER TABLE nodes
    ADD COLUMN backend_pid     INTEGER,
    ADD COLUMN backend_started TIMESTAMPTZ,
    ADD COLUMN session_until   BIGINT;
