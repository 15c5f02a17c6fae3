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

-- end of section: event debugger


-- 0.4 section: user deletion

-- end of section: user deletion


-- 0.4 section: metrics and admin

-- end of section: metrics and admin
