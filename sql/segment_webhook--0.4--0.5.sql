-- segment_webhook 0.4 → 0.5: segment_events partitioned by received_at (one partition per UTC day), deduplication
-- through segment_event_keys, retention. Every row of every table is kept: the 0.4 table becomes the default
-- partition as it is, without being rewritten or scanned (see README, "Partitions, retention and deduplication").

\echo Use "ALTER EXTENSION segment_webhook UPDATE TO '0.5'" to load this file. \quit

-- Version 0.5. Each part below keeps to its own section.

-- 0.5 section: partitioning
-- segment_events is partitioned by received_at, one partition per UTC day, named segment_events_pYYYYMMDD (the
-- names pg_partman gives daily partitions). segment_events_default, the default partition, takes what no day
-- partition does: the events stored before the first day partition existed. The table of version 0.4 and
-- earlier becomes that default partition as it is, neither rewritten nor scanned, with its indexes.
--
-- A unique key of a partitioned table must contain the partition key, so (source_id, message_id) can no longer
-- be one. Deduplication moves to segment_event_keys, an ordinary table whose primary key is (source_id,
-- message_id): every write inserts the key there first and stores the event only if the key was new, so two
-- transactions writing the same message wait for each other on that key, whichever day partition each would
-- write to. Keys are kept for segment_webhook.dedup_window after the event was received (7 days by default),
-- then removed by segment_run_maintenance(); a message sent again after that is stored again.

-- The dedup window, from the setting (7 days when the library is not loaded in this session).
CREATE FUNCTION segment_dedup_window() RETURNS interval
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(nullif(current_setting('segment_webhook.dedup_window', true), '')::interval, interval '7 days')
$$;
COMMENT ON FUNCTION segment_dedup_window() IS 'how long after it was received a message''s key is kept for deduplication (segment_webhook.dedup_window)';

CREATE TABLE segment_event_keys (
    source_id integer NOT NULL,
    message_id text NOT NULL,
    received_at timestamptz NOT NULL,
    event_id bigint,
    PRIMARY KEY (source_id, message_id)
);
CREATE INDEX segment_event_keys_received_at ON segment_event_keys USING brin (received_at);
REVOKE ALL ON segment_event_keys FROM PUBLIC;
COMMENT ON TABLE segment_event_keys IS 'the (source_id, message_id) of every message stored within segment_webhook.dedup_window: the deduplication key of the partitioned segment_events';
COMMENT ON COLUMN segment_event_keys.event_id IS 'segment_events.id of the stored event (NULL when a rule on segment_events decided where it went)';
SELECT pg_catalog.pg_extension_config_dump('segment_event_keys', '');

-- The smallest id of `relation` (which has an index on id, and ids given in order of arrival) whose received_at
-- is at or after `since`, by binary search over the id index: no scan of the table. Ids are drawn in arrival
-- order only within a few seconds, so callers search for a bound an hour earlier than they need.
CREATE FUNCTION segment_first_id_since(relation regclass, since timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    low bigint;
    high bigint;
    middle bigint;
    seen timestamptz;
BEGIN
    EXECUTE format('SELECT min(id), max(id) + 1 FROM %s', relation) INTO low, high;
    IF low IS NULL THEN
        RETURN NULL;
    END IF;
    WHILE low < high LOOP
        middle := low + (high - low) / 2;
        EXECUTE format('SELECT received_at FROM %s WHERE id >= $1 ORDER BY id LIMIT 1', relation) INTO seen USING middle;
        IF seen IS NULL OR seen >= since THEN
            high := middle;
        ELSE
            low := middle + 1;
        END IF;
    END LOOP;
    RETURN low;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_first_id_since(regclass, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION segment_first_id_since(regclass, timestamptz) IS 'the first id received at or after a time, by binary search over the id index (ids follow arrival order to within seconds)';

-- From here to the end of the update no event is written: the keys copied below must be those of every event
-- the 0.4 table will ever hold (a row committed after the copy would have no key, and its retry would be stored
-- again). The rename below needs this lock anyway.
LOCK TABLE segment_events IN ACCESS EXCLUSIVE MODE;

-- The keys of the events received within the dedup window: the newest ids, found through the id index.
DO $$
DECLARE
    since timestamptz := now() - @extschema@.segment_dedup_window();
    first_id bigint := @extschema@.segment_first_id_since('@extschema@.segment_events', since - interval '1 hour');
BEGIN
    INSERT INTO @extschema@.segment_event_keys (source_id, message_id, received_at, event_id)
    SELECT e.source_id, e.message_id, e.received_at, e.id FROM @extschema@.segment_events e
    WHERE e.id >= first_id AND e.received_at >= since
    ON CONFLICT DO NOTHING;
END
$$;

-- What depends on the table by name must follow it to the partitioned table. The extension's views are
-- replaced below; the warehouse views are rebuilt by the warehouse worker (they are marked pending); a view or
-- publication of the user's that names segment_events keeps reading the 0.4 table, now the default partition,
-- so it is named in a warning, as is a trigger or rule of the user's on it.
DO $$
DECLARE
    dependent record;
BEGIN
    FOR dependent IN
        SELECT DISTINCT v.oid::regclass AS name, v.relkind
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
        JOIN pg_catalog.pg_class v ON v.oid = r.ev_class
        WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
          AND d.refobjid = '@extschema@.segment_events'::regclass AND v.oid <> d.refobjid
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend x
                          WHERE x.classid = 'pg_catalog.pg_class'::regclass AND x.objid = v.oid
                            AND x.refclassid = 'pg_catalog.pg_extension'::regclass AND x.deptype = 'e')
          AND NOT EXISTS (SELECT FROM @extschema@.segment_warehouse_relations w
                          JOIN @extschema@.segment_sources s ON s.id = w.source_id
                          WHERE to_regclass(format('%I.%I', s.warehouse_schema, w.relation)) = v.oid)
    LOOP
        RAISE WARNING USING MESSAGE = format('segment_webhook: %s %s reads segment_events, which is now partitioned: it keeps reading the events stored before this update (the partition segment_events_default)',
                                             CASE dependent.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, dependent.name),
            HINT = 'Create it again (CREATE OR REPLACE VIEW with the same definition) to read every event.';
    END LOOP;
    FOR dependent IN
        SELECT t.tgname AS name, 'trigger' AS kind FROM pg_catalog.pg_trigger t
        WHERE t.tgrelid = '@extschema@.segment_events'::regclass AND NOT t.tgisinternal
        UNION ALL
        SELECT r.rulename, 'rule' FROM pg_catalog.pg_rewrite r
        WHERE r.ev_class = '@extschema@.segment_events'::regclass AND r.rulename <> '_RETURN'
        ORDER BY 1
    LOOP
        RAISE WARNING USING MESSAGE = format('segment_webhook: %s %I on segment_events stays on the partition segment_events_default (the 0.4 table): it applies only to the events stored there from now on',
                                             dependent.kind, dependent.name),
            HINT = format('Create the %s again on segment_events, the partitioned table, to apply it to every event.', dependent.kind);
    END LOOP;
    FOR dependent IN
        SELECT p.pubname FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
        WHERE pr.prrelid = '@extschema@.segment_events'::regclass
    LOOP
        RAISE WARNING USING MESSAGE = format('segment_webhook: publication %I publishes segment_events, which is now partitioned: it keeps publishing only the partition segment_events_default', dependent.pubname),
            HINT = 'ALTER PUBLICATION ... ADD TABLE segment_events, with publish_via_partition_root = true (docs/scale-out.md).';
    END LOOP;
END
$$;

-- The 0.4 table becomes the default partition. Its unique key (source_id, message_id) gives way to
-- segment_event_keys; its other indexes become the partitions of the partitioned table's indexes.
ALTER TABLE segment_events DROP CONSTRAINT segment_events_source_id_message_id_key;
ALTER TABLE segment_events RENAME TO segment_events_default;
ALTER INDEX segment_events_pkey RENAME TO segment_events_default_pkey;
ALTER INDEX segment_events_source_id_id_idx RENAME TO segment_events_default_source_id_id_idx;
ALTER INDEX segment_events_warehouse RENAME TO segment_events_default_warehouse;

-- Ids still come from the 0.4 table's identity sequence, segment_events_id_seq.
CREATE TABLE segment_events (
    id bigint NOT NULL DEFAULT nextval('segment_events_id_seq'),
    source_id integer NOT NULL,
    message_id text NOT NULL,
    type text NOT NULL CONSTRAINT segment_events_type_check CHECK (type IN ('track', 'identify', 'page', 'screen', 'group', 'alias')),
    event text,
    name text,
    category text,
    user_id text,
    anonymous_id text,
    group_id text,
    previous_id text,
    "timestamp" timestamptz NOT NULL,
    original_timestamp timestamptz,
    sent_at timestamptz,
    received_at timestamptz NOT NULL,
    payload jsonb NOT NULL,
    signature_verified boolean NOT NULL DEFAULT false
) PARTITION BY RANGE (received_at);
REVOKE ALL ON segment_events FROM PUBLIC;
COMMENT ON TABLE segment_events IS 'Segment messages as received (payload), with their typed fields; partitioned by received_at, one partition per UTC day';
COMMENT ON COLUMN segment_events.signature_verified IS 'true when this event''s own bytes were covered by a verified X-Signature (a single-message body, a whole-body signature, or the first element of a batch signed over its first element); false for unsigned sources, the other elements of such a batch, segment_ingest() and segment_replay(), and events stored before 0.4';
CREATE INDEX segment_events_source_id_id_idx ON segment_events (source_id, id);
CREATE INDEX segment_events_warehouse ON segment_events (source_id, type, event, "timestamp");
ALTER TABLE segment_events ATTACH PARTITION segment_events_default DEFAULT;
-- Payloads are compressed with lz4 (faster than pglz, and smaller for JSON) where the server has it (new
-- rows of every partition; rows already stored keep theirs).
DO $$
BEGIN
    ALTER TABLE @extschema@.segment_events ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- a server built without lz4 keeps pglz
END
$$;
COMMENT ON TABLE segment_events_default IS 'the default partition of segment_events: events stored before a day partition existed for them, and those of version 0.4 and earlier';

-- The privileges on the 0.4 table, for the partitioned one; and those that write events may write their keys
-- (with RETURNING) and draw ids.
DO $$
DECLARE
    granted record;
BEGIN
    FOR granted IN
        SELECT a.privilege_type, a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = '@extschema@.segment_events_default'::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON @extschema@.segment_events TO %s', granted.privilege_type,
                       CASE WHEN granted.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(granted.grantee::regrole::text) END);
        IF granted.privilege_type = 'INSERT' AND granted.grantee <> 0 THEN
            EXECUTE format('GRANT INSERT, SELECT (source_id, message_id, event_id) ON @extschema@.segment_event_keys TO %I',
                           granted.grantee::regrole);
            EXECUTE format('GRANT USAGE ON SEQUENCE @extschema@.segment_events_id_seq TO %I', granted.grantee::regrole);
        END IF;
    END LOOP;
    FOR granted IN
        SELECT t.attname, a.privilege_type, a.grantee
        FROM pg_catalog.pg_attribute t, pg_catalog.aclexplode(t.attacl) a
        WHERE t.attrelid = '@extschema@.segment_events_default'::regclass AND t.attacl IS NOT NULL
        ORDER BY t.attnum
    LOOP
        EXECUTE format('GRANT %s (%I) ON @extschema@.segment_events TO %s', granted.privilege_type, granted.attname,
                       CASE WHEN granted.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(granted.grantee::regrole::text) END);
    END LOOP;
END
$$;
-- Rows reach the default partition through the partitioned table only: its own grants go.
DO $$
DECLARE
    grantee oid;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = '@extschema@.segment_events_default'::regclass AND a.grantee <> c.relowner
        UNION
        SELECT DISTINCT a.grantee FROM pg_catalog.pg_attribute t, pg_catalog.aclexplode(t.attacl) a
        WHERE t.attrelid = '@extschema@.segment_events_default'::regclass AND t.attacl IS NOT NULL
    LOOP
        EXECUTE format('REVOKE ALL ON @extschema@.segment_events_default FROM %s',
                       CASE WHEN grantee = 0 THEN 'PUBLIC' ELSE quote_ident(grantee::regrole::text) END);
    END LOOP;
END
$$;
GRANT INSERT, SELECT (source_id, message_id, event_id) ON segment_event_keys TO segment_webhook_ingest;
GRANT USAGE ON SEQUENCE segment_events_id_seq TO segment_webhook_ingest;

-- The extension's views read the partitioned table.
CREATE OR REPLACE VIEW segment_messages AS
SELECT e.message_id AS id,
       e.id AS segment_event_id,
       e.source_id,
       e.type,
       e.received_at,
       e.sent_at,
       e."timestamp",
       e.original_timestamp,
       e.user_id,
       e.anonymous_id,
       e.payload -> 'context' ->> 'ip' AS context_ip,
       e.payload -> 'context' -> 'library' ->> 'name' AS context_library_name,
       e.payload -> 'context' -> 'library' ->> 'version' AS context_library_version,
       e.payload -> 'context' -> 'page' ->> 'path' AS context_page_path,
       e.payload -> 'context' -> 'page' ->> 'referrer' AS context_page_referrer,
       e.payload -> 'context' -> 'page' ->> 'search' AS context_page_search,
       e.payload -> 'context' -> 'page' ->> 'title' AS context_page_title,
       e.payload -> 'context' -> 'page' ->> 'url' AS context_page_url,
       e.payload -> 'context' ->> 'userAgent' AS context_user_agent,
       e.payload -> 'context' ->> 'locale' AS context_locale,
       e.payload -> 'context' ->> 'timezone' AS context_timezone,
       e.payload -> 'context' AS context,
       e.payload -> 'integrations' AS integrations,
       e.event,
       e.name,
       e.category,
       e.group_id,
       e.previous_id,
       e.payload -> 'properties' AS properties,
       e.payload -> 'traits' AS traits
FROM segment_events e;
COMMENT ON VIEW segment_messages IS 'all stored messages with context flattened the way Segment warehouses do';

CREATE OR REPLACE VIEW segment_users AS
WITH seen AS (
    SELECT user_id, min("timestamp") AS first_seen, max("timestamp") AS last_seen,
           max(received_at) AS received_at
    FROM segment_events WHERE user_id IS NOT NULL
    GROUP BY user_id
), latest_anonymous AS (
    SELECT DISTINCT ON (user_id) user_id, anonymous_id
    FROM segment_events WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL
    ORDER BY user_id, "timestamp" DESC, id DESC
), latest_trait AS (
    SELECT DISTINCT ON (e.user_id, t.key) e.user_id, t.key, t.value
    FROM segment_events e
    CROSS JOIN LATERAL pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(e.payload -> 'traits') = 'object'
                                                  THEN e.payload -> 'traits' ELSE '{}'::jsonb END) t
    WHERE e.type = 'identify' AND e.user_id IS NOT NULL
    ORDER BY e.user_id, t.key, e."timestamp" DESC, e.id DESC
), merged AS (
    SELECT user_id, pg_catalog.jsonb_object_agg(key, value) AS traits FROM latest_trait GROUP BY user_id
)
SELECT s.user_id AS id, coalesce(m.traits, '{}'::jsonb) AS traits, a.anonymous_id, s.first_seen, s.last_seen,
       s.received_at
FROM seen s
LEFT JOIN merged m USING (user_id)
LEFT JOIN latest_anonymous a USING (user_id);

-- The warehouse views are built again by the warehouse worker, now over the partitioned table.
UPDATE segment_warehouse_relations SET pending = true;

-- Conflicting retries: the stored event of a key is found through segment_event_keys (its day partition by
-- received_at, then its id).
CREATE OR REPLACE FUNCTION segment_message_conflicts(source_ids integer[], message_ids text[], payloads jsonb[])
RETURNS SETOF integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.position::integer
    FROM unnest(source_ids, message_ids, payloads) WITH ORDINALITY AS m(source_id, message_id, payload, position)
    JOIN @extschema@.segment_event_keys k ON k.source_id = m.source_id AND k.message_id = m.message_id
    JOIN @extschema@.segment_events e ON e.received_at = k.received_at AND e.source_id = k.source_id AND e.id = k.event_id
    WHERE @extschema@.segment_retry_content(e.payload) IS DISTINCT FROM @extschema@.segment_retry_content(m.payload)
$$;

-- Scale-out: on the analytics node, the key decides whether a replicated event is new.
CREATE OR REPLACE FUNCTION segment_events_apply_dedup() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NEW;  -- the insert below
    END IF;
    NEW.id := nextval('@extschema@.segment_events_id_seq');
    INSERT INTO @extschema@.segment_event_keys (source_id, message_id, received_at, event_id)
    VALUES (NEW.source_id, NEW.message_id, NEW.received_at, NEW.id) ON CONFLICT DO NOTHING;
    IF FOUND THEN
        INSERT INTO @extschema@.segment_events SELECT (NEW).*;
    END IF;
    RETURN NULL;
END
$$;
-- end of section: partitioning


-- 0.5 section: retention
ALTER TABLE segment_sources ADD COLUMN retention interval CHECK (retention > interval '0');
COMMENT ON COLUMN segment_sources.retention IS 'how long this source''s events are kept (NULL: for ever); whole days are removed once all of the day is older, by segment_apply_retention()';

-- The day partitions of segment_events with their bounds (the default partition is not one).
CREATE FUNCTION segment_event_partitions(OUT partition regclass, OUT from_time timestamptz, OUT to_time timestamptz)
RETURNS SETOF record
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.oid::regclass, b[1]::timestamptz, b[2]::timestamptz
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') b
    WHERE i.inhparent = '@extschema@.segment_events'::regclass AND b IS NOT NULL
    ORDER BY 2
$$;
REVOKE EXECUTE ON FUNCTION segment_event_partitions() FROM PUBLIC;
COMMENT ON FUNCTION segment_event_partitions() IS 'the partitions of segment_events that hold a range of received_at, oldest first';

-- Removes the events older than their source's retention; returns how many. A day partition goes with DROP
-- TABLE once it is older than every source's retention (no source keeps everything); otherwise the rows of
-- each expired source leave it through the (source_id, id) index. The default partition's expired rows are
-- found through its id index. Each statement waits at most 100 ms for its lock (a writer queued behind it waits
-- no longer, and never long enough for a deadlock check): what could not be done is done on the next call.
CREATE FUNCTION segment_apply_retention() RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keep_everything boolean;
    longest interval;
    day record;
    source record;
    removed bigint := 0;
    rows_removed bigint;
    first_id bigint;
BEGIN
    PERFORM set_config('lock_timeout', '100ms', true);
    SELECT bool_or(s.retention IS NULL), max(s.retention) INTO keep_everything, longest
    FROM @extschema@.segment_sources s;
    IF longest IS NULL THEN
        RETURN 0;  -- no source has a retention
    END IF;
    FOR day IN SELECT * FROM @extschema@.segment_event_partitions() p WHERE p.to_time <= now() LOOP
        IF NOT keep_everything AND day.to_time <= now() - longest THEN
            EXECUTE format('SELECT count(*) FROM %s', day.partition) INTO rows_removed;
            EXECUTE format('DROP TABLE %s', day.partition);
            removed := removed + rows_removed;
            CONTINUE;
        END IF;
        FOR source IN SELECT s.id FROM @extschema@.segment_sources s WHERE day.to_time <= now() - s.retention LOOP
            EXECUTE format('DELETE FROM %s WHERE source_id = $1', day.partition) USING source.id;
            GET DIAGNOSTICS rows_removed = ROW_COUNT;
            removed := removed + rows_removed;
        END LOOP;
    END LOOP;
    FOR source IN SELECT s.id, now() - s.retention AS before FROM @extschema@.segment_sources s WHERE s.retention IS NOT NULL LOOP
        first_id := @extschema@.segment_first_id_since('@extschema@.segment_events_default', source.before + interval '1 hour');
        IF first_id IS NOT NULL THEN
            DELETE FROM @extschema@.segment_events_default e
            WHERE e.source_id = source.id AND e.id < first_id AND e.received_at < source.before;
            GET DIAGNOSTICS rows_removed = ROW_COUNT;
            removed := removed + rows_removed;
        END IF;
    END LOOP;
    RETURN removed;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_apply_retention() FROM PUBLIC;
COMMENT ON FUNCTION segment_apply_retention() IS 'removes the events older than their source''s retention (whole days: a day partition is dropped once every source''s retention has passed it); returns how many events it removed';

-- The day partitions from today to segment_webhook.partition_premake days ahead (0: none, for pg_partman or
-- another tool to make them). Creating a partition checks that the default partition holds no row of its
-- range, which would scan it, unless a validated constraint proves it: segment_events_default_before, CHECK
-- (received_at < bound), where no day partition exists before bound. It is added NOT VALID (a short lock), and
-- validated by the next call, which reads the default partition without blocking writes; only then are
-- partitions made, from the bound on. The bound is today when the default partition is empty (then all of it
-- happens in one call), else tomorrow (two days ahead after noon, UTC), so that a row for a day without a
-- partition is never refused meanwhile. Returns true when a next call has work (the constraint to validate).
CREATE FUNCTION segment_create_partitions() RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    premake integer := coalesce(nullif(current_setting('segment_webhook.partition_premake', true), '')::integer, 7);
    today timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    bound timestamptz;
    validated boolean;
    day timestamptz;
    name text;
BEGIN
    IF premake <= 0 THEN
        RETURN false;
    END IF;
    PERFORM set_config('lock_timeout', '100ms', true);
    SELECT substring(pg_get_constraintdef(c.oid) FROM '''([^'']+)''')::timestamptz, c.convalidated INTO bound, validated
    FROM pg_constraint c
    WHERE c.conrelid = '@extschema@.segment_events_default'::regclass AND c.conname = 'segment_events_default_before';
    IF bound IS NULL THEN
        IF EXISTS (SELECT FROM @extschema@.segment_events_default LIMIT 1) THEN
            bound := CASE WHEN now() < today + interval '12 hours' THEN today + interval '1 day'
                          ELSE today + interval '2 days' END;
        ELSE
            bound := today;
        END IF;
        EXECUTE format('ALTER TABLE @extschema@.segment_events_default ADD CONSTRAINT segment_events_default_before CHECK (received_at < %L) NOT VALID', bound);
        IF bound > today THEN
            RETURN true;  -- validated by the next call, in a transaction of its own
        END IF;
        validated := false;
    END IF;
    IF NOT validated THEN
        IF bound > today AND bound < now() + interval '6 hours' THEN
            -- Not validated in time (the next call would race the bound): start again with a later one.
            ALTER TABLE @extschema@.segment_events_default DROP CONSTRAINT segment_events_default_before;
            RETURN true;
        END IF;
        ALTER TABLE @extschema@.segment_events_default VALIDATE CONSTRAINT segment_events_default_before;
    END IF;
    day := greatest(bound, today);
    WHILE day <= today + make_interval(days => premake) LOOP
        IF NOT EXISTS (SELECT FROM @extschema@.segment_event_partitions() p
                       WHERE p.from_time < day + interval '1 day' AND p.to_time > day) THEN
            name := 'segment_events_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
            -- Made apart, then attached: ATTACH PARTITION takes a SHARE UPDATE EXCLUSIVE lock on segment_events,
            -- which writers do not wait for (CREATE TABLE ... PARTITION OF would take an ACCESS EXCLUSIVE one).
            EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.segment_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)',
                           name);
            -- The queries by id (the warehouse worker's, the debugger's) read each partition's id index.
            EXECUTE format('CREATE INDEX ON @extschema@.%I (id)', name);
            EXECUTE format('ALTER TABLE @extschema@.segment_events ATTACH PARTITION @extschema@.%I FOR VALUES FROM (%L) TO (%L)',
                           name, day, day + interval '1 day');
        END IF;
        day := day + interval '1 day';
    END LOOP;
    RETURN false;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_create_partitions() FROM PUBLIC;
COMMENT ON FUNCTION segment_create_partitions() IS 'makes the day partitions of segment_events up to segment_webhook.partition_premake days ahead; returns true when it should be called again soon';

-- What the warehouse worker runs about once an hour, as the extension's owner: the day partitions, retention,
-- and the keys older than the dedup window. Returns true when a next call has work.
CREATE FUNCTION segment_run_maintenance() RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    again boolean;
BEGIN
    again := @extschema@.segment_create_partitions();
    PERFORM @extschema@.segment_apply_retention();
    DELETE FROM @extschema@.segment_event_keys k WHERE k.received_at < now() - @extschema@.segment_dedup_window();
    RETURN again;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_run_maintenance() FROM PUBLIC;
COMMENT ON FUNCTION segment_run_maintenance() IS 'makes the day partitions ahead, applies retention and forgets the keys older than the dedup window; the warehouse worker runs it about once an hour';
-- end of section: retention
