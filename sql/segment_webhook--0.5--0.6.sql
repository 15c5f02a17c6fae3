-- segment_webhook 0.5 → 0.6: warehouse views that carry the values they read from the payload (not the payload),
-- and closed day partitions rewritten in the order of type, source, event and timestamp, so that a view reads
-- only the blocks of its own rows (see README, "Coming from a Segment warehouse" and "Partitions, retention and
-- deduplication").

\echo Use "ALTER EXTENSION segment_webhook UPDATE TO '0.6'" to load this file. \quit

-- Version 0.6. Each part below keeps to its own section.

-- 0.6 section: warehouse views
-- (Re)creates one relation's view from the catalog. New columns are appended (CREATE OR REPLACE VIEW). A column
-- whose type was widened needs the view dropped and created again: done (keeping its owner and grants) when
-- nothing depends on the view; otherwise the column keeps its old type until segment_warehouse_rebuild() runs
-- after the dependent objects are gone, and values of the new type read as NULL there (they stay in payload).
-- From 0.6 the columns read from the payload are computed in a LEFT JOIN LATERAL subquery. Postgres then
-- evaluates each where the events are scanned and carries the value up through sorts, aggregates and joins (a
-- placeholder), where an expression of the select list would carry the whole payload: count(DISTINCT url)
-- sorted every page's payload before. users (an aggregate) keeps its expressions in the select list.
CREATE OR REPLACE FUNCTION segment_warehouse_build(source_id integer, relation text) RETURNS void
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
    lateral_list text;
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

    IF target.kind = 'users' THEN
        -- The latest non-null value of each trait over the user's identify calls (after its 3 standard columns).
        SELECT string_agg(format('%s AS %I', CASE WHEN n <= 3 THEN expressions[n] ELSE
                   format('(array_agg(%1$s ORDER BY e.received_at DESC, e.id DESC) FILTER (WHERE %1$s IS NOT NULL))[1]',
                          expressions[n]) END, wanted[n]), E',\n       ' ORDER BY n) INTO select_list
        FROM generate_subscripts(wanted, 1) AS n;
        from_where := 'FROM @extschema@.segment_events e';
    ELSE
        -- A column of segment_events stays in the select list; anything else comes from the subquery f.
        SELECT string_agg(CASE WHEN c.plain THEN format('%s AS %I', expressions[n], wanted[n])
                               ELSE format('f.%I', wanted[n]) END, E',\n       ' ORDER BY n),
               string_agg(format('%s AS %I', expressions[n], wanted[n]), E',\n            ' ORDER BY n)
                   FILTER (WHERE NOT c.plain)
        INTO select_list, lateral_list
        FROM generate_subscripts(wanted, 1) AS n
        CROSS JOIN LATERAL (SELECT expressions[n] ~ '^e\.("timestamp"|[a-z_]+)$' AS plain) AS c;
        from_where := 'FROM @extschema@.segment_events e'
            || CASE WHEN lateral_list IS NULL THEN '' ELSE format(E'\nLEFT JOIN LATERAL (SELECT %s) f ON true', lateral_list) END;
    END IF;
    from_where := from_where || format(E'\nWHERE e.source_id = %s', source.id);
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

-- The views are made again by the warehouse worker (or segment_warehouse_rebuild()), with the same columns.
UPDATE segment_warehouse_relations SET pending = true;
-- end of section: warehouse views


-- 0.6 section: reordering
-- A closed day partition (one whose day ended more than an hour ago) is rewritten once (by the reorder worker, see
-- segment_reorder_next() below), in the order of type, source, event and timestamp. Events arrive interleaved, so a
-- source's pages, or one event's rows, are spread over every block of their day; once reordered they lie together,
-- and a warehouse view reads only their blocks. The copy also gets an index on type alone: its order matches the
-- rows' (a multi-column index counts for less in the planner's estimate), so that the planner reads a type's blocks
-- through it rather than the whole day. The rewrite is a copy: the partition stays readable (it is locked in SHARE
-- ROW EXCLUSIVE mode, which holds back only writes to that day), and the copy takes its place in one short step
-- under an ACCESS EXCLUSIVE lock on segment_events, waited for at most 100 ms (writers queued behind it wait no
-- longer, and never long enough for a deadlock check); when queries hold segment_events longer, it gives up, to be
-- tried again after the next maintenance. The copy carries the CHECK constraint segment_events_reordered (its
-- bounds, which also spares the attach a scan of the copy): a partition with it is done.
CREATE FUNCTION segment_reorder_partition(partition regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bounds record;
    rel record;
    new_name text;
    new_table text;
    columns text;
    index_row record;
    default_partition oid;
    copied bigint;
BEGIN
    SELECT p.from_time, p.to_time INTO bounds FROM @extschema@.segment_event_partitions() p
    WHERE p.partition = segment_reorder_partition.partition;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s is not a day partition of segment_events', partition);
    END IF;
    IF bounds.to_time > now() - interval '1 hour' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('partition %s is not closed: its events may arrive until %s', partition, bounds.to_time),
            HINT = 'A day partition can be reordered from an hour after its day ended.';
    END IF;
    SELECT c.relname, n.nspname, c.relkind, c.relowner, c.relacl INTO rel
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = partition;
    IF EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = partition AND k.conname = 'segment_events_reordered') THEN
        RETURN false;  -- done before
    END IF;
    -- Only a partition as segment_create_partitions makes it: a table of the maintenance role's, without grants,
    -- triggers, rules, policies, views, publications or indexes of its own (but its id or type index).
    IF rel.relkind <> 'r' OR rel.relowner <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)
       OR rel.relacl IS NOT NULL
       OR EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = partition AND NOT t.tgisinternal)
       OR EXISTS (SELECT FROM pg_rewrite w WHERE w.ev_class = partition)
       OR EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = partition)
       OR EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_rewrite'::regclass
                                          AND d.refclassid = 'pg_class'::regclass AND d.refobjid = partition)
       OR EXISTS (SELECT FROM pg_publication_rel r WHERE r.prrelid = partition)
       OR EXISTS (SELECT FROM pg_index i WHERE i.indrelid = partition
                  AND NOT EXISTS (SELECT FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
                  AND pg_get_indexdef(i.indexrelid) !~ ' USING btree \((id|type)\)$') THEN
        RETURN false;
    END IF;
    -- Attaching the copy makes Postgres check that the default partition holds no row of that day, scanning it
    -- while segment_events is locked, unless the default partition's bound rules the day out (every partition
    -- segment_create_partitions makes is past it). A day before it (made by hand) is reordered only while the
    -- default partition is small enough for that scan to be short.
    SELECT t.partdefid INTO default_partition FROM pg_partitioned_table t
    WHERE t.partrelid = '@extschema@.segment_events'::regclass;
    IF default_partition <> 0
       AND NOT EXISTS (SELECT FROM pg_constraint k
                       WHERE k.conrelid = default_partition AND k.conname = 'segment_events_default_before'
                         AND k.convalidated
                         AND substring(pg_get_constraintdef(k.oid) FROM '''([^'']+)''')::timestamptz <= bounds.from_time)
       AND pg_relation_size(default_partition) > 8 * 1024 * 1024 THEN
        RETURN false;
    END IF;

    -- SHARE ROW EXCLUSIVE conflicts with writers to that day (none are expected), with a vacuum of it, which a
    -- wait longer than deadlock_timeout makes give way, and with another reordering of it; readers pass. After
    -- another reordering, the name is the copy's, reordered already.
    PERFORM set_config('lock_timeout', '10s', true);
    EXECUTE format('LOCK TABLE %I.%I IN SHARE ROW EXCLUSIVE MODE', rel.nspname, rel.relname);
    PERFORM set_config('lock_timeout', '100ms', true);
    IF EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = format('%I.%I', rel.nspname, rel.relname)::regclass
                                             AND k.conname = 'segment_events_reordered') THEN
        RETURN false;
    END IF;
    new_name := left(rel.relname, 59) || '_new';
    new_table := format('%I.%I', rel.nspname, new_name);
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO columns
    FROM pg_attribute a WHERE a.attrelid = '@extschema@.segment_events'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
    EXECUTE format('CREATE TABLE %s (LIKE @extschema@.segment_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)',
                   new_table);
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s ORDER BY type, source_id, event, "timestamp", id',
                   new_table, columns, columns, partition);
    GET DIAGNOSTICS copied = ROW_COUNT;
    -- The indexes after the rows: those of segment_events (the attach adopts them), the partition's id index, and
    -- the type index.
    FOR index_row IN SELECT pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i
                     WHERE i.indrelid = '@extschema@.segment_events'::regclass LOOP
        EXECUTE regexp_replace(index_row.definition, '^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ USING ',
                               format('CREATE \1INDEX ON %s USING ', new_table));
    END LOOP;
    EXECUTE format('CREATE INDEX ON %s (id)', new_table);
    EXECUTE format('CREATE INDEX ON %s (type)', new_table);
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT segment_events_reordered CHECK (received_at >= %L AND received_at < %L)',
                   new_table, bounds.from_time, bounds.to_time);
    EXECUTE format('ANALYZE %s', new_table);

    -- The swap: segment_events alone (not its partitions, which autovacuum may be working on), then the default
    -- partition, whose constraint DETACH and ATTACH change.
    BEGIN
        LOCK TABLE ONLY @extschema@.segment_events IN ACCESS EXCLUSIVE MODE;
        IF default_partition <> 0 THEN
            EXECUTE format('LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE', default_partition::regclass);
        END IF;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION USING ERRCODE = 'lock_not_available',
            MESSAGE = format('partition %s was not reordered: segment_events was in use', partition),
            HINT = 'The reorder worker tries again after the next maintenance, within an hour; or call segment_reorder_partition() again.';
    END;
    EXECUTE format('ALTER TABLE @extschema@.segment_events DETACH PARTITION %s', partition);
    EXECUTE format('ALTER TABLE @extschema@.segment_events ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)',
                   new_table, bounds.from_time, bounds.to_time);
    EXECUTE format('DROP TABLE %s', partition);
    EXECUTE format('ALTER TABLE %s RENAME TO %I', new_table, rel.relname);
    FOR index_row IN SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                     WHERE i.indrelid = format('%I.%I', rel.nspname, rel.relname)::regclass
                       AND position(new_name IN c.relname) = 1 LOOP
        EXECUTE format('ALTER INDEX %I.%I RENAME TO %I', rel.nspname, index_row.name,
                       rel.relname || substr(index_row.name, length(new_name) + 1));
    END LOOP;
    RAISE LOG 'segment_webhook: partition %.% reordered (% events)', quote_ident(rel.nspname), quote_ident(rel.relname), copied;
    RETURN true;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_reorder_partition(regclass) FROM PUBLIC;
COMMENT ON FUNCTION segment_reorder_partition(regclass) IS 'rewrites a closed day partition of segment_events in the order of type, source, event and timestamp (once; returns false when it was done before or the partition is not one segment_webhook made)';

-- The next closed day partition to reorder, the most recent first: reordered, and returned; NULL when none is
-- left (or segment_webhook.reorder_partitions is off). The warehouse worker starts a background worker of its own
-- for it after its maintenance ("segment_webhook reorder", which calls it until NULL, each call a transaction), so
-- that a long copy never holds up the warehouse relations; by hand or from pg_cron, call it until it returns NULL.
-- Fails with lock_not_available when queries held segment_events at the swap (the worker then tries again after
-- the next maintenance).
CREATE FUNCTION segment_reorder_next() RETURNS regclass
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    day record;
    name text;
BEGIN
    IF NOT coalesce(nullif(current_setting('segment_webhook.reorder_partitions', true), ''), 'on')::boolean THEN
        RETURN NULL;
    END IF;
    FOR day IN SELECT p.partition FROM @extschema@.segment_event_partitions() p
               WHERE p.to_time <= now() - interval '1 hour'
                 AND NOT EXISTS (SELECT FROM pg_constraint k
                                 WHERE k.conrelid = p.partition AND k.conname = 'segment_events_reordered')
               ORDER BY p.from_time DESC LOOP
        name := day.partition::text;
        IF @extschema@.segment_reorder_partition(day.partition) THEN
            RETURN name::regclass;  -- the copy, under the partition's name
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION segment_reorder_next() FROM PUBLIC;
COMMENT ON FUNCTION segment_reorder_next() IS 'reorders the most recent closed day partition not reordered yet and returns it; NULL when none is left (the reorder worker calls it until then)';
-- end of section: reordering
