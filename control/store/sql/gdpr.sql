-- GDPR export (read in keyset pages: $1 client, $2/$3 the last row's key, $4 page size, ascending)
-- and erasure (bounded batches, one statement each).

-- name: gdpr_workspace
SELECT id, name, plan_id, monthly_quota, onboarded_at, created_at FROM clients WHERE id = $1;

-- name: gdpr_members
SELECT u.id, u.email, u.name, u.email_verified_at, u.created_at, m.role, m.created_at AS joined_at
FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.client_id = $1 AND ($2::timestamptz IS NULL OR (m.created_at, u.id) > ($2, $3::uuid))
ORDER BY m.created_at, u.id
LIMIT $4;

-- name: gdpr_invitations
SELECT token_hash, email, role, created_at, expires_at, used_at
FROM auth_tokens
WHERE client_id = $1 AND kind = 'invite'
  AND ($2::timestamptz IS NULL OR (created_at, token_hash) > ($2, $3::bytea))
ORDER BY created_at, token_hash
LIMIT $4;

-- name: gdpr_sessions
SELECT id, user_id, key_id, ip, user_agent, created_at, last_seen_at, expires_at, revoked_at
FROM sessions
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_api_keys
SELECT id, name, key_prefix, project_id, scopes, rate_limit, is_active, expires_at, last_used_at, created_at,
       created_by, deleted_at
FROM api_keys
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_projects
SELECT id, name, environment, created_at, updated_at
FROM projects
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_endpoints
-- Deleted ones too: their rows are still stored.
SELECT * FROM endpoints
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_endpoint_versions
-- One endpoint's versions ($1 the endpoint, $2 the client), oldest first, after version $3.
SELECT version, snapshot, created_at FROM endpoint_versions
WHERE endpoint_id = $1 AND client_id = $2 AND ($3::integer IS NULL OR version > $3)
ORDER BY version
LIMIT $4;

-- name: gdpr_event_types
SELECT * FROM event_types
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_events
-- At most $4 events and no more than $5 bytes of payload (each delivery counted as 256 bytes more),
-- but always the first: a page of large payloads is short rather than large.
SELECT id, idempotency_key, event_type, destination, payload, headers, status, attempts, max_attempts,
       priority, delay_seconds, created_at, updated_at, delivered_at, project_id, sub_account_id
FROM (
    SELECT e.*, octet_length(e.payload) + 256 * e.task_count AS weight,
           sum(octet_length(e.payload) + 256 * e.task_count) OVER (ORDER BY e.created_at, e.id) AS running
    FROM events e
    WHERE e.client_id = $1 AND ($2::timestamptz IS NULL OR (e.created_at, e.id) > ($2, $3::uuid))
    ORDER BY e.created_at, e.id
    LIMIT $4
) page
WHERE running <= $5 OR running = weight
ORDER BY created_at, id;

-- name: gdpr_event_tasks
SELECT id, event_id, endpoint_id, status, attempts, max_attempts, priority, next_attempt_at, last_error,
       created_at, updated_at, delivered_at
FROM tasks WHERE event_id = ANY($1::uuid[])
ORDER BY event_id, created_at, id;

-- name: gdpr_attempts
SELECT id, event_id, endpoint_id, attempt_number, status_code, response_body, error, error_category,
       outcome, duration_ms, processing_overhead_us, attempted_at
FROM delivery_attempts
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (attempted_at, id) > ($2, $3::uuid))
ORDER BY attempted_at, id
LIMIT $4;

-- name: gdpr_audit_logs
SELECT id, client_id, project_id, actor_type, actor_id, actor_label, action, resource, resource_id, ip,
       before, after, created_at
FROM audit_logs
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_lock_client
-- Waits for transactions still inserting rows of the workspace (they hold its key share lock).
SELECT id, name, deleted_at FROM clients WHERE id = $1 FOR UPDATE;

-- name: gdpr_begin_erasure
-- The workspace stops (keys and sessions no longer authenticate, its endpoints count as deleted for
-- the shards), and the erasure is recorded, so that a crash leaves it to be finished, not forgotten.
WITH client AS (
    UPDATE clients SET deleted_at = coalesce(deleted_at, now()) WHERE id = $1
), erasure AS (
    INSERT INTO gdpr_erasures (client_id, actor_type, actor_id) VALUES ($1, $2, $3)
    ON CONFLICT (client_id) DO NOTHING
)
UPDATE endpoints SET deleted_at = now(), updated_at = now()
WHERE client_id = $1 AND deleted_at IS NULL
RETURNING id, partition;

-- name: gdpr_notify_endpoints
SELECT count(pg_notify('mittr_endpoint', p)) FROM unnest($1::text[]) AS p;

-- name: gdpr_erase_rate_buckets
DELETE FROM api_rate_buckets
WHERE bucket_key = $1
   OR bucket_key IN (SELECT id FROM api_keys WHERE client_id = $1)
   OR bucket_key IN (SELECT user_id FROM memberships WHERE client_id = $1)
   OR bucket_key IN (SELECT id FROM endpoints WHERE client_id = $1);   -- spread hot endpoints' shared rate

-- name: gdpr_erase_sole_members
-- People who belong to this workspace and to no other, with their failed-login counters (their
-- memberships, sessions and e-mailed tokens go with them).
WITH gone AS (
    DELETE FROM users u
    WHERE u.id = ANY(ARRAY(
        SELECT m.user_id FROM memberships m
        WHERE m.client_id = $1
          AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.user_id = m.user_id AND o.client_id <> $1)
        LIMIT $2))
    RETURNING email
), throttle AS (
    DELETE FROM login_throttle WHERE key IN (SELECT 'email:' || email FROM gone)
)
SELECT count(*) FROM gone;

-- name: gdpr_erase_events
-- At most $2 events whose deliveries (removed with them) number at most $3 (always the first event).
WITH gone AS (
    DELETE FROM events WHERE id = ANY(ARRAY(
        SELECT id FROM (
            SELECT id, task_count, sum(task_count) OVER (ORDER BY created_at, id) AS running
            FROM events WHERE client_id = $1
            ORDER BY created_at, id
            LIMIT $2
        ) page
        WHERE running <= $3 OR running = task_count))
    RETURNING task_count
)
SELECT count(*) AS events, coalesce(sum(task_count), 0)::bigint AS tasks FROM gone;

-- name: gdpr_erase_attempts
DELETE FROM delivery_attempts
WHERE client_id = $1 AND id = ANY(ARRAY(SELECT id FROM delivery_attempts WHERE client_id = $1 LIMIT $2));

-- name: gdpr_erase_endpoint_stats
DELETE FROM endpoint_limiter_stats
WHERE endpoint_id IN (SELECT id FROM endpoints WHERE client_id = $1);

-- name: gdpr_client_tables
-- Every other table of the schema with a uuid client_id column (tables added later included).
SELECT c.relname::text AS name
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attname = 'client_id' AND NOT a.attisdropped AND a.atttypid = 'uuid'::regtype
  AND c.relkind = 'r' AND NOT c.relispartition AND n.nspname = current_schema()
ORDER BY c.relname;

-- name: gdpr_erase_rows
SELECT mittr_erase_client_rows($1::text::regclass, $2, $3);

-- name: gdpr_allow_audit_erasure
-- For this transaction only: the append-only trigger lets this workspace's audit rows go.
SELECT set_config('mittr.erasing_client', $1::text, true);

-- name: gdpr_finish
WITH erasure AS (
    UPDATE gdpr_erasures SET finished_at = coalesce(finished_at, now()), counts = $2::jsonb
    WHERE client_id = $1
    RETURNING finished_at
), scrub AS (
    UPDATE clients SET name = '', signing_secret = '' WHERE id = $1
)
SELECT finished_at FROM erasure;

-- name: gdpr_swept
UPDATE gdpr_erasures SET swept_at = now(), counts = counts || jsonb_build_object('lateSweep', $2::jsonb)
WHERE client_id = $1;

-- name: gdpr_open_erasures
SELECT client_id, finished_at, now() - finished_at AS finished_ago
FROM gdpr_erasures WHERE swept_at IS NULL
ORDER BY requested_at;

-- name: gdpr_sub_accounts
-- Deactivated ones too: their history is kept.
SELECT * FROM sub_accounts
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_portal_sessions
-- One sub-account's portal sessions ($1 the sub-account, $2 the client), oldest first, after ($3, $4):
-- what they were and when, never their exchange or session token digests. `now` is the export
-- transaction's clock, for each session's state.
SELECT id, sub_account_id, return_url, idle_seconds, created_at, exchange_expires_at, exchanged_at,
       last_seen_at, expires_at, revoked_at, now() AS now
FROM portal_sessions
WHERE sub_account_id = $1 AND client_id = $2 AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid))
ORDER BY created_at, id
LIMIT $5;

-- name: gdpr_inbound_endpoints
SELECT * FROM inbound_endpoints
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_connectors
SELECT * FROM connectors
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_alert_rules
SELECT * FROM alert_rules
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_alert_history
SELECT * FROM alert_history
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;

-- name: gdpr_subscriptions
-- The workspace's subscription (one at most), in the keyset-page form of the others.
SELECT * FROM subscriptions
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, client_id) > ($2, $3::uuid))
ORDER BY created_at, client_id
LIMIT $4;

-- name: gdpr_invoices
SELECT * FROM invoices
WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id
LIMIT $4;
