-- 033: no index on events.status (issue 18). The delivery roll-up writes an event's status,
-- attempts and delivered_at; with `status` in events_client_status every roll-up was a non-HOT
-- update, which inserted a new entry into each of the table's five B-trees (the primary key and
-- the idempotency key included) and wrote them all to the WAL. Without it, no index of `events`
-- holds a column the roll-up writes, so with the room migration 029 leaves on each page the
-- roll-up is a HOT update: no index entry at all. Ingest also maintains one B-tree fewer.
--
-- What the index served, lists filtered by status, is served as follows (events.sql):
--   delivered          the workspace's list index, newest first, filtered (most events are);
--   queued, delivering, failed, dead
--                      the newest events first (list_events with a bound, fast when the
--                      status is common, as `queued` is in a backlog), then the events of the
--                      tasks in that state, in the events' order, a bounded number at a time
--                      (tasks_in_event_order, through the two indexes below). An event in one of
--                      these states always has a task in a state these read
--                      (control/services/events.py, TASKS_OF_STATUS, says why), and a task's
--                      created_at is its event's.
DROP INDEX IF EXISTS events_client_status;

-- A workspace's unfinished tasks by state, now also in its events' order (created_at, event id),
-- so that a page of a status-filtered list reads about a page of them, however many there are.
-- The same entries as before (the same predicate), with a wider key.
DROP INDEX IF EXISTS tasks_client_open;
CREATE INDEX tasks_client_open ON tasks (client_id, status, created_at DESC, event_id DESC)
    WHERE status IN ('queued', 'delivering', 'failed');
-- Dead tasks in their events' order (tasks_dead_changed orders them by when they died). Entries
-- for dead tasks only: nothing on ingest, nothing for a delivery that succeeds.
CREATE INDEX tasks_client_dead ON tasks (client_id, created_at DESC, event_id DESC) WHERE status = 'dead';
