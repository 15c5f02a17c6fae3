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

-- 0.4 section: conflicting retries
-- A retry carries the same messageId and the same content. The same messageId with other content is a client bug
-- or an attack, not a duplicate: the worker dead-letters it (reason message_id_conflict). "The same content"
-- ignores what legitimately changes between retries: sentAt, receivedAt, writeKey, and context.ip (which the
-- tracking API fills from the connection).
CREATE FUNCTION segment_retry_content(payload jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN (payload #- '{context,ip}') -> 'context' = '{}'::jsonb  -- a context of our ip only is none
                THEN payload - ARRAY['sentAt', 'receivedAt', 'writeKey', 'context']
                ELSE (payload - ARRAY['sentAt', 'receivedAt', 'writeKey']) #- '{context,ip}' END;
COMMENT ON FUNCTION segment_retry_content(jsonb) IS 'a message without what may change between two sends of it (sentAt, receivedAt, writeKey, context.ip, and a context left empty without it): two sends of one message have the same retry content';

-- Which of the given messages (ordinal positions, from 1) are stored with another retry content. Run by the ingest
-- role for the duplicates of a batch (rare); it sees no payload, only whether one differs.
CREATE FUNCTION segment_message_conflicts(source_ids integer[], message_ids text[], payloads jsonb[])
RETURNS SETOF integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.position::integer
    FROM unnest(source_ids, message_ids, payloads) WITH ORDINALITY AS m(source_id, message_id, payload, position)
    JOIN @extschema@.segment_events e ON e.source_id = m.source_id AND e.message_id = m.message_id
    WHERE @extschema@.segment_retry_content(e.payload) IS DISTINCT FROM @extschema@.segment_retry_content(m.payload)
$$;
REVOKE EXECUTE ON FUNCTION segment_message_conflicts(integer[], text[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segment_message_conflicts(integer[], text[], jsonb[]) TO segment_webhook_ingest;
COMMENT ON FUNCTION segment_message_conflicts(integer[], text[], jsonb[]) IS 'the positions of the messages whose messageId is stored with other content (see segment_retry_content); for the ingest path';
-- end of section: conflicting retries


-- 0.4 section: scale-out
-- On an analytics node that subscribes to the segment_events of several ingest nodes (logical replication), the
-- same message may arrive from two of them, and their ids overlap. This trigger function, installed there by the
-- user as a REPLICA trigger (see docs/scale-out.md), gives each replicated row an id of the analytics node and
-- skips a (source_id, message_id) already stored, so that a duplicate never stops a subscription. It is not
-- attached to anything by the extension: on an ingest node it must not run.
CREATE FUNCTION segment_events_apply_dedup() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NEW;  -- the insert below
    END IF;
    NEW.id := nextval(pg_get_serial_sequence(format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME), 'id'));
    EXECUTE format('INSERT INTO %I.%I SELECT ($1).* ON CONFLICT (source_id, message_id) DO NOTHING',
                   TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_events_apply_dedup() FROM PUBLIC;
COMMENT ON FUNCTION segment_events_apply_dedup() IS 'trigger for an analytics node subscribing to several ingest nodes: replicated events get local ids and a message already stored is skipped (see docs/scale-out.md)';
-- end of section: scale-out

-- 0.4 section: secret and write key rotation
-- Rotation without downtime: the new secret or key works at once, the previous one keeps working until its
-- grace ends (the workers re-read segment_sources at once on the change, and drop a previous value whose
-- grace has ended within a second). A grace of 0 ends the previous one at once (it is not kept). A second
-- rotation within the grace replaces the previous value: only the last two are ever honoured.
CREATE FUNCTION segment_rotate_secret(source text, new_secret text, grace interval DEFAULT '24 hours')
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current_secret text;
BEGIN
    IF segment_rotate_secret.source IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed', MESSAGE = 'source must not be NULL';
    END IF;
    IF segment_rotate_secret.new_secret IS NULL OR segment_rotate_secret.new_secret = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'new_secret must not be empty',
            HINT = 'To stop checking signatures, set segment_sources.shared_secret to NULL.';
    END IF;
    IF segment_rotate_secret.grace IS NULL OR segment_rotate_secret.grace < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('grace must be an interval of zero or more, not %s',
                             coalesce(segment_rotate_secret.grace::text, 'NULL')),
            HINT = 'A grace of 0 makes the previous secret stop at once.';
    END IF;
    SELECT s.shared_secret INTO current_secret FROM @extschema@.segment_sources s
    WHERE s.name = segment_rotate_secret.source FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('source "%s" does not exist', segment_rotate_secret.source);
    END IF;
    IF current_secret = segment_rotate_secret.new_secret THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('new_secret is already the shared secret of source "%s"', segment_rotate_secret.source);
    END IF;
    -- A source without a secret gets one at once: there is no previous secret to honour.
    UPDATE @extschema@.segment_sources s
    SET shared_secret = segment_rotate_secret.new_secret,
        previous_shared_secret = CASE WHEN segment_rotate_secret.grace > interval '0' THEN current_secret END,
        previous_shared_secret_expires_at =
            CASE WHEN segment_rotate_secret.grace > interval '0' AND current_secret IS NOT NULL
                 THEN now() + segment_rotate_secret.grace END
    WHERE s.name = segment_rotate_secret.source;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_rotate_secret(text, text, interval) FROM PUBLIC;
COMMENT ON FUNCTION segment_rotate_secret(text, text, interval) IS 'gives a source a new shared secret, verified at once; the previous one keeps verifying until the grace ends';

CREATE FUNCTION segment_rotate_write_key(source text, grace interval DEFAULT '24 hours')
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current_key text;
    new_key text;
BEGIN
    IF segment_rotate_write_key.source IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed', MESSAGE = 'source must not be NULL';
    END IF;
    IF segment_rotate_write_key.grace IS NULL OR segment_rotate_write_key.grace < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('grace must be an interval of zero or more, not %s',
                             coalesce(segment_rotate_write_key.grace::text, 'NULL')),
            HINT = 'A grace of 0 makes the previous write key stop at once.';
    END IF;
    SELECT s.write_key INTO current_key FROM @extschema@.segment_sources s
    WHERE s.name = segment_rotate_write_key.source FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('source "%s" does not exist', segment_rotate_write_key.source);
    END IF;
    -- A new key is 192 random bits: one that is any source's current or previous key is never drawn in
    -- practice, but a key must name one source only, so draw again rather than rely on luck.
    LOOP
        new_key := @extschema@.segment_new_write_key();
        EXIT WHEN NOT EXISTS (SELECT FROM @extschema@.segment_sources s
                              WHERE s.write_key = new_key OR s.previous_write_key = new_key);
    END LOOP;
    UPDATE @extschema@.segment_sources s
    SET write_key = new_key,
        previous_write_key = CASE WHEN segment_rotate_write_key.grace > interval '0' THEN current_key END,
        previous_write_key_expires_at =
            CASE WHEN segment_rotate_write_key.grace > interval '0' THEN now() + segment_rotate_write_key.grace END
    WHERE s.name = segment_rotate_write_key.source;
    RETURN new_key;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_rotate_write_key(text, interval) FROM PUBLIC;
COMMENT ON FUNCTION segment_rotate_write_key(text, interval) IS 'gives a source a new write key (returned), accepted at once; the previous one is accepted until the grace ends';

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
-- Segment signs an Actions batch over its first element only: the other elements carry no proof of origin.
-- Each event says whether its own bytes were covered by a verified X-Signature. Added with a constant default
-- (a catalog "missing value", no rewrite of a table that may be huge): events stored before 0.4 read false.
-- The fresh installation adds it the same way, so that both have the same catalog (036_upgrade compares them).
ALTER TABLE segment_events ADD COLUMN signature_verified boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN segment_events.signature_verified IS 'true when this event''s own bytes were covered by a verified X-Signature (a single-message body, a whole-body signature, or the first element of a batch signed over its first element); false for unsigned sources, the other elements of such a batch, segment_ingest() and segment_replay(), and events stored before 0.4';

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

-- Every request to forget a user: made by segment_forget_user() ('sql', carried out at once), or by a deletion
-- notification of Segment ({"type":"delete"}) to a source with honor_deletions ('segment': recorded 'pending'
-- by the ingest transaction, which may not delete, and carried out by the warehouse worker as the extension's
-- owner within seconds).
CREATE TABLE segment_deletions (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    source_id integer NOT NULL,
    user_id text NOT NULL CHECK (user_id <> ''),
    requested_via text NOT NULL DEFAULT 'segment' CHECK (requested_via IN ('sql', 'segment')),
    requested_by text NOT NULL DEFAULT current_user,
    session_role text NOT NULL DEFAULT session_user,
    requested_at timestamptz NOT NULL DEFAULT now(),
    suppress boolean NOT NULL DEFAULT false,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    completed_at timestamptz,
    anonymous_ids text[],
    events_deleted bigint,
    rejected_deleted bigint,
    error text
);
REVOKE ALL ON segment_deletions FROM PUBLIC;
CREATE INDEX segment_deletions_pending ON segment_deletions (id) WHERE status = 'pending';
COMMENT ON TABLE segment_deletions IS 'requests to forget a user (segment_forget_user, or Segment''s deletion notifications): who, when, the linked ids found and the rows removed';
COMMENT ON COLUMN segment_deletions.requested_by IS 'current_user of the request (segment_webhook_ingest for a deletion notification)';
COMMENT ON COLUMN segment_deletions.session_role IS 'session_user of the request';
COMMENT ON COLUMN segment_deletions.anonymous_ids IS 'the other ids linked to user_id (anonymousIds, and previousIds of alias calls) whose events were removed too';
COMMENT ON COLUMN segment_deletions.status IS 'pending: recorded from a deletion notification, carried out by the warehouse worker within seconds; done; failed (see error; set it back to pending to try again)';

-- Ids whose new events are dead-lettered (reason suppressed) instead of stored: one row per id, the userId given
-- to segment_forget_user(..., suppress => true) and each id linked to it then. The ingest workers keep them in
-- memory and read them again at once when this table changes.
CREATE TABLE segment_suppressions (
    source_id integer NOT NULL,
    user_id text NOT NULL,
    suppressed_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, user_id, suppressed_id)
);
REVOKE ALL ON segment_suppressions FROM PUBLIC;
COMMENT ON TABLE segment_suppressions IS 'userIds and anonymousIds whose new events are dead-lettered with reason suppressed; lift with segment_unsuppress_user()';
COMMENT ON COLUMN segment_suppressions.suppressed_id IS 'a userId, anonymousId or previousId whose messages are suppressed';
CREATE TRIGGER segment_suppressions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON segment_suppressions
    FOR EACH STATEMENT EXECUTE FUNCTION segment_sources_changed();

SELECT pg_catalog.pg_extension_config_dump('segment_deletions', '');
SELECT pg_catalog.pg_extension_config_dump('segment_deletions_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment_suppressions', '');

-- The ingest workers read the suppressed ids, and record deletion notifications (only these two columns: the
-- rest takes its defaults, status 'pending').
GRANT SELECT ON segment_suppressions TO segment_webhook_ingest;
GRANT INSERT (source_id, user_id) ON segment_deletions TO segment_webhook_ingest;

COMMENT ON COLUMN segment_rejected.reason IS 'invalid_json, not_an_object, invalid_batch, unknown_type, type_mismatch, deletion_request, missing_identity, missing_event, missing_previous_id, missing_group_id, invalid_message_id, nul_character, invalid_unicode, invalid_utf8, unstorable_value, refused_by_database, suppressed';

-- The userId, anonymousId and previousId of a message, of each message of an array, or of each item of
-- {"batch":[...]}: what a dead letter says about whom.
CREATE FUNCTION segment_message_identities(message json) RETURNS SETOF text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    WITH items(item) AS (
        SELECT message WHERE json_typeof(message) = 'object' AND json_typeof(message -> 'batch') IS DISTINCT FROM 'array'
        UNION ALL
        SELECT e FROM json_array_elements(CASE WHEN json_typeof(message) = 'array' THEN message END) e
        UNION ALL
        SELECT e FROM json_array_elements(CASE WHEN json_typeof(message) = 'object'
                                                AND json_typeof(message -> 'batch') = 'array'
                                               THEN message -> 'batch' END) e
    )
    SELECT k.id FROM items
    CROSS JOIN LATERAL (VALUES (item ->> 'userId'), (item ->> 'anonymousId'), (item ->> 'previousId')) AS k(id)
    WHERE json_typeof(item) = 'object' AND k.id IS NOT NULL
$$;
REVOKE EXECUTE ON FUNCTION segment_message_identities(json) FROM PUBLIC;
COMMENT ON FUNCTION segment_message_identities(json) IS 'the userId, anonymousId and previousId of a message, of an array of messages or of {"batch":[...]}';

-- The same for the raw bytes of a dead letter that Postgres could not store as jsonb (a \u0000, a lone
-- surrogate, bytes that are not UTF-8, a huge number). The bytes are read as LATIN1, which cannot fail, with
-- the escapes json refuses to read removed; the ids come back in the same LATIN1 reading (compare them with
-- ids read the same way). Empty when the bytes are no JSON even so.
CREATE FUNCTION segment_raw_identities(raw bytea) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN ARRAY(SELECT @extschema@.segment_message_identities(
        regexp_replace(convert_from(raw, 'LATIN1'), '\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})', '', 'g')::json));
EXCEPTION WHEN OTHERS THEN
    RETURN '{}';
END
$$;
REVOKE EXECUTE ON FUNCTION segment_raw_identities(bytea) FROM PUBLIC;
COMMENT ON FUNCTION segment_raw_identities(bytea) IS 'the userId, anonymousId and previousId in the raw bytes of a dead letter (read as LATIN1), or {} when they are not JSON';

-- Forgets a user of a source: finds the ids linked to user_id (the anonymousIds its calls carried, the
-- previousIds and userIds its alias calls link, transitively, at most 10 rounds and 1000 ids), deletes their
-- events (those with one of these userIds, or with no userId and one of these anonymousIds: an anonymousId
-- shared with another userId keeps that user's events) and their dead letters, and with `suppress` records the
-- ids in segment_suppressions. The warehouse relations are views over segment_events: their rows go with the
-- events. Records nothing itself (see segment_forget_user and segment_run_deletions).
CREATE FUNCTION segment_forget(source_id integer, user_id text, suppress boolean,
                               OUT anonymous_ids text[], OUT events_deleted bigint, OUT rejected_deleted bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ids text[] := ARRAY[segment_forget.user_id];
    found text[];
    rounds integer := 0;
    id_bytes bytea[];
    latin1_ids text[];
BEGIN
    LOOP
        SELECT array_agg(DISTINCT l.id) INTO found
        FROM @extschema@.segment_events e
        CROSS JOIN LATERAL (VALUES (CASE WHEN e.user_id = ANY (ids) THEN e.anonymous_id END),
                                   (CASE WHEN e.type = 'alias' AND e.user_id = ANY (ids) THEN e.previous_id END),
                                   (CASE WHEN e.type = 'alias' AND e.previous_id = ANY (ids) THEN e.user_id END)) AS l(id)
        WHERE e.source_id = segment_forget.source_id
          AND (e.user_id = ANY (ids) OR (e.type = 'alias' AND e.previous_id = ANY (ids)))
          AND l.id IS NOT NULL AND l.id <> ALL (ids);
        EXIT WHEN found IS NULL;
        ids := ids || found;
        rounds := rounds + 1;
        IF rounds >= 10 OR cardinality(ids) >= 1000 THEN
            RAISE WARNING USING MESSAGE = format('segment_webhook: user %s of source %s is linked to %s ids in %s rounds; links further away are not followed',
                                                 segment_forget.user_id, segment_forget.source_id, cardinality(ids), rounds),
                HINT = 'Call segment_forget_user() for the other userIds too.';
            EXIT;
        END IF;
    END LOOP;
    anonymous_ids := ids[2:];

    DELETE FROM @extschema@.segment_events e
    WHERE e.source_id = segment_forget.source_id
      AND (e.user_id = ANY (ids) OR (e.user_id IS NULL AND e.anonymous_id = ANY (ids)));
    GET DIAGNOSTICS events_deleted = ROW_COUNT;

    -- Dead letters: by the ids of their payload; without one, by their raw bytes (only those that hold one of
    -- the ids' bytes are parsed).
    id_bytes := ARRAY(SELECT convert_to(i, 'UTF8') FROM unnest(ids) i);
    latin1_ids := ARRAY(SELECT convert_from(b, 'LATIN1') FROM unnest(id_bytes) b);
    DELETE FROM @extschema@.segment_rejected r
    WHERE r.source_id = segment_forget.source_id
      AND CASE WHEN pg_catalog.jsonb_typeof(r.payload) = 'object'
                    AND pg_catalog.jsonb_typeof(r.payload -> 'batch') IS DISTINCT FROM 'array'
               THEN r.payload ->> 'userId' = ANY (ids) OR r.payload ->> 'anonymousId' = ANY (ids)
                    OR r.payload ->> 'previousId' = ANY (ids)
               WHEN r.payload IS NOT NULL
               THEN EXISTS (SELECT FROM @extschema@.segment_message_identities(r.payload::json) i WHERE i = ANY (ids))
               WHEN r.raw IS NOT NULL
               THEN EXISTS (SELECT FROM unnest(id_bytes) b WHERE position(b IN r.raw) > 0)
                    AND @extschema@.segment_raw_identities(r.raw) && latin1_ids
               ELSE false END;
    GET DIAGNOSTICS rejected_deleted = ROW_COUNT;

    IF suppress THEN
        INSERT INTO @extschema@.segment_suppressions (source_id, user_id, suppressed_id)
        SELECT segment_forget.source_id, segment_forget.user_id, i FROM unnest(ids) i
        ON CONFLICT DO NOTHING;
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_forget(integer, text, boolean) FROM PUBLIC;
COMMENT ON FUNCTION segment_forget(integer, text, boolean) IS 'the work of segment_forget_user(), without the checks and the record in segment_deletions';

-- The source id of a name, for the functions that take one; errors a user can act on.
CREATE FUNCTION segment_deletion_source(source text, user_id text) RETURNS integer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found_id integer;
BEGIN
    IF user_id IS NULL OR user_id = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'user_id must not be NULL or empty';
    END IF;
    IF source IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'source must not be NULL';
    END IF;
    SELECT s.id INTO found_id FROM @extschema@.segment_sources s WHERE s.name = source;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object', MESSAGE = format('source "%s" does not exist', source);
    END IF;
    RETURN found_id;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_deletion_source(text, text) FROM PUBLIC;

CREATE FUNCTION segment_forget_user(source text, user_id text, suppress boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found_source integer := @extschema@.segment_deletion_source(segment_forget_user.source, segment_forget_user.user_id);
    result record;
BEGIN
    IF segment_forget_user.suppress IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'suppress must be true or false';
    END IF;
    SELECT * INTO result
    FROM @extschema@.segment_forget(found_source, segment_forget_user.user_id, segment_forget_user.suppress);
    INSERT INTO @extschema@.segment_deletions (source_id, user_id, requested_via, suppress, status, completed_at,
                                               anonymous_ids, events_deleted, rejected_deleted)
    VALUES (found_source, segment_forget_user.user_id, 'sql', segment_forget_user.suppress, 'done',
            clock_timestamp(), result.anonymous_ids, result.events_deleted, result.rejected_deleted);
    RETURN result.events_deleted + result.rejected_deleted;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_forget_user(text, text, boolean) FROM PUBLIC;
COMMENT ON FUNCTION segment_forget_user(text, text, boolean) IS 'deletes a user''s events (with those of the anonymousIds linked to it) and dead letters in a source, records it in segment_deletions, and with suppress dead-letters its future events; returns how many rows it removed';

CREATE FUNCTION segment_unsuppress_user(source text, user_id text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found_source integer := @extschema@.segment_deletion_source(segment_unsuppress_user.source, segment_unsuppress_user.user_id);
    removed bigint;
BEGIN
    DELETE FROM @extschema@.segment_suppressions p
    WHERE p.source_id = found_source AND p.user_id = segment_unsuppress_user.user_id;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_unsuppress_user(text, text) FROM PUBLIC;
COMMENT ON FUNCTION segment_unsuppress_user(text, text) IS 'lifts the suppression of a user set by segment_forget_user(..., suppress => true); returns how many suppressed ids it removed';

-- Carries out the deletion notifications recorded 'pending' by the ingest workers. The warehouse worker calls
-- it about once a second as the extension's owner; calling it by hand does the same at once. A request that
-- fails is marked 'failed' with its error; the others go on. Returns how many requests it carried out.
CREATE FUNCTION segment_run_deletions() RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    request record;
    result record;
    message text;
    done integer := 0;
BEGIN
    FOR request IN
        SELECT d.id, d.source_id, d.user_id, d.suppress FROM @extschema@.segment_deletions d
        WHERE d.status = 'pending' ORDER BY d.id FOR UPDATE SKIP LOCKED
    LOOP
        BEGIN
            IF NOT EXISTS (SELECT FROM @extschema@.segment_sources s WHERE s.id = request.source_id) THEN
                RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                    MESSAGE = format('source %s does not exist', request.source_id);
            END IF;
            SELECT * INTO result FROM @extschema@.segment_forget(request.source_id, request.user_id, request.suppress);
            UPDATE @extschema@.segment_deletions d
            SET status = 'done', completed_at = clock_timestamp(), anonymous_ids = result.anonymous_ids,
                events_deleted = result.events_deleted, rejected_deleted = result.rejected_deleted, error = NULL
            WHERE d.id = request.id;
            done := done + 1;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
            UPDATE @extschema@.segment_deletions d SET status = 'failed', completed_at = clock_timestamp(), error = message
            WHERE d.id = request.id;
            RAISE WARNING USING MESSAGE = format('segment_webhook: deletion request %s failed: %s', request.id, message),
                HINT = 'Fix the cause, then UPDATE segment_deletions SET status = ''pending'' WHERE id = ... to try again.';
        END;
    END LOOP;
    RETURN done;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_run_deletions() FROM PUBLIC;
COMMENT ON FUNCTION segment_run_deletions() IS 'carries out the pending deletion requests (Segment''s deletion notifications); returns how many it carried out';

-- end of section: user deletion


-- 0.4 section: metrics and admin

-- end of section: metrics and admin

-- A role of the user's that runs the workers (segment_webhook.role) holds the grants of 0.3; without those 0.4
-- adds, its batches would fail with 503 storage_misconfigured until someone granted them. Grant them here, as
-- they are granted to segment_webhook_ingest above. (A fresh installation leaves a custom role to the user, as
-- the README says.)
DO $$
DECLARE
    workers_role text := nullif(current_setting('segment_webhook.role', true), '');
BEGIN
    IF workers_role IS NULL OR workers_role = 'segment_webhook_ingest'
       OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = workers_role AND NOT rolsuper) THEN
        RETURN;
    END IF;
    EXECUTE format('GRANT EXECUTE ON FUNCTION @extschema@.segment_message_conflicts(integer[], text[], jsonb[]) TO %I', workers_role);
    EXECUTE format('GRANT SELECT ON @extschema@.segment_suppressions TO %I', workers_role);
    EXECUTE format('GRANT INSERT (source_id, user_id) ON @extschema@.segment_deletions TO %I', workers_role);
END
$$;
