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

DROP TRIGGER probe_results_changed ON probe_results;
CREATE TRIGGER probe_results_inserted AFTER INSERT ON probe_results REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER probe_results_updated AFTER UPDATE ON probe_results REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER probe_results_deleted AFTER DELETE ON probe_results REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();

DROP TRIGGER gate_results_changed ON gate_results;
CREATE TRIGGER gate_results_inserted AFTER INSERT ON gate_results REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER gate_results_updated AFTER UPDATE ON gate_results REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER gate_results_deleted AFTER DELETE ON gate_results REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();

DROP TRIGGER checklist_results_changed ON checklist_results;
CREATE TRIGGER checklist_results_inserted AFTER INSERT ON checklist_results REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER checklist_results_updated AFTER UPDATE ON checklist_results REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER checklist_results_deleted AFTER DELETE ON checklist_results REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();

DROP TRIGGER judgements_changed ON judgements;
CREATE TRIGGER judgements_inserted AFTER INSERT ON judgements REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER judgements_updated AFTER UPDATE ON judgements REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER judgements_deleted AFTER DELETE ON judgements REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();

DROP TRIGGER waivers_changed ON waivers;
CREATE TRIGGER waivers_inserted AFTER INSERT ON waivers REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER waivers_updated AFTER UPDATE ON waivers REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER waivers_deleted AFTER DELETE ON waivers REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();

DROP TRIGGER audit_changed ON audit;
CREATE TRIGGER audit_inserted AFTER INSERT ON audit REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER audit_updated AFTER UPDATE ON audit REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER audit_deleted AFTER DELETE ON audit REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();

DROP TRIGGER stored_specs_changed ON stored_specs;
CREATE TRIGGER stored_specs_inserted AFTER INSERT ON stored_specs REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER stored_specs_updated AFTER UPDATE ON stored_specs REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();
CREATE TRIGGER stored_specs_deleted AFTER DELETE ON stored_specs REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION readyd_notify_rows();

DROP FUNCTION readyd_notify();
