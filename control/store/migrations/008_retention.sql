-- 008: retention drops whole day partitions of delivery_attempts (control/services/retention.py).

-- Drop one partition of delivery_attempts, named as listed by the retention_attempt_partitions query;
-- false when it is not (or no longer) a partition of it. The default partition is never dropped.
-- Dropping a partition locks delivery_attempts itself for a moment, and while that lock request
-- waits every writer's COPY queues behind it: lock_timeout bounds that wait, and a partition not
-- dropped in time (lock_not_available) is simply left for the next run.
CREATE FUNCTION mittr_drop_attempt_partition(part text) RETURNS boolean
LANGUAGE plpgsql SET lock_timeout = '2s' AS $$
DECLARE
    rel regclass;
BEGIN
    SELECT c.oid INTO rel
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'delivery_attempts'::regclass AND c.relname = part
      AND c.oid <> 'delivery_attempts_default'::regclass;
    IF rel IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE %s', rel);   -- regclass prints schema-qualified and quoted as needed
    RETURN true;
END;
$$;
