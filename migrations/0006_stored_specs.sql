-- 0006_stored_specs: the spec a service is gated with, stored per service
-- and environment and versioned (1, 2, 3...), so a pipeline or a CD tool
-- starts a run by naming the service, environment and version alone.
-- text is what was sent (YAML or JSON, kept for diffs); doc is the
-- validated document as JSON that runs are built from. Neither is
-- redacted: a run needs the target's credentials, so reading a stored
-- spec needs the submitter role (docs/security.md).
CREATE TABLE stored_specs (
    service     TEXT NOT NULL,
    environment TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    format      TEXT NOT NULL CHECK (format IN ('yaml', 'json')),
    text        TEXT NOT NULL,
    doc         TEXT NOT NULL,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (service, environment, version)
) WITHOUT ROWID;

-- The stored spec version a run was started from (NULL: the whole spec
-- came with POST /v1/runs).
ALTER TABLE runs ADD COLUMN spec_version INTEGER;
