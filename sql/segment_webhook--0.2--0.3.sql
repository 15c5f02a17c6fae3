-- segment_webhook 0.2 → 0.3: the warehouse relations. Every source gets a schema named by the snake_case of its
-- name (a source whose name gives a schema that exists and is not the extension's gets none, with a warning);
-- the warehouse worker then creates the views and examines the events already stored, in batches, outside this
-- script's transaction. Every row of every table is kept.

\echo Use "ALTER EXTENSION segment_webhook UPDATE TO '0.3'" to load this file. \quit

ALTER TABLE segment_sources ADD COLUMN warehouse_schema text UNIQUE CHECK (warehouse_schema <> '');

-- Segment's warehouse names an event's table and column after the snake_case slug of its name.
CREATE OR REPLACE FUNCTION segment_event_slug(event text) RETURNS text
    AS 'MODULE_PATHNAME', 'segment_snake_case' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment_event_slug(text) IS 'snake_case slug of an event name, as Segment warehouses name event tables';

DROP FUNCTION segment_create_source(text, text);

-- Warehouse relations: per source, a schema holding tracks, identifies, pages, screens, groups, aliases, users
-- and one view per track event, with context, properties and traits flattened into typed columns, as Segment's
-- warehouses lay them out. The catalog below records what the events called for; the warehouse worker (or
-- segment_warehouse_sync()) examines newly committed events, records new columns and relations, and
-- (re)creates the views as the extension's owner, in its own transactions, never in the ingest path.

CREATE FUNCTION segment_snake_case(name text) RETURNS text
    AS 'MODULE_PATHNAME', 'segment_snake_case' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment_snake_case(text) IS 'Segment''s snake_case (the go-snakecase rules), as its warehouses name schemas, tables and columns';

-- The conversions the views apply: a JSON value of another type than the column's reads as NULL.
CREATE FUNCTION segment_json_bigint(value jsonb) RETURNS bigint
    AS 'MODULE_PATHNAME', 'segment_json_bigint' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment_json_float8(value jsonb) RETURNS double precision
    AS 'MODULE_PATHNAME', 'segment_json_float8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment_json_boolean(value jsonb) RETURNS boolean
    AS 'MODULE_PATHNAME', 'segment_json_boolean' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment_json_timestamptz(value jsonb) RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'segment_json_timestamptz' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment_json_bigint(jsonb) IS 'a JSON integer that fits a bigint, else NULL';
COMMENT ON FUNCTION segment_json_float8(jsonb) IS 'a JSON number as double precision, else NULL';
COMMENT ON FUNCTION segment_json_boolean(jsonb) IS 'a JSON boolean, else NULL';
COMMENT ON FUNCTION segment_json_timestamptz(jsonb) IS 'an ISO-8601 date and time string as timestamptz (no offset: UTC), else NULL';

-- The relations and columns a set of stored messages calls for, as JSON (see segment_warehouse_sync).
CREATE FUNCTION segment_warehouse_discover_transfn(internal, integer, text, text, jsonb) RETURNS internal
    AS 'MODULE_PATHNAME', 'segment_warehouse_discover_transfn' LANGUAGE C PARALLEL UNSAFE;
CREATE FUNCTION segment_warehouse_discover_finalfn(internal) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'segment_warehouse_discover_finalfn' LANGUAGE C PARALLEL UNSAFE;
CREATE AGGREGATE segment_warehouse_discover(source_id integer, type text, event text, payload jsonb) (
    SFUNC = segment_warehouse_discover_transfn,
    STYPE = internal,
    FINALFUNC = segment_warehouse_discover_finalfn
);
CREATE FUNCTION segment_warehouse_missing_transfn(internal, bigint, bigint, bigint) RETURNS internal
    AS 'MODULE_PATHNAME', 'segment_warehouse_missing_transfn' LANGUAGE C PARALLEL UNSAFE;
CREATE FUNCTION segment_warehouse_missing_finalfn(internal) RETURNS text
    AS 'MODULE_PATHNAME', 'segment_warehouse_missing_finalfn' LANGUAGE C PARALLEL UNSAFE;
CREATE AGGREGATE segment_warehouse_missing(id bigint, above bigint, up_to bigint) (
    SFUNC = segment_warehouse_missing_transfn,
    STYPE = internal,
    FINALFUNC = segment_warehouse_missing_finalfn
);
-- The same, skipping messages of a shape whose columns a committed pass of this session recorded in the given
-- catalog table (the warehouse worker's passes, one a second, over traffic of mostly known shapes).
CREATE FUNCTION segment_warehouse_discover_transfn(internal, integer, text, text, jsonb, regclass) RETURNS internal
    AS 'MODULE_PATHNAME', 'segment_warehouse_discover_transfn' LANGUAGE C PARALLEL UNSAFE;
CREATE AGGREGATE segment_warehouse_discover(source_id integer, type text, event text, payload jsonb, skip_known_in regclass) (
    SFUNC = segment_warehouse_discover_transfn,
    STYPE = internal,
    FINALFUNC = segment_warehouse_discover_finalfn
);
COMMENT ON AGGREGATE segment_warehouse_discover(integer, text, text, jsonb, regclass) IS 'segment_warehouse_discover, skipping the shapes a committed pass of this session recorded in skip_known_in';
COMMENT ON AGGREGATE segment_warehouse_missing(bigint, bigint, bigint) IS 'the ids in (above, up_to] that no input row had, as an int8multirange literal';
COMMENT ON AGGREGATE segment_warehouse_discover(integer, text, text, jsonb) IS 'the warehouse relations and columns (name, type, JSON paths) that a set of stored messages calls for';

-- One row per relation of a source's warehouse schema.
CREATE TABLE segment_warehouse_relations (
    source_id integer NOT NULL,
    relation text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('tracks', 'identifies', 'pages', 'screens', 'groups', 'aliases', 'users', 'event')),
    event_names text[] NOT NULL DEFAULT '{}',
    first_seen timestamptz NOT NULL DEFAULT now(),
    pending boolean NOT NULL DEFAULT true,
    last_error text,
    PRIMARY KEY (source_id, relation)
);
REVOKE ALL ON segment_warehouse_relations FROM PUBLIC;
COMMENT ON TABLE segment_warehouse_relations IS 'the warehouse relations of each source (event: one per track event slug); pending: its view is to be (re)built';
COMMENT ON COLUMN segment_warehouse_relations.event_names IS 'kind event: the event names, as sent, whose slug names this relation';

-- One row per column the events called for, in the order they first appeared (views only ever append).
CREATE TABLE segment_warehouse_columns (
    source_id integer NOT NULL,
    relation text NOT NULL,
    column_name text NOT NULL,
    column_type text NOT NULL CHECK (column_type IN ('boolean', 'bigint', 'double precision', 'timestamptz', 'text')),
    paths jsonb NOT NULL,
    position integer NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, relation, column_name),
    FOREIGN KEY (source_id, relation) REFERENCES segment_warehouse_relations ON DELETE CASCADE
);
REVOKE ALL ON segment_warehouse_columns FROM PUBLIC;
COMMENT ON TABLE segment_warehouse_columns IS 'the columns of each warehouse relation: widened type, the JSON paths that feed it, order of first appearance';

-- How far the events have been examined, and the ids below that were not yet visible then (transactions in
-- progress) to look at again.
CREATE TABLE segment_warehouse_progress (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    examined_to bigint NOT NULL DEFAULT 0
);
REVOKE ALL ON segment_warehouse_progress FROM PUBLIC;
CREATE TABLE segment_warehouse_gaps (
    ids int8multirange NOT NULL,
    horizon xid8 NOT NULL,
    next_check timestamptz NOT NULL,
    checks integer NOT NULL DEFAULT 0
);
REVOKE ALL ON segment_warehouse_gaps FROM PUBLIC;
COMMENT ON TABLE segment_warehouse_gaps IS 'event ids not yet visible when examined: looked at again until every transaction that could hold them has ended (horizon)';

-- What was over a limit, so that it is logged once: (source, relation) for columns, (source, '') for relations.
CREATE TABLE segment_warehouse_capped (
    source_id integer NOT NULL,
    relation text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, relation)
);
REVOKE ALL ON segment_warehouse_capped FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('segment_warehouse_relations', '');
SELECT pg_catalog.pg_extension_config_dump('segment_warehouse_columns', '');
SELECT pg_catalog.pg_extension_config_dump('segment_warehouse_progress', '');
SELECT pg_catalog.pg_extension_config_dump('segment_warehouse_capped', '');

-- The views filter on these columns, and dashboards on "timestamp".
CREATE INDEX segment_events_warehouse ON segment_events (source_id, type, event, "timestamp");

-- Creates a source's warehouse schema, or checks that an existing one is the extension's: a schema the
-- extension created carries a comment starting with 'segment_webhook:' (kept by pg_dump).
CREATE FUNCTION segment_warehouse_ensure_schema(schema_name text, source_name text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    comment text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = schema_name) THEN
        EXECUTE format('CREATE SCHEMA %I', schema_name);
        EXECUTE format('COMMENT ON SCHEMA %I IS %L', schema_name,
                       format('segment_webhook: warehouse relations of source %s', source_name));
        RETURN;
    END IF;
    SELECT obj_description(n.oid, 'pg_namespace') INTO comment FROM pg_namespace n WHERE n.nspname = schema_name;
    IF comment IS NULL OR comment NOT LIKE 'segment_webhook:%' THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_schema',
            MESSAGE = format('schema "%s" already exists and does not hold segment_webhook warehouse relations', schema_name),
            HINT = 'Choose another schema with warehouse_schema, or mark this one as the extension''s with COMMENT ON SCHEMA ... IS ''segment_webhook: ...''.';
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_warehouse_ensure_schema(text, text) FROM PUBLIC;

-- Names a new source's schema (the snake_case of its name), creates it, and moves it when warehouse_schema
-- changes. Nothing here runs inside the ingest path: sources change rarely.
CREATE FUNCTION segment_sources_warehouse_schema() RETURNS trigger
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_schema text;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.warehouse_schema IS NULL THEN
        NEW.warehouse_schema := left(@extschema@.segment_snake_case(NEW.name), 63);
        IF NEW.warehouse_schema = '' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('source name "%s" gives no schema name (no ASCII letter or digit)', NEW.name),
                HINT = 'Pass warehouse_schema, or NULL by UPDATE afterwards for no warehouse relations.';
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        old_schema := OLD.warehouse_schema;
    END IF;
    IF NEW.warehouse_schema IS NULL OR NEW.warehouse_schema IS NOT DISTINCT FROM old_schema THEN
        RETURN NEW;
    END IF;
    IF old_schema IS NOT NULL
       AND NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = NEW.warehouse_schema)
       AND EXISTS (SELECT FROM pg_namespace n WHERE n.nspname = old_schema
                   AND obj_description(n.oid, 'pg_namespace') LIKE 'segment_webhook:%') THEN
        -- Renaming keeps the views and whatever depends on them.
        EXECUTE format('ALTER SCHEMA %I RENAME TO %I', old_schema, NEW.warehouse_schema);
    ELSE
        PERFORM @extschema@.segment_warehouse_ensure_schema(NEW.warehouse_schema, NEW.name);
        UPDATE @extschema@.segment_warehouse_relations SET pending = true WHERE source_id = NEW.id;
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION segment_warehouse_widen(a text, b text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL OR a = b THEN a
                WHEN a IN ('bigint', 'double precision') AND b IN ('bigint', 'double precision') THEN 'double precision'
                ELSE 'text' END
$$;

-- The SQL expression of a column: its JSON paths (coalesced when several names flatten to one) as its type.
CREATE FUNCTION segment_warehouse_column_sql(paths jsonb, column_type text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN count(*) > 1 THEN 'COALESCE(' || string_agg(expression, ', ' ORDER BY n) || ')'
                ELSE min(expression) END
    FROM (SELECT n, CASE column_type
                        WHEN 'text' THEN format('e.payload #>> %s', path_sql)
                        WHEN 'bigint' THEN format('@extschema@.segment_json_bigint(e.payload #> %s)', path_sql)
                        WHEN 'double precision' THEN format('@extschema@.segment_json_float8(e.payload #> %s)', path_sql)
                        WHEN 'boolean' THEN format('@extschema@.segment_json_boolean(e.payload #> %s)', path_sql)
                        ELSE format('@extschema@.segment_json_timestamptz(e.payload #> %s)', path_sql) END AS expression
          FROM (SELECT n, format('ARRAY[%s]', (SELECT string_agg(quote_literal(k), ', ' ORDER BY i)
                                               FROM jsonb_array_elements_text(p) WITH ORDINALITY AS keys(k, i))) AS path_sql
                FROM jsonb_array_elements(paths) WITH ORDINALITY AS each_path(p, n)) AS path_list) AS expressions
$$;

-- (Re)creates one relation's view from the catalog. New columns are appended (CREATE OR REPLACE VIEW). A column
-- whose type was widened needs the view dropped and created again: done (keeping its owner and grants) when
-- nothing depends on the view; otherwise the column keeps its old type until segment_warehouse_rebuild() runs
-- after the dependent objects are gone, and values of the new type read as NULL there (they stay in payload).
CREATE FUNCTION segment_warehouse_build(source_id integer, relation text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    source record;
    target record;
    view_oid oid;
    qualified text;
    wanted text[] := '{}';     -- column names, in order
    wanted_types text[] := '{}';
    expressions text[] := '{}';
    existing record;
    compatible boolean := true;
    has_dependents boolean := false;
    select_list text;
    from_where text;
    definition text;
    column_row record;
    grants record;
    old_owner oid;
    saved_acl aclitem[];
    kept_expression text;
    i integer;
    held text := NULL;
BEGIN
    SELECT s.id, s.name, s.warehouse_schema INTO source FROM @extschema@.segment_sources s
    WHERE s.id = segment_warehouse_build.source_id;
    SELECT r.* INTO target FROM @extschema@.segment_warehouse_relations r
    WHERE r.source_id = segment_warehouse_build.source_id AND r.relation = segment_warehouse_build.relation;
    IF source.id IS NULL OR source.warehouse_schema IS NULL OR target.relation IS NULL THEN
        RETURN;
    END IF;
    PERFORM @extschema@.segment_warehouse_ensure_schema(source.warehouse_schema, source.name);
    qualified := format('%I.%I', source.warehouse_schema, target.relation);

    -- The standard columns, then the kind's own, then the discovered ones in order of appearance.
    IF target.kind = 'users' THEN
        wanted := ARRAY['id', 'received_at', 'uuid_ts'];
        wanted_types := ARRAY['text', 'timestamptz', 'timestamptz'];
        expressions := ARRAY['e.user_id', 'max(e.received_at)', 'max(e.received_at)'];
    ELSE
        wanted := ARRAY['id', 'received_at', 'sent_at', 'timestamp', 'original_timestamp', 'user_id',
                        'anonymous_id', 'uuid_ts'];
        wanted_types := ARRAY['text', 'timestamptz', 'timestamptz', 'timestamptz', 'timestamptz', 'text', 'text',
                              'timestamptz'];
        expressions := ARRAY['e.message_id', 'e.received_at', 'e.sent_at', 'e."timestamp"', 'e.original_timestamp',
                             'e.user_id', 'e.anonymous_id', 'e.received_at'];
        IF target.kind IN ('tracks', 'event') THEN
            wanted := wanted || ARRAY['event', 'event_text'];
            wanted_types := wanted_types || ARRAY['text', 'text'];
            expressions := expressions || ARRAY['@extschema@.segment_event_slug(e.event)', 'e.event'];
        ELSIF target.kind = 'pages' THEN
            wanted := wanted || ARRAY['name', 'category', 'url', 'path', 'title', 'search', 'referrer'];
            wanted_types := wanted_types || ARRAY['text', 'text', 'text', 'text', 'text', 'text', 'text'];
            expressions := expressions || ARRAY['e.name', 'e.category', $q$e.payload #>> '{properties,url}'$q$,
                $q$e.payload #>> '{properties,path}'$q$, $q$e.payload #>> '{properties,title}'$q$,
                $q$e.payload #>> '{properties,search}'$q$, $q$e.payload #>> '{properties,referrer}'$q$];
        ELSIF target.kind = 'screens' THEN
            wanted := wanted || ARRAY['name'];
            wanted_types := wanted_types || ARRAY['text'];
            expressions := expressions || ARRAY['e.name'];
        ELSIF target.kind = 'groups' THEN
            wanted := wanted || ARRAY['group_id'];
            wanted_types := wanted_types || ARRAY['text'];
            expressions := expressions || ARRAY['e.group_id'];
        ELSIF target.kind = 'aliases' THEN
            wanted := wanted || ARRAY['previous_id'];
            wanted_types := wanted_types || ARRAY['text'];
            expressions := expressions || ARRAY['e.previous_id'];
        END IF;
    END IF;
    FOR column_row IN
        SELECT c.column_name, c.column_type, c.paths FROM @extschema@.segment_warehouse_columns c
        WHERE c.source_id = segment_warehouse_build.source_id AND c.relation = segment_warehouse_build.relation
        ORDER BY c.position
    LOOP
        CONTINUE WHEN column_row.column_name = ANY (wanted);
        wanted := wanted || column_row.column_name;
        wanted_types := wanted_types || column_row.column_type;
        expressions := expressions || @extschema@.segment_warehouse_column_sql(column_row.paths, column_row.column_type);
    END LOOP;

    -- The view as it is: CREATE OR REPLACE VIEW needs its columns first, with the same names and types.
    SELECT c.oid, c.relowner INTO view_oid, old_owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = source.warehouse_schema AND c.relname = target.relation;
    IF view_oid IS NOT NULL THEN
        IF (SELECT relkind FROM pg_class WHERE oid = view_oid) <> 'v' THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_table',
                MESSAGE = format('%s exists and is not a view of segment_webhook', qualified);
        END IF;
        -- Views, materialized views and SQL-bodied functions built on it (not its own _RETURN rule).
        has_dependents := EXISTS (
            SELECT FROM pg_depend d
            WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = view_oid AND d.deptype = 'n'
              AND NOT (d.classid = 'pg_rewrite'::regclass
                       AND d.objid IN (SELECT w.oid FROM pg_rewrite w WHERE w.ev_class = view_oid)));
        FOR existing IN
            SELECT a.attnum, a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type_name
            FROM pg_attribute a WHERE a.attrelid = view_oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
        LOOP
            i := array_position(wanted, existing.name);
            IF i IS NULL OR i <> existing.attnum
               OR replace(wanted_types[i], 'timestamptz', 'timestamp with time zone') <> existing.type_name THEN
                compatible := false;
                IF has_dependents THEN
                    -- Keep the view's column as it is, converting to its old type.
                    IF i IS NOT NULL AND i <> existing.attnum THEN
                        RAISE EXCEPTION USING ERRCODE = 'object_in_use',
                            MESSAGE = format('the columns of %s are out of order and objects depend on it', qualified),
                            HINT = 'Drop the dependent objects, then call segment_warehouse_rebuild().';
                    END IF;
                    held := coalesce(held || ', ', '') || format('%s (%s, wanted %s)', existing.name,
                                                                 existing.type_name, wanted_types[i]);
                    wanted_types[i] := replace(existing.type_name, 'timestamp with time zone', 'timestamptz');
                    SELECT @extschema@.segment_warehouse_column_sql(c.paths, wanted_types[i]) INTO kept_expression
                    FROM @extschema@.segment_warehouse_columns c
                    WHERE c.source_id = segment_warehouse_build.source_id AND c.relation = segment_warehouse_build.relation
                      AND c.column_name = existing.name;
                    expressions[i] := kept_expression;
                END IF;
            END IF;
        END LOOP;
    END IF;

    -- users: the latest non-null value of each trait over the user's identify calls (after its 3 standard columns).
    SELECT string_agg(format('%s AS %I', CASE WHEN target.kind <> 'users' OR n <= 3 THEN expressions[n] ELSE
               format('(array_agg(%1$s ORDER BY e.received_at DESC, e.id DESC) FILTER (WHERE %1$s IS NOT NULL))[1]',
                      expressions[n]) END, wanted[n]), E',\n       ' ORDER BY n) INTO select_list
    FROM generate_subscripts(wanted, 1) AS n;
    from_where := format('FROM @extschema@.segment_events e WHERE e.source_id = %s', source.id);
    IF target.kind = 'users' THEN
        from_where := from_where || ' AND e.type = ''identify'' AND e.user_id IS NOT NULL GROUP BY e.user_id';
    ELSIF target.kind = 'event' THEN
        from_where := from_where || format(' AND e.type = ''track'' AND e.event = ANY (%L::text[])', target.event_names);
    ELSE
        from_where := from_where || format(' AND e.type = %L',
            CASE target.kind WHEN 'tracks' THEN 'track' WHEN 'identifies' THEN 'identify' WHEN 'pages' THEN 'page'
                             WHEN 'screens' THEN 'screen' WHEN 'groups' THEN 'group' ELSE 'alias' END);
    END IF;
    definition := format(E'SELECT %s\n%s', select_list, from_where);

    -- Waiting behind a long query on the view would queue every reader behind this DDL: give up quickly and
    -- let the next pass try again.
    PERFORM set_config('lock_timeout', '1s', true);
    IF view_oid IS NULL OR compatible OR has_dependents THEN
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', qualified, definition);
    ELSE
        SELECT c.relacl INTO saved_acl FROM pg_class c WHERE c.oid = view_oid;
        EXECUTE format('DROP VIEW %s', qualified);
        EXECUTE format('CREATE VIEW %s AS %s', qualified, definition);
        IF old_owner <> (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN
            EXECUTE format('ALTER VIEW %s OWNER TO %I', qualified, (SELECT rolname FROM pg_roles WHERE oid = old_owner));
        END IF;
        FOR grants IN SELECT a.grantee, a.privilege_type, a.is_grantable FROM aclexplode(saved_acl) a
                      WHERE a.grantee <> old_owner LOOP
            EXECUTE format('GRANT %s ON %s TO %s%s', grants.privilege_type, qualified,
                           CASE WHEN grants.grantee = 0 THEN 'PUBLIC'
                                ELSE quote_ident((SELECT rolname FROM pg_roles WHERE oid = grants.grantee)) END,
                           CASE WHEN grants.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END IF;
    EXECUTE format('COMMENT ON VIEW %s IS %L', qualified,
                   format('segment_webhook: %s of source %s', CASE target.kind WHEN 'event' THEN
                          format('track events %s', array_to_string(target.event_names, ', ')) ELSE target.kind END,
                          source.name));
    UPDATE @extschema@.segment_warehouse_relations r SET pending = false,
        last_error = CASE WHEN held IS NULL THEN NULL
                          ELSE format('columns kept at their old type because objects depend on the view: %s', held) END
    WHERE r.source_id = segment_warehouse_build.source_id AND r.relation = segment_warehouse_build.relation;
    IF held IS NOT NULL AND target.last_error IS DISTINCT FROM
        format('columns kept at their old type because objects depend on the view: %s', held) THEN
        RAISE WARNING USING MESSAGE = format('segment_webhook: %s: columns kept at their old type because objects depend on the view: %s', qualified, held),
            HINT = 'Drop the dependent objects, then call segment_warehouse_rebuild(); until then values of the wider type read as NULL there.';
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_warehouse_build(integer, text) FROM PUBLIC;

-- Records what segment_warehouse_discover() found: new relations and event names, new columns (appended in
-- order of appearance), widened types and new paths; marks the relations whose view must change. Limits:
-- segment_webhook.warehouse_max_relations per source and segment_webhook.warehouse_max_columns per relation;
-- what is over them stays in the payload only, and is logged once.
CREATE FUNCTION segment_warehouse_merge(discovered jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    item record;
    max_relations integer := coalesce(nullif(current_setting('segment_webhook.warehouse_max_relations', true), '')::integer, 500);
    max_columns integer := coalesce(nullif(current_setting('segment_webhook.warehouse_max_columns', true), '')::integer, 1000);
    relation_count integer;
    column_count integer;
    next_position integer;
    skipped integer;
BEGIN
    FOR item IN
        SELECT r.source_id, r.relation, r.kind, ARRAY(SELECT jsonb_array_elements_text(r.events)) AS events,
               r.columns, ordinal
        FROM jsonb_array_elements(discovered) WITH ORDINALITY AS each_relation(value, ordinal),
             jsonb_to_record(each_relation.value) AS r(source_id integer, relation text, kind text, events jsonb, columns jsonb)
        ORDER BY ordinal
    LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM @extschema@.segment_sources s
                                  WHERE s.id = item.source_id AND s.warehouse_schema IS NOT NULL);
        IF NOT EXISTS (SELECT FROM @extschema@.segment_warehouse_relations r
                       WHERE r.source_id = item.source_id AND r.relation = item.relation) THEN
            SELECT count(*) INTO relation_count FROM @extschema@.segment_warehouse_relations r
            WHERE r.source_id = item.source_id AND r.kind = 'event';
            IF item.kind = 'event' AND relation_count >= max_relations THEN
                INSERT INTO @extschema@.segment_warehouse_capped (source_id, relation) VALUES (item.source_id, '')
                ON CONFLICT DO NOTHING;
                IF FOUND THEN
                    RAISE WARNING USING MESSAGE = format('segment_webhook: source %s has %s event relations, the most segment_webhook.warehouse_max_relations allows; further events stay in tracks and in segment_events.payload',
                                                         item.source_id, relation_count),
                        DETAIL = format('The first event over the limit: %s. This is logged once.', item.events[1]);
                END IF;
                CONTINUE;
            END IF;
            INSERT INTO @extschema@.segment_warehouse_relations (source_id, relation, kind, event_names)
            VALUES (item.source_id, item.relation, item.kind, item.events);
        ELSIF item.kind = 'event' THEN
            UPDATE @extschema@.segment_warehouse_relations r
            SET event_names = r.event_names || ARRAY(SELECT e FROM unnest(item.events) e WHERE e <> ALL (r.event_names)),
                pending = true
            WHERE r.source_id = item.source_id AND r.relation = item.relation AND NOT (item.events <@ r.event_names);
        END IF;

        -- Known columns: widen the type, add paths.
        WITH incoming AS (
            SELECT c.name, c.type, c.paths FROM jsonb_to_recordset(item.columns) AS c(name text, type text, paths jsonb)
        ), changed AS (
            UPDATE @extschema@.segment_warehouse_columns k
            SET column_type = @extschema@.segment_warehouse_widen(k.column_type, i.type),
                paths = k.paths || coalesce((SELECT jsonb_agg(p) FROM jsonb_array_elements(i.paths) p
                                             WHERE NOT EXISTS (SELECT FROM jsonb_array_elements(k.paths) q WHERE q = p)), '[]')
            FROM incoming i
            WHERE k.source_id = item.source_id AND k.relation = item.relation AND k.column_name = i.name
              AND (k.column_type <> @extschema@.segment_warehouse_widen(k.column_type, i.type)
                   OR EXISTS (SELECT FROM jsonb_array_elements(i.paths) p
                              WHERE NOT EXISTS (SELECT FROM jsonb_array_elements(k.paths) q WHERE q = p)))
            RETURNING 1
        )
        UPDATE @extschema@.segment_warehouse_relations r SET pending = true
        WHERE r.source_id = item.source_id AND r.relation = item.relation AND EXISTS (SELECT FROM changed);

        -- New columns, appended in order of appearance, up to the limit.
        SELECT count(*), coalesce(max(c.position), 0) INTO column_count, next_position
        FROM @extschema@.segment_warehouse_columns c WHERE c.source_id = item.source_id AND c.relation = item.relation;
        WITH incoming AS (
            SELECT c.name, c.type, c.paths, c.n
            FROM ROWS FROM (jsonb_to_recordset(item.columns) AS (name text, type text, paths jsonb)) WITH ORDINALITY AS c(name, type, paths, n)
            WHERE NOT EXISTS (SELECT FROM @extschema@.segment_warehouse_columns k
                              WHERE k.source_id = item.source_id AND k.relation = item.relation AND k.column_name = c.name)
        ), numbered AS (
            SELECT *, row_number() OVER (ORDER BY n) AS rank FROM incoming
        ), added AS (
            INSERT INTO @extschema@.segment_warehouse_columns (source_id, relation, column_name, column_type, paths, position)
            SELECT item.source_id, item.relation, name, type, paths, next_position + rank::integer FROM numbered
            WHERE column_count + rank <= max_columns
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM numbered) - (SELECT count(*) FROM added) INTO skipped;
        IF column_count < (SELECT count(*) FROM @extschema@.segment_warehouse_columns c
                           WHERE c.source_id = item.source_id AND c.relation = item.relation) THEN
            UPDATE @extschema@.segment_warehouse_relations r SET pending = true
            WHERE r.source_id = item.source_id AND r.relation = item.relation;
        END IF;
        IF skipped > 0 THEN
            INSERT INTO @extschema@.segment_warehouse_capped (source_id, relation) VALUES (item.source_id, item.relation)
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                RAISE WARNING USING MESSAGE = format('segment_webhook: relation %s of source %s has %s columns, the most segment_webhook.warehouse_max_columns allows; further keys stay in segment_events.payload',
                                                     item.relation, item.source_id, max_columns),
                    DETAIL = 'This is logged once.';
            END IF;
        END IF;
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_warehouse_merge(jsonb) FROM PUBLIC;

-- The base relations of every source that has a warehouse schema (a source inserted by hand gets them too).
-- pages always has the web context columns of Segment's spec (campaign, page, IP, user agent, library), so that
-- models written for web sources, which select them all, run before each has been seen.
CREATE FUNCTION segment_warehouse_add_base_relations() RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO @extschema@.segment_warehouse_relations (source_id, relation, kind)
    SELECT s.id, k.kind, k.kind FROM @extschema@.segment_sources s
    CROSS JOIN unnest(ARRAY['tracks', 'identifies', 'pages', 'screens', 'groups', 'aliases', 'users']) AS k(kind)
    WHERE s.warehouse_schema IS NOT NULL
    ON CONFLICT DO NOTHING;
    WITH web(n, name, path) AS (
        VALUES (1, 'context_campaign_source', '["context","campaign","source"]'),
               (2, 'context_campaign_medium', '["context","campaign","medium"]'),
               (3, 'context_campaign_name', '["context","campaign","name"]'),
               (4, 'context_campaign_term', '["context","campaign","term"]'),
               (5, 'context_campaign_content', '["context","campaign","content"]'),
               (6, 'context_ip', '["context","ip"]'),
               (7, 'context_user_agent', '["context","userAgent"]'),
               (8, 'context_page_path', '["context","page","path"]'),
               (9, 'context_page_referrer', '["context","page","referrer"]'),
               (10, 'context_page_search', '["context","page","search"]'),
               (11, 'context_page_title', '["context","page","title"]'),
               (12, 'context_page_url', '["context","page","url"]'),
               (13, 'context_library_name', '["context","library","name"]'),
               (14, 'context_library_version', '["context","library","version"]')
    ), added AS (
        INSERT INTO @extschema@.segment_warehouse_columns (source_id, relation, column_name, column_type, paths, position)
        SELECT r.source_id, r.relation, web.name, 'text', jsonb_build_array(web.path::jsonb),
               coalesce((SELECT max(c.position) FROM @extschema@.segment_warehouse_columns c
                         WHERE c.source_id = r.source_id AND c.relation = r.relation), 0) + web.n
        FROM @extschema@.segment_warehouse_relations r CROSS JOIN web
        WHERE r.kind = 'pages'
          AND NOT EXISTS (SELECT FROM @extschema@.segment_warehouse_columns c
                          WHERE c.source_id = r.source_id AND c.relation = r.relation AND c.column_name = web.name)
        ON CONFLICT DO NOTHING
        RETURNING source_id, relation
    )
    UPDATE @extschema@.segment_warehouse_relations r SET pending = true
    FROM (SELECT DISTINCT source_id, relation FROM added) a
    WHERE r.source_id = a.source_id AND r.relation = a.relation
$$;
REVOKE EXECUTE ON FUNCTION segment_warehouse_add_base_relations() FROM PUBLIC;

-- One pass: looks again at ids that were not yet visible, examines the events committed since the last pass
-- (at most 100,000 ids at a time), records what they call for, and (re)builds the views that changed. The
-- warehouse worker calls it about once a second as the extension's owner; calling it by hand does the same at
-- once. Returns how many events it examined.
CREATE FUNCTION segment_warehouse_sync() RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    examined_to bigint;
    upper_id bigint;
    horizon xid8;
    discovered jsonb;
    missing int8multirange;
    examined bigint := 0;
    rows_in_range bigint;
    gap record;
    target record;
    message text;
    tracked integer[];
BEGIN
    -- One pass at a time (the worker's, or a caller's).
    INSERT INTO @extschema@.segment_warehouse_progress DEFAULT VALUES ON CONFLICT DO NOTHING;
    SELECT p.examined_to INTO examined_to FROM @extschema@.segment_warehouse_progress p FOR UPDATE;
    PERFORM @extschema@.segment_warehouse_add_base_relations();
    -- Only the events of sources with a warehouse schema are examined.
    SELECT coalesce(array_agg(s.id), '{}') INTO tracked FROM @extschema@.segment_sources s
    WHERE s.warehouse_schema IS NOT NULL;

    -- Ids that were missing: their transactions may have committed since. Looked at every second for a minute,
    -- then every ten seconds, until no transaction that could hold them is left.
    FOR gap IN SELECT g.ctid AS row_id, g.* FROM @extschema@.segment_warehouse_gaps g WHERE g.next_check <= clock_timestamp() LOOP
        SELECT @extschema@.segment_warehouse_discover(e.source_id, e.type, e.event, e.payload,
                   '@extschema@.segment_warehouse_columns'::regclass) FILTER (WHERE e.source_id = ANY (tracked)),
               count(e.id),
               @extschema@.segment_warehouse_missing(e.id, lower(gap.ids) - 1, upper(gap.ids) - 1)::int8multirange
        INTO discovered, rows_in_range, missing
        FROM unnest(gap.ids) AS r(ids)
        CROSS JOIN LATERAL (SELECT * FROM @extschema@.segment_events e
                            WHERE e.id >= lower(r.ids) AND e.id < upper(r.ids)) e;
        examined := examined + rows_in_range;
        PERFORM @extschema@.segment_warehouse_merge(discovered);
        -- (No row found: every id is still missing.)
        missing := gap.ids * coalesce(missing, gap.ids);
        IF isempty(missing) OR pg_snapshot_xmin(pg_current_snapshot()) >= gap.horizon THEN
            DELETE FROM @extschema@.segment_warehouse_gaps g WHERE g.ctid = gap.row_id;
        ELSE
            UPDATE @extschema@.segment_warehouse_gaps g
            SET ids = missing, checks = g.checks + 1,
                next_check = clock_timestamp() + CASE WHEN g.checks < 60 THEN interval '1 second' ELSE interval '10 seconds' END
            WHERE g.ctid = gap.row_id;
        END IF;
    END LOOP;

    -- New events. The highest id first, then the snapshot: a transaction that holds a lower id and is not
    -- visible yet is still running at that snapshot (or aborted), so it has ended once the oldest running
    -- transaction is past the snapshot's xmax (the gap's horizon).
    SELECT max(e.id) INTO upper_id FROM @extschema@.segment_events e;
    IF upper_id IS NULL THEN
        upper_id := examined_to;
    END IF;
    horizon := pg_snapshot_xmax(pg_current_snapshot());
    upper_id := least(upper_id, examined_to + 100000);
    IF upper_id IS NOT NULL AND upper_id > examined_to THEN
        SELECT @extschema@.segment_warehouse_discover(e.source_id, e.type, e.event, e.payload,
                   '@extschema@.segment_warehouse_columns'::regclass) FILTER (WHERE e.source_id = ANY (tracked)),
               count(*), @extschema@.segment_warehouse_missing(e.id, examined_to, upper_id)::int8multirange
        INTO discovered, rows_in_range, missing
        FROM @extschema@.segment_events e WHERE e.id > examined_to AND e.id <= upper_id;
        examined := examined + rows_in_range;
        PERFORM @extschema@.segment_warehouse_merge(discovered);
        missing := coalesce(missing, int8multirange(int8range(examined_to, upper_id, '(]')));
        IF NOT isempty(missing) THEN
            INSERT INTO @extschema@.segment_warehouse_gaps (ids, horizon, next_check)
            VALUES (missing, horizon, clock_timestamp() + interval '500 milliseconds');
        END IF;
        UPDATE @extschema@.segment_warehouse_progress SET examined_to = upper_id;
    END IF;

    -- A view dropped by hand (or with its schema) is built again.
    UPDATE @extschema@.segment_warehouse_relations r SET pending = true
    FROM @extschema@.segment_sources s
    WHERE s.id = r.source_id AND s.warehouse_schema IS NOT NULL AND NOT r.pending
      AND to_regclass(format('%I.%I', s.warehouse_schema, r.relation)) IS NULL;

    -- The views. A view that cannot be built now (a lock held by a long query, a schema taken) is tried again
    -- on the next pass; its error is logged once and kept in segment_warehouse_relations.last_error.
    FOR target IN
        SELECT r.source_id, r.relation, r.last_error FROM @extschema@.segment_warehouse_relations r
        JOIN @extschema@.segment_sources s ON s.id = r.source_id
        WHERE r.pending AND s.warehouse_schema IS NOT NULL ORDER BY r.source_id, r.first_seen, r.relation
    LOOP
        BEGIN
            PERFORM @extschema@.segment_warehouse_build(target.source_id, target.relation);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
            UPDATE @extschema@.segment_warehouse_relations r SET last_error = message
            WHERE r.source_id = target.source_id AND r.relation = target.relation;
            IF target.last_error IS DISTINCT FROM message THEN
                RAISE WARNING USING MESSAGE = format('segment_webhook: could not build relation %s of source %s: %s',
                                                     target.relation, target.source_id, message),
                    DETAIL = 'It is tried again on every pass; this is logged once while the error is the same.';
            END IF;
        END;
    END LOOP;
    RETURN examined;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_warehouse_sync() FROM PUBLIC;
COMMENT ON FUNCTION segment_warehouse_sync() IS 'examines the events committed since the last pass, records new warehouse columns and relations and rebuilds the views that changed; returns how many events it examined';

-- Examines every event of a source (or of all sources) again and rebuilds its views: after dependent objects
-- blocked a widened type, or to make sure nothing was missed.
CREATE FUNCTION segment_warehouse_rebuild(source text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    source_ids integer[];
    low bigint := 0;
    high bigint;
    discovered jsonb;
    examined bigint := 0;
    rows_in_range bigint;
    target record;
BEGIN
    SELECT array_agg(s.id) INTO source_ids FROM @extschema@.segment_sources s
    WHERE (segment_warehouse_rebuild.source IS NULL OR s.name = segment_warehouse_rebuild.source)
      AND s.warehouse_schema IS NOT NULL;
    IF segment_warehouse_rebuild.source IS NOT NULL AND source_ids IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('source "%s" does not exist or has no warehouse schema', segment_warehouse_rebuild.source);
    END IF;
    INSERT INTO @extschema@.segment_warehouse_progress DEFAULT VALUES ON CONFLICT DO NOTHING;
    PERFORM 1 FROM @extschema@.segment_warehouse_progress FOR UPDATE;
    PERFORM @extschema@.segment_warehouse_add_base_relations();
    SELECT max(e.id) INTO high FROM @extschema@.segment_events e;
    WHILE low < coalesce(high, 0) LOOP
        SELECT @extschema@.segment_warehouse_discover(e.source_id, e.type, e.event, e.payload), count(*)
        INTO discovered, rows_in_range
        FROM @extschema@.segment_events e
        WHERE e.id > low AND e.id <= low + 100000 AND e.source_id = ANY (source_ids);
        PERFORM @extschema@.segment_warehouse_merge(discovered);
        examined := examined + rows_in_range;
        low := low + 100000;
    END LOOP;
    FOR target IN SELECT r.source_id, r.relation FROM @extschema@.segment_warehouse_relations r
                  WHERE r.source_id = ANY (source_ids) ORDER BY r.source_id, r.first_seen, r.relation LOOP
        PERFORM @extschema@.segment_warehouse_build(target.source_id, target.relation);
    END LOOP;
    RETURN examined;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_warehouse_rebuild(text) FROM PUBLIC;
COMMENT ON FUNCTION segment_warehouse_rebuild(text) IS 'examines every event of a source (NULL: all sources) again and rebuilds its warehouse views; returns how many events it examined';

-- The warehouse schema as Segment's schema page shows it: every column of every relation as it can be queried
-- now, with its type and when it first appeared (standard columns: when the relation did).
CREATE FUNCTION segment_warehouse_schema(source text DEFAULT NULL)
RETURNS TABLE (source text, schema_name text, relation text, column_name text, column_type text, first_seen timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.name, s.warehouse_schema, r.relation, a.attname::text, format_type(a.atttypid, a.atttypmod),
           coalesce(c.first_seen, r.first_seen)
    FROM @extschema@.segment_sources s
    JOIN @extschema@.segment_warehouse_relations r ON r.source_id = s.id
    JOIN pg_namespace n ON n.nspname = s.warehouse_schema
    JOIN pg_class v ON v.relnamespace = n.oid AND v.relname = r.relation AND v.relkind = 'v'
    JOIN pg_attribute a ON a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN @extschema@.segment_warehouse_columns c
           ON c.source_id = r.source_id AND c.relation = r.relation AND c.column_name = a.attname::text
    WHERE segment_warehouse_schema.source IS NULL OR s.name = segment_warehouse_schema.source
    ORDER BY s.name, r.relation, a.attnum
$$;
REVOKE EXECUTE ON FUNCTION segment_warehouse_schema(text) FROM PUBLIC;
COMMENT ON FUNCTION segment_warehouse_schema(text) IS 'the warehouse relations of a source (NULL: all) as they can be queried now: relation, column, type, first seen';

CREATE FUNCTION segment_create_source(name text, shared_secret text DEFAULT NULL, warehouse_schema text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_key text;
    new_id integer;
    violated text;
    relation text;
BEGIN
    IF segment_create_source.name IS NULL OR btrim(segment_create_source.name) = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'source name must not be empty';
    END IF;
    IF segment_create_source.shared_secret = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'shared_secret must not be empty',
            HINT = 'Pass NULL for a source whose requests are not signed.';
    END IF;
    new_key := @extschema@.segment_new_write_key();
    BEGIN
        -- The trigger on segment_sources names (snake_case of the name) and creates the warehouse schema.
        INSERT INTO @extschema@.segment_sources (name, write_key, shared_secret, warehouse_schema)
        VALUES (segment_create_source.name, new_key, segment_create_source.shared_secret,
                segment_create_source.warehouse_schema)
        RETURNING id INTO new_id;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        IF violated = 'segment_sources_warehouse_schema_key' THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_schema',
                MESSAGE = format('warehouse schema "%s" already belongs to another source',
                                 coalesce(segment_create_source.warehouse_schema,
                                          @extschema@.segment_snake_case(segment_create_source.name))),
                HINT = 'Pass another warehouse_schema: segment_create_source(name, shared_secret, warehouse_schema).';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('source "%s" already exists', segment_create_source.name);
    END;
    -- The base relations exist at once (with their standard columns); discovered columns follow.
    PERFORM @extschema@.segment_warehouse_add_base_relations();
    FOR relation IN SELECT r.relation FROM @extschema@.segment_warehouse_relations r WHERE r.source_id = new_id
                    ORDER BY r.relation LOOP
        PERFORM @extschema@.segment_warehouse_build(new_id, relation);
    END LOOP;
    RETURN new_key;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_create_source(text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION segment_create_source(text, text, text) IS 'creates a source and its warehouse schema (default: the snake_case of its name) and returns its new write key';

COMMENT ON COLUMN segment_sources.warehouse_schema IS 'the schema holding this source''s warehouse relations (NULL: none); default: the snake_case of its name';

-- Name the existing sources' schemas before the trigger exists: the schemas and views are created by the
-- warehouse worker, so that they do not become members of the extension (pg_dump keeps them, and objects of
-- the user's may depend on them).
DO $$
DECLARE
    source record;
    wanted text;
BEGIN
    FOR source IN SELECT s.id, s.name FROM @extschema@.segment_sources s ORDER BY s.id LOOP
        wanted := left(@extschema@.segment_snake_case(source.name), 63);
        IF wanted = ''
           OR EXISTS (SELECT FROM @extschema@.segment_sources s WHERE s.warehouse_schema = wanted)
           OR EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname = wanted
                      AND coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), '') NOT LIKE 'segment_webhook:%') THEN
            RAISE WARNING USING MESSAGE = format('segment_webhook: source "%s" gets no warehouse schema: "%s" is empty or taken', source.name, wanted),
                HINT = format('UPDATE segment_sources SET warehouse_schema = ''another_name'' WHERE name = %L;', source.name);
        ELSE
            UPDATE @extschema@.segment_sources s SET warehouse_schema = wanted WHERE s.id = source.id;
        END IF;
    END LOOP;
END
$$;
SELECT segment_warehouse_add_base_relations();

CREATE TRIGGER segment_sources_warehouse_schema BEFORE INSERT OR UPDATE OF warehouse_schema ON segment_sources
    FOR EACH ROW EXECUTE FUNCTION segment_sources_warehouse_schema();
