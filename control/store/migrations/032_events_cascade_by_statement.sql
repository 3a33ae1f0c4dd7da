-- 032: the foreign key from events to clients goes too (issue 18), for the same reason as 031: it
-- was checked for every event inserted (a trigger, an index probe and a KEY SHARE lock on the
-- workspace's row, which concurrent ingests of one workspace share through a MultiXact), while
-- every insert takes its client id from the authenticated caller. Mittr never deletes a workspace
-- row (GDPR erasure empties it and keeps the row); if an operator does, its events (and, by 031,
-- their tasks) still go with it, in the same statement, through this trigger. What the key also
-- did, and this does not: make such a delete wait for an ingest of that workspace in progress, which
-- could then leave its events behind (they would never be claimed: the claim joins the workspace).
-- Stop a workspace's traffic (revoke its keys) before deleting its row by hand.
DO $$
DECLARE
    fk text;
BEGIN
    FOR fk IN SELECT conname FROM pg_constraint
              WHERE conrelid = 'events'::regclass AND confrelid = 'clients'::regclass AND contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE events DROP CONSTRAINT %I', fk);
    END LOOP;
END;
$$;

CREATE FUNCTION mittr_delete_client_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM events e USING gone g WHERE e.client_id = g.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER clients_delete_events AFTER DELETE ON clients
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION mittr_delete_client_events();
