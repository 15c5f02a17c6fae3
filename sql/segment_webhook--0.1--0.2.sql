-- segment_webhook 0.1 → 0.2: the unprivileged ingest role, new dead-letter reasons, segment_replay().
-- Every row of every table is kept; a running worker picks the role up on its next transaction.

\echo Use "ALTER EXTENSION segment_webhook UPDATE TO '0.2'" to load this file. \quit

-- The role that runs the workers' ingest SQL (and any trigger on segment_events) unless segment_webhook.role
-- names another: no superuser, no login; it reads the sources and adds rows, nothing more. Roles belong to the
-- cluster, not to a database, so it is created once and kept by DROP EXTENSION.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'segment_webhook_ingest') THEN
        CREATE ROLE segment_webhook_ingest NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA @extschema@ TO segment_webhook_ingest;
GRANT SELECT ON segment_sources TO segment_webhook_ingest;
GRANT INSERT ON segment_events, segment_rejected TO segment_webhook_ingest;
-- INSERT ... ON CONFLICT (source_id, message_id) reads the conflict columns.
GRANT SELECT (source_id, message_id) ON segment_events TO segment_webhook_ingest;

COMMENT ON COLUMN segment_rejected.reason IS 'invalid_json, not_an_object, invalid_batch, unknown_type, type_mismatch, deletion_request, missing_identity, missing_event, missing_previous_id, missing_group_id, invalid_message_id, nul_character, invalid_unicode, invalid_utf8, unstorable_value, refused_by_database';

-- Stores a dead-lettered message again, as it was kept or as fixed by the caller, and removes the dead letter.
CREATE FUNCTION segment_replay(rejected_id bigint, message jsonb DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    dead_letter record;
    source_name text;
    stored bigint;
BEGIN
    SELECT r.source_id, r.payload INTO dead_letter
    FROM @extschema@.segment_rejected r WHERE r.id = segment_replay.rejected_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('segment_rejected has no row with id %s', segment_replay.rejected_id);
    END IF;
    IF coalesce(segment_replay.message, dead_letter.payload) IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('dead letter %s was not stored as JSON', segment_replay.rejected_id),
            HINT = 'Pass the fixed message: segment_replay(id, fixed_message).';
    END IF;
    SELECT s.name INTO source_name FROM @extschema@.segment_sources s WHERE s.id = dead_letter.source_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('the source (id %s) of dead letter %s no longer exists', dead_letter.source_id,
                             segment_replay.rejected_id);
    END IF;
    stored := @extschema@.segment_ingest(source_name, coalesce(segment_replay.message, dead_letter.payload));
    DELETE FROM @extschema@.segment_rejected WHERE id = segment_replay.rejected_id;
    RETURN stored;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_replay(bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION segment_replay(bigint, jsonb) IS 'stores a dead-lettered message again (as kept, or the fixed message given) and deletes the dead letter; returns how many new events were stored';
