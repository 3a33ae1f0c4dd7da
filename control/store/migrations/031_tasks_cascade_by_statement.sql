-- 031: the foreign key from tasks to events goes (issue 18); its ON DELETE CASCADE stays, as one
-- statement-level trigger. The key was checked for every task inserted (a trigger, an index probe
-- and a row lock per row: ~5 µs of Postgres CPU per event in batch ingest, bench/batch_insert.py),
-- yet tasks are only ever inserted by the statement that inserts their event, from the ids that
-- insert returned (events.sql: insert_event, insert_event_batch), so the check could never fail.
-- Deleting events (retention, GDPR erasure, a workspace's deletion cascading from clients) still
-- deletes their tasks, in the same statement, now as one set-based delete per statement.
DO $$
DECLARE
    fk text;
BEGIN
    FOR fk IN SELECT conname FROM pg_constraint
              WHERE conrelid = 'tasks'::regclass AND confrelid = 'events'::regclass AND contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE tasks DROP CONSTRAINT %I', fk);
    END LOOP;
END;
$$;

CREATE FUNCTION mittr_delete_event_tasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasks t USING gone g WHERE t.event_id = g.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_delete_tasks AFTER DELETE ON events
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION mittr_delete_event_tasks();
