-- Closed day partitions rewritten in the order of type, source, event and timestamp (version 0.6), and the
-- warehouse views that carry the values they read from the payload. (No worker runs in this database: every
-- step is called here.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS segment_webhook;
RESET client_min_messages;
SELECT segment_create_source('Reorder Web') IS NOT NULL AS created;
SELECT segment_create_source('Reorder App') IS NOT NULL AS created;

-- A closed day, its events interleaved as they arrive: two sources, every type, three events, out of order.
CREATE TABLE segment_events_p20200201 PARTITION OF segment_events FOR VALUES FROM ('2020-02-01 00:00+00') TO ('2020-02-02 00:00+00');
INSERT INTO segment_events (source_id, message_id, type, event, name, user_id, anonymous_id, group_id, previous_id,
                            "timestamp", received_at, payload)
SELECT s.id, 'ro-' || g, t.type, CASE WHEN t.type = 'track' THEN (ARRAY['Order Completed', 'Signed Up', 'Viewed'])[1 + g % 3] END,
       CASE WHEN t.type IN ('page', 'screen') THEN 'Home' END, 'u' || g % 7, 'a' || g, CASE WHEN t.type = 'group' THEN 'g1' END,
       CASE WHEN t.type = 'alias' THEN 'old' || g END,
       '2020-02-01 00:00+00'::timestamptz + (g * 7919 % 80000) * interval '1 second',
       '2020-02-01 00:00+00'::timestamptz + (g * 7919 % 80000) * interval '1 second' + interval '2 seconds',
       jsonb_build_object('type', t.type, 'messageId', 'ro-' || g,
                          'context', jsonb_build_object('campaign', jsonb_build_object('source', (ARRAY['google', 'news', 'ads'])[1 + g % 3])),
                          'properties', jsonb_build_object('url', 'https://example.com/' || g % 11, 'revenue', g % 50 + 0.5))
FROM generate_series(1, 600) g
CROSS JOIN LATERAL (SELECT (ARRAY['track', 'page', 'identify', 'screen', 'track', 'group', 'page', 'alias'])[1 + g % 8] AS type) t
JOIN segment_sources s ON s.name = CASE WHEN g % 5 < 3 THEN 'Reorder Web' ELSE 'Reorder App' END;
SELECT segment_warehouse_sync() > 0 AS discovered;
SELECT count(*) AS events, md5(string_agg(e::text, ',' ORDER BY id)) AS rows_before INTO TEMP before
FROM segment_events_p20200201 e;
SELECT md5(string_agg(v::text, ',' ORDER BY id)) AS pages_before INTO TEMP pages_before FROM reorder_web.pages v;
SELECT md5(string_agg(v::text, ',' ORDER BY id)) AS orders_before INTO TEMP orders_before FROM reorder_web.order_completed v;
CREATE FUNCTION pg_temp.out_of_order(partition regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM (SELECT row_number() OVER (ORDER BY ctid) AS stored,
                                                 row_number() OVER (ORDER BY type, source_id, event, "timestamp", id) AS wanted
                                          FROM %s) s WHERE stored <> wanted', partition) INTO n;
    RETURN n;
END $$;
SELECT pg_temp.out_of_order('segment_events_p20200201') > 0 AS in_arrival_order;

-- Reordered once: the same rows, now in that order, in a partition of the same name, with the same indexes
-- attached to segment_events' and its own id and type indexes; a second call has nothing to do.
SELECT segment_reorder_partition('segment_events_p20200201') AS reordered;
SELECT segment_reorder_partition('segment_events_p20200201') AS reordered_again;
SELECT count(*) = (SELECT events FROM before) AS same_count,
       md5(string_agg(e::text, ',' ORDER BY id)) = (SELECT rows_before FROM before) AS same_rows
FROM segment_events_p20200201 e;
SELECT pg_temp.out_of_order('segment_events_p20200201') AS out_of_order;
SELECT p.from_time = '2020-02-01 00:00+00' AND p.to_time = '2020-02-02 00:00+00' AS same_day
FROM segment_event_partitions() p WHERE p.partition = 'segment_events_p20200201'::regclass;
SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'segment_events_p20200201'::regclass ORDER BY 1;
SELECT c.relname AS index, pg_get_indexdef(i.indexrelid) ~ 'USING btree' AS btree,
       (SELECT p.inhparent::regclass FROM pg_inherits p WHERE p.inhrelid = i.indexrelid) AS attached_to
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'segment_events_p20200201'::regclass ORDER BY 1;
SELECT count(*) AS leftover_tables FROM pg_class WHERE relname LIKE 'segment_events_p20200201_new%';
-- The views read the same rows.
SELECT md5(string_agg(v::text, ',' ORDER BY id)) = (SELECT pages_before FROM pages_before) AS same_pages FROM reorder_web.pages v;
SELECT md5(string_agg(v::text, ',' ORDER BY id)) = (SELECT orders_before FROM orders_before) AS same_orders FROM reorder_web.order_completed v;
-- New events of that day still go to it (after the reordered rows).
INSERT INTO segment_events (source_id, message_id, type, "timestamp", received_at, payload)
SELECT id, 'ro-late', 'track', '2020-02-01 23:00+00', '2020-02-01 23:00+00', '{}' FROM segment_sources WHERE name = 'Reorder Web';
SELECT tableoid::regclass AS partition FROM segment_events WHERE message_id = 'ro-late';

-- What it refuses: a table that is no day partition, a day not over yet (an hour's grace), and, without error,
-- a partition that is not as segment_webhook makes it (here: a trigger of the user's).
SELECT segment_reorder_partition('segment_sources');
CREATE TABLE segment_events_p20990101 PARTITION OF segment_events FOR VALUES FROM ('2099-01-01 00:00+00') TO ('2099-01-02 00:00+00');
SELECT segment_reorder_partition('segment_events_p20990101');
DROP TABLE segment_events_p20990101;
CREATE TABLE segment_events_p20200202 PARTITION OF segment_events FOR VALUES FROM ('2020-02-02 00:00+00') TO ('2020-02-03 00:00+00');
INSERT INTO segment_events (source_id, message_id, type, "timestamp", received_at, payload)
SELECT id, 'ro2-' || g, (ARRAY['track', 'page'])[1 + g % 2], '2020-02-02 00:00+00'::timestamptz + g * interval '1 minute',
       '2020-02-02 00:00+00'::timestamptz + g * interval '1 minute', '{}'
FROM segment_sources, generate_series(1, 20) g WHERE name = 'Reorder Web';
CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER users_trigger BEFORE UPDATE ON segment_events_p20200202 FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
SELECT segment_reorder_partition('segment_events_p20200202') AS reordered_with_a_trigger;
SELECT pg_temp.out_of_order('segment_events_p20200202') > 0 AS left_as_it_was;
DROP TRIGGER users_trigger ON segment_events_p20200202;

-- segment_reorder_next() reorders the most recent closed partition not reordered yet, and returns it (the
-- reorder worker calls it until NULL); not with segment_webhook.reorder_partitions off.
SET segment_webhook.reorder_partitions = off;
SELECT segment_reorder_next() AS reordered;
SELECT pg_temp.out_of_order('segment_events_p20200202') > 0 AS not_reordered;
RESET segment_webhook.reorder_partitions;
SELECT segment_reorder_next() AS reordered;
SELECT pg_temp.out_of_order('segment_events_p20200202') AS out_of_order,
       EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'segment_events_p20200202'::regclass AND conname = 'segment_events_reordered') AS marked;
SELECT segment_reorder_next() AS reordered;
-- The maintenance the warehouse worker runs does not reorder (the reorder worker does, in a process of its own).
SELECT segment_run_maintenance() AS call_again;

-- The views compute what they read from the payload below the sort: count(DISTINCT url) sorts the values,
-- not whole payloads.
SET enable_hashagg = off;
CREATE FUNCTION pg_temp.sorted_columns(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
    EXECUTE 'EXPLAIN (VERBOSE, FORMAT JSON) ' || query INTO plan;
    RETURN QUERY WITH RECURSIVE nodes(node) AS (
        SELECT plan -> 0 -> 'Plan'
        UNION ALL
        SELECT child FROM nodes, json_array_elements(nodes.node -> 'Plans') AS child)
    SELECT DISTINCT o FROM nodes, json_array_elements_text(node -> 'Output') AS o WHERE node ->> 'Node Type' = 'Sort';
END $$;
SELECT * FROM pg_temp.sorted_columns('SELECT context_campaign_source, count(*), count(DISTINCT url) FROM reorder_web.pages GROUP BY 1');
SELECT context_campaign_source, count(*), count(DISTINCT url) FROM reorder_web.pages GROUP BY 1 ORDER BY 1;
SELECT payload #>> '{context,campaign,source}' AS context_campaign_source, count(*), count(DISTINCT payload #>> '{properties,url}')
FROM segment_events WHERE type = 'page' AND source_id = (SELECT id FROM segment_sources WHERE name = 'Reorder Web') GROUP BY 1 ORDER BY 1;
RESET enable_hashagg;
