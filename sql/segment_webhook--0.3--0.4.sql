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
    RETURN (payload - ARRAY['sentAt', 'receivedAt', 'writeKey']) #- '{context,ip}';
COMMENT ON FUNCTION segment_retry_content(jsonb) IS 'a message without what may change between two sends of it (sentAt, receivedAt, writeKey, context.ip): two sends of one message have the same retry content';

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

-- end of section: secret and write key rotation


-- 0.4 section: rate limits

-- end of section: rate limits


-- 0.4 section: signature scope

-- end of section: signature scope


-- 0.4 section: event debugger

-- end of section: event debugger


-- 0.4 section: user deletion

-- end of section: user deletion


-- 0.4 section: metrics and admin

-- end of section: metrics and admin
