-- Notify only for statements that changed rows. The statement triggers
-- of 0001 fired for every UPDATE or DELETE on their tables, also one that
-- matched no row: the lease check each node runs every few seconds (its
-- UPDATE of the probes of runs whose lease passed, almost always none)
-- made every node drop every kept answer (GET /v1/gates, history,
-- trends, reports) each time. A trigger with a transition table sees the
-- rows the statement changed; PostgreSQL allows one event per such
-- trigger, so each table gets three.
CREATE FUNCTION readyd_notify_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        PERFORM pg_notify('readyd_changed', '');
    END IF;
    RETURN NULL;
END $$;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['probe_results', 'gate_results', 'checklist_results',
                             'judgements', 'waivers', 'audit', 'stored_specs'] LOOP
        EXECUTE format('DROP TRIGGER %1$I ON %2$I', t || '_changed', t);
        EXECUTE format('CREATE TRIGGER %1$I AFTER INSERT ON %2$I REFERENCING NEW TABLE AS '
                       'changed FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows()',
                       t || '_inserted', t);
        EXECUTE format('CREATE TRIGGER %1$I AFTER UPDATE ON %2$I REFERENCING NEW TABLE AS '
                       'changed FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows()',
                       t || '_updated', t);
        EXECUTE format('CREATE TRIGGER %1$I AFTER DELETE ON %2$I REFERENCING OLD TABLE AS '
                       'changed FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows()',
                       t || '_deleted', t);
    END LOOP;
END $$;

DROP FUNCTION readyd_notify();
