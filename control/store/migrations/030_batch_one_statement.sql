-- 030: batch ingest in one statement (issue 18). The batch's events and tasks, the check that every
-- one of them was stored, and its count against the monthly quota are one INSERT (events.sql,
-- insert_event_batch) instead of BEGIN, insert, count and COMMIT: one round trip. All or nothing
-- needs the statement itself to fail when a key was already taken (ON CONFLICT skipped its row) or
-- the sub-account is deactivated (its guard stored none): this raises SQLSTATE MT409, which the API
-- turns into 409 with the keys or the sub-account named, having stored nothing.
CREATE FUNCTION mittr_batch_complete(expected integer, stored integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF stored <> expected THEN
        RAISE EXCEPTION 'batch incomplete: % of % events stored', stored, expected USING ERRCODE = 'MT409';
    END IF;
    RETURN true;
END;
$$;
