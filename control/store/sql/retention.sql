-- Retention (control/services/retention.py): what goes once it is older than [retention] allows.

-- name: retention_try_lock
-- A session lock: one pruning run per cluster; whoever does not get it skips.
SELECT pg_try_advisory_lock($1);

-- name: retention_unlock
SELECT pg_advisory_unlock($1);

-- name: retention_due
-- Whether the last scheduled run (of any process) finished more than $1 seconds ago.
SELECT coalesce((SELECT value::timestamptz FROM mittr_meta WHERE key = 'retention_last_run')
                <= now() - make_interval(secs => $1), true);

-- name: retention_mark_run
INSERT INTO mittr_meta (key, value) VALUES ('retention_last_run', now()::text)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;

-- name: retention_events_batch
-- One bounded step of the walk over old events, along the primary key: up to $4 events after $1,
-- with ids below $2 (the UUIDv7 floor of the cutoff) and created before $3 (the cutoff itself),
-- every delivery of which has ended (delivered or dead: no work queued, in flight, scheduled for a
-- retry or waiting for a poll acknowledgement). Unless $5 (dry run) they are deleted, their tasks
-- with them (ON DELETE CASCADE). The DELETE re-checks the event's status on the row it locks, so an
-- event a replay re-queued meanwhile stays. last_id is where the next step starts.
WITH batch AS (
    SELECT e.id, e.task_count
    FROM events e
    WHERE e.id > $1 AND e.id < $2 AND e.created_at < $3
      AND e.status IN ('delivered', 'dead')
      -- OFFSET 0 keeps this a probe of tasks_event per event, in the order of the walk, that stops
      -- with the LIMIT (as an anti-join the planner may read every open task of the table instead).
      AND NOT EXISTS (SELECT 1 FROM tasks t
                      WHERE t.event_id = e.id AND t.status NOT IN ('delivered', 'dead') OFFSET 0)
    ORDER BY e.id
    LIMIT $4
), gone AS (
    DELETE FROM events e
    WHERE e.id = ANY (ARRAY(SELECT b.id FROM batch b)) AND NOT $5::boolean AND e.status IN ('delivered', 'dead')
    RETURNING e.task_count
)
SELECT (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1) AS last_id,
       (SELECT count(*) FROM batch) AS found,
       (SELECT coalesce(sum(b.task_count), 0) FROM batch b)::bigint AS found_tasks,
       (SELECT count(*) FROM gone) AS deleted,
       (SELECT coalesce(sum(g.task_count), 0) FROM gone g)::bigint AS deleted_tasks;

-- name: retention_attempt_partitions
-- Partitions of delivery_attempts whose whole range ends at or before $1, oldest first (the
-- default partition has no range and is never listed).
SELECT p.name, p.lower_bound, p.upper_bound
FROM (
    SELECT c.relname::text AS name,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz
               AS lower_bound,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
               AS upper_bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'delivery_attempts'::regclass
) p
WHERE p.upper_bound <= $1
ORDER BY p.upper_bound;

-- name: retention_drop_attempt_partition
SELECT mittr_drop_attempt_partition($1);

-- name: retention_count_attempts_between
-- Rows of one partition (the bounds prune the scan to it): what dropping it removes.
SELECT count(*) FROM delivery_attempts WHERE attempted_at >= $1 AND attempted_at < $2;

-- name: retention_delete_default_attempts
-- Attempts made before $1 on days that had no partition of their own, $2 at most. Attempts are never
-- updated, so the row versions found are the ones deleted (by a TID scan).
WITH gone AS (
    DELETE FROM delivery_attempts_default
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM delivery_attempts_default WHERE attempted_at < $1 LIMIT $2))
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: retention_count_default_attempts
SELECT count(*) FROM delivery_attempts_default WHERE attempted_at < $1;

-- name: retention_rollup_clients
-- The tenants that have rollups, by a skip scan of the primary key (one index probe per tenant).
WITH RECURSIVE c AS (
    (SELECT client_id FROM delivery_rollups ORDER BY client_id LIMIT 1)
    UNION ALL
    SELECT (SELECT r.client_id FROM delivery_rollups r WHERE r.client_id > c.client_id
            ORDER BY r.client_id LIMIT 1)
    FROM c
    WHERE c.client_id IS NOT NULL
)
SELECT client_id FROM c WHERE client_id IS NOT NULL;

-- name: retention_delete_rollups
-- One tenant's rollup rows of minutes before $2, $3 at most: found by a range of the primary key,
-- deleted by a TID scan (nothing writes to minutes that old).
WITH gone AS (
    DELETE FROM delivery_rollups
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM delivery_rollups WHERE client_id = $1 AND minute < $2 LIMIT $3))
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: retention_count_rollups
SELECT count(*) FROM delivery_rollups WHERE minute < $1;
