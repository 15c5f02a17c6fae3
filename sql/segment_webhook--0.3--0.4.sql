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

-- end of section: rate limits


-- 0.4 section: signature scope

-- end of section: signature scope


-- 0.4 section: event debugger

-- The latest rows of one source (or of all), newest first, read backwards along these indexes: a few pages
-- however many millions of rows the tables hold. Each stored event adds one (source_id, id) entry, always at
-- the right end of its source's range.
-- IF NOT EXISTS: on a big table, build the first one with CREATE INDEX CONCURRENTLY before the update (README).
CREATE INDEX IF NOT EXISTS segment_events_source_id_id_idx ON segment_events (source_id, id);
CREATE INDEX IF NOT EXISTS segment_rejected_source_id_id_idx ON segment_rejected (source_id, id);

-- One row of segment_recent(). (A PL/pgSQL function cannot have an input parameter and an output column of the
-- same name, here "source": the rows are of this type rather than a RETURNS TABLE.)
CREATE TYPE segment_recent_row AS (
    kind text,
    id bigint,
    source text,
    received_at timestamptz,
    type text,
    event text,
    message_id text,
    payload jsonb,
    reason text
);
COMMENT ON TYPE segment_recent_row IS 'a row of segment_recent(): a stored event (kind event) or a dead letter (kind rejected)';

CREATE FUNCTION segment_recent(source text DEFAULT NULL, max_rows integer DEFAULT 100)
RETURNS SETOF segment_recent_row
LANGUAGE plpgsql STABLE
-- Custom plans only: the row limit and the source are known when each statement is planned, so that the
-- planner always reads the newest rows backwards along an index (a generic plan guesses LIMIT $n as a tenth
-- of the table).
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    wanted_source ALIAS FOR $1;
    wanted_rows ALIAS FOR $2;
    wanted_id integer;
BEGIN
    IF wanted_rows IS NULL OR wanted_rows < 1 OR wanted_rows > 10000 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('max_rows must be between 1 and 10000, not %s', coalesce(wanted_rows::text, 'NULL'));
    END IF;
    IF wanted_source IS NULL THEN
        RETURN QUERY
        SELECT r.* FROM (
            SELECT 'event'::text, e.id, s.name, e.received_at, e.type, coalesce(e.event, e.name), e.message_id,
                   e.payload, NULL::text
            FROM (SELECT * FROM @extschema@.segment_events ORDER BY id DESC LIMIT wanted_rows) e
            LEFT JOIN @extschema@.segment_sources s ON s.id = e.source_id
            UNION ALL
            SELECT 'rejected'::text, d.id, s.name, d.received_at, d.payload ->> 'type',
                   coalesce(d.payload ->> 'event', d.payload ->> 'name'), d.message_id, d.payload, d.reason
            FROM (SELECT * FROM @extschema@.segment_rejected ORDER BY id DESC LIMIT wanted_rows) d
            LEFT JOIN @extschema@.segment_sources s ON s.id = d.source_id
        ) r (kind, id, source, received_at, type, event, message_id, payload, reason)
        ORDER BY r.received_at DESC, r.kind DESC, r.id DESC;
        RETURN;
    END IF;
    SELECT s.id INTO wanted_id FROM @extschema@.segment_sources s WHERE s.name = wanted_source;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('source "%s" does not exist', wanted_source),
            HINT = 'segment_sources lists the sources; segment_recent(NULL) shows all of them.';
    END IF;
    RETURN QUERY
    SELECT r.* FROM (
        SELECT 'event'::text, e.id, wanted_source, e.received_at, e.type, coalesce(e.event, e.name),
               e.message_id, e.payload, NULL::text
        FROM (SELECT * FROM @extschema@.segment_events WHERE source_id = wanted_id ORDER BY id DESC
              LIMIT wanted_rows) e
        UNION ALL
        SELECT 'rejected'::text, d.id, wanted_source, d.received_at, d.payload ->> 'type',
               coalesce(d.payload ->> 'event', d.payload ->> 'name'), d.message_id, d.payload, d.reason
        FROM (SELECT * FROM @extschema@.segment_rejected WHERE source_id = wanted_id ORDER BY id DESC
              LIMIT wanted_rows) d
    ) r (kind, id, source, received_at, type, event, message_id, payload, reason)
    ORDER BY r.received_at DESC, r.kind DESC, r.id DESC;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_recent(text, integer) FROM PUBLIC;
COMMENT ON FUNCTION segment_recent(text, integer) IS 'the latest stored events (at most max_rows) and dead letters (at most max_rows) of a source, or of all sources when source is NULL, newest first; the live event debugger''s list';

-- end of section: event debugger


-- 0.4 section: user deletion

-- end of section: user deletion


-- 0.4 section: metrics and admin

-- end of section: metrics and admin
