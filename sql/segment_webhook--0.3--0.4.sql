-- segment_webhook 0.3 → 0.4: endpoint security (secret and write key rotation, rate limits, signature scope) and
-- operations (event debugger, user deletion). Every row of every table is kept.

\echo Use "ALTER EXTENSION segment_webhook UPDATE TO '0.4'" to load this file. \quit

ALTER TABLE segment_sources
    ADD COLUMN previous_write_key text UNIQUE CHECK (length(previous_write_key) >= 8),
    ADD COLUMN previous_write_key_expires_at timestamptz,
    ADD COLUMN previous_shared_secret text CHECK (previous_shared_secret <> ''),
    ADD COLUMN previous_shared_secret_expires_at timestamptz,
    ADD COLUMN require_full_signature boolean,
    ADD COLUMN max_events_per_second integer CHECK (max_events_per_second > 0),
    ADD COLUMN honor_deletions boolean;
-- Filled by an UPDATE rather than an ADD COLUMN default, so that no "missing value" stays in the catalog: the
-- table is then exactly what a fresh installation makes (036_upgrade compares the two).
UPDATE segment_sources SET require_full_signature = false, honor_deletions = false;
ALTER TABLE segment_sources
    ALTER COLUMN require_full_signature SET DEFAULT false,
    ALTER COLUMN require_full_signature SET NOT NULL,
    ALTER COLUMN honor_deletions SET DEFAULT false,
    ALTER COLUMN honor_deletions SET NOT NULL;

-- Version 0.4. Each part below keeps to its own section.

COMMENT ON COLUMN segment_sources.previous_write_key IS 'the write key before the last segment_rotate_write_key(); accepted until previous_write_key_expires_at';
COMMENT ON COLUMN segment_sources.previous_shared_secret IS 'the shared secret before the last segment_rotate_secret(); verifies until previous_shared_secret_expires_at';
COMMENT ON COLUMN segment_sources.require_full_signature IS 'when true, only an X-Signature over the whole body is accepted (not one over the first element of a batch)';
COMMENT ON COLUMN segment_sources.max_events_per_second IS 'events per second this source may send, shared by all workers (NULL: unlimited); over it, 429 with Retry-After';
COMMENT ON COLUMN segment_sources.honor_deletions IS 'when true, Segment''s deletion notifications ({"type":"delete"}) forget the user as segment_forget_user() does';

-- 0.4 section: secret and write key rotation

-- end of section: secret and write key rotation


-- 0.4 section: rate limits
-- segment_webhook_stats gains rate_limited: requests answered 429 because their source was over its
-- max_events_per_second (they are not counted in request_errors).
DROP VIEW segment_webhook_stats;
DROP FUNCTION segment_webhook_stats();
CREATE FUNCTION segment_webhook_stats(
    OUT worker integer, OUT pid integer, OUT started_at timestamptz, OUT last_commit_at timestamptz,
    OUT open_connections bigint, OUT requests bigint, OUT request_errors bigint, OUT events_stored bigint,
    OUT duplicates bigint, OUT rejected bigint, OUT batches_committed bigint, OUT batches_failed bigint,
    OUT bytes_received bigint, OUT rate_limited bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'segment_webhook_stats' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION segment_webhook_stats() IS 'counters of the HTTP ingest workers since the server started';
CREATE VIEW segment_webhook_stats AS SELECT * FROM segment_webhook_stats();
COMMENT ON VIEW segment_webhook_stats IS 'counters of the HTTP ingest workers since the server started';

-- end of section: rate limits


-- 0.4 section: signature scope

-- end of section: signature scope


-- 0.4 section: event debugger

-- end of section: event debugger


-- 0.4 section: user deletion

-- end of section: user deletion


-- 0.4 section: metrics and admin

-- end of section: metrics and admin
