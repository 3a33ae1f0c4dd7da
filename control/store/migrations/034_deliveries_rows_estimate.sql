-- 034: single ingest planned once, not on every call (issue 18). insert_event (events.sql) reads its
-- deliveries from arrays. Planned for unknown arrays (a generic plan), unnest() counts as 100 rows,
-- each paying the FIFO lock subquery, so PostgreSQL judged that plan far dearer than one made for
-- the actual one-element arrays and planned the statement afresh on every execution: about 130 µs
-- of server CPU per event, over a third of the statement's cost (measured with
-- pg_prepared_statements.custom_plans and the backend's CPU time). This function returns the same
-- rows and tells the planner to expect one; a PL/pgSQL function is not inlined, so the estimate
-- holds, and the generic plan is chosen and reused.
CREATE FUNCTION mittr_deliveries(ids uuid[], endpoint_ids uuid[], partitions int[], attempt_caps int[])
RETURNS TABLE (id uuid, endpoint_id uuid, partition int, max_attempts int)
LANGUAGE plpgsql IMMUTABLE ROWS 1 AS $$
BEGIN
    RETURN QUERY SELECT * FROM unnest(ids, endpoint_ids, partitions, attempt_caps);
END;
$$;
