-- segment_events partitioned by received_at (version 0.5): one partition per UTC day, made ahead by
-- segment_create_partitions(); deduplication through segment_event_keys, exact across partitions; retention by
-- source, a whole day at a time; the keys forgotten after segment_webhook.dedup_window. (No worker runs in this
-- database: every step is called here.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS segment_webhook;
RESET client_min_messages;
SELECT segment_create_source('Part Web') IS NOT NULL AS created;
SELECT segment_create_source('Part Kept') IS NOT NULL AS created;
CREATE FUNCTION pg_temp.today() RETURNS timestamptz LANGUAGE sql AS $$ SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' $$;

-- The layout: a partitioned table, its default partition, the keys table.
SELECT c.relname, c.relkind, c.relispartition, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_class c WHERE c.relname IN ('segment_events', 'segment_events_default', 'segment_event_keys') ORDER BY 1;
SELECT pg_get_partkeydef('segment_events'::regclass);
SELECT attcompression AS payload_compression FROM pg_attribute WHERE attrelid = 'segment_events'::regclass AND attname = 'payload';
SELECT count(*) AS day_partitions FROM segment_event_partitions();

-- The default partition holds events already (earlier tests): the first call bounds it at tomorrow (two days
-- ahead after noon, UTC) with a constraint added NOT VALID, and asks to be called again; the second validates
-- it and makes the day partitions from that bound to segment_webhook.partition_premake (7) days ahead.
CREATE FUNCTION pg_temp.bound() RETURNS timestamptz LANGUAGE sql AS $$
    SELECT pg_temp.today() + CASE WHEN now() < pg_temp.today() + interval '12 hours' THEN interval '1 day' ELSE interval '2 days' END $$;
SELECT count(*) > 0 AS default_has_rows FROM segment_events_default;
SELECT segment_create_partitions() AS call_again;
SELECT conname, convalidated, pg_get_constraintdef(oid) LIKE 'CHECK ((received_at < %'
       AND substring(pg_get_constraintdef(oid) FROM '''([^'']+)''')::timestamptz = pg_temp.bound() AS at_the_bound
FROM pg_constraint WHERE conrelid = 'segment_events_default'::regclass AND contype = 'c' ORDER BY conname;
SELECT segment_create_partitions() AS call_again;
SELECT convalidated FROM pg_constraint WHERE conname = 'segment_events_default_before';
SELECT min(from_time) = pg_temp.bound() AS from_the_bound, max(to_time) = pg_temp.today() + interval '8 days' AS to_a_week_ahead,
       count(*) = extract(day FROM pg_temp.today() + interval '8 days' - pg_temp.bound()) AS one_per_day,
       bool_and(to_time - from_time = interval '1 day') AS a_day_each,
       bool_and(partition::text = 'segment_events_p' || to_char(from_time AT TIME ZONE 'UTC', 'YYYYMMDD')) AS named_by_day
FROM segment_event_partitions();
SELECT count(*) AS day_partitions INTO TEMP made FROM segment_event_partitions();
-- Each has the id index the queries by id read; a second call makes nothing new.
SELECT count(*) = (SELECT day_partitions FROM made) AS every_partition_has_an_id_index FROM segment_event_partitions() p
WHERE EXISTS (SELECT FROM pg_index i WHERE i.indrelid = p.partition AND i.indkey::text = '1');
SELECT segment_create_partitions() AS call_again;
SELECT count(*) = (SELECT day_partitions FROM made) AS nothing_new FROM segment_event_partitions();
-- With partition_premake = 0 nothing is made (pg_partman or another tool makes them).
SET segment_webhook.partition_premake = 0;
SELECT segment_create_partitions() AS call_again;
RESET segment_webhook.partition_premake;

-- Ingest: a message is stored once; its key records where (received_at, id).
SELECT segment_ingest('Part Web', '[{"type":"track","event":"Bought","userId":"pu1","messageId":"pm-1"},
                                    {"type":"track","event":"Bought","userId":"pu1","messageId":"pm-1"},
                                    {"type":"page","name":"Home","anonymousId":"pa1","messageId":"pm-2"}]') AS stored;
SELECT e.tableoid::regclass AS partition, e.message_id, k.event_id = e.id AS key_has_id, k.received_at = e.received_at AS key_has_time
FROM segment_events e JOIN segment_event_keys k USING (source_id, message_id)
WHERE e.message_id LIKE 'pm-%' ORDER BY e.message_id;
-- The INSERT path (direct_insert off) gives the same outcome.
SET segment_webhook.direct_insert = off;
SELECT segment_ingest('Part Web', '[{"type":"track","event":"Bought","userId":"pu1","messageId":"pm-1"},
                                    {"type":"track","event":"Left","userId":"pu1","messageId":"pm-3"},
                                    {"type":"track","event":"Left","userId":"pu1","messageId":"pm-3"}]') AS stored;
RESET segment_webhook.direct_insert;
SELECT message_id, count(*) FROM segment_events WHERE message_id LIKE 'pm-%' GROUP BY 1 ORDER BY 1;

-- Exact across partitions: a message stored in another day's partition (here three days ahead, as a message
-- received then would be) is a duplicate today, and the same messageId with other content is a conflict.
INSERT INTO segment_events (source_id, message_id, type, event, user_id, "timestamp", received_at, payload)
SELECT s.id, 'pm-ahead', 'track', 'Bought', 'pu2', now(), pg_temp.today() + interval '3 days 1 hour',
       '{"type":"track","event":"Bought","userId":"pu2","messageId":"pm-ahead"}'
FROM segment_sources s WHERE s.name = 'Part Web';
INSERT INTO segment_event_keys (source_id, message_id, received_at, event_id)
SELECT source_id, message_id, received_at, id FROM segment_events WHERE message_id = 'pm-ahead';
SELECT tableoid::regclass = format('segment_events_p%s', to_char((pg_temp.today() + interval '3 days') AT TIME ZONE 'UTC', 'YYYYMMDD'))::regclass AS in_that_days_partition
FROM segment_events WHERE message_id = 'pm-ahead';
SELECT segment_ingest('Part Web', '{"type":"track","event":"Bought","userId":"pu2","messageId":"pm-ahead"}') AS stored;
SELECT segment_ingest('Part Web', '{"type":"track","event":"Refunded","userId":"pu2","messageId":"pm-ahead"}') AS stored;
SELECT reason, message_id FROM segment_rejected WHERE message_id = 'pm-ahead';
SELECT count(*) AS stored_once FROM segment_events WHERE message_id = 'pm-ahead';

-- Retention. An old day partition holds events of both sources.
CREATE TABLE segment_events_p20200101 PARTITION OF segment_events FOR VALUES FROM ('2020-01-01 00:00+00') TO ('2020-01-02 00:00+00');
INSERT INTO segment_events (source_id, message_id, type, event, "timestamp", received_at, payload, anonymous_id)
SELECT s.id, 'old-' || s.name || '-' || n, 'track', 'Old', '2020-01-01 12:00+00', '2020-01-01 12:00+00', '{}', 'pa'
FROM segment_sources s, generate_series(1, 3) n WHERE s.name IN ('Part Web', 'Part Kept');
-- Events older than any day partition are in the default partition, with ids lower than the newer ones there
-- (ids follow arrival).
INSERT INTO segment_events (id, source_id, message_id, type, event, "timestamp", received_at, payload, anonymous_id)
SELECT -10 * s.id - n, s.id, 'older-' || s.name || '-' || n, 'track', 'Older', '2019-06-01 12:00+00', '2019-06-01 12:00+00', '{}', 'pa'
FROM segment_sources s, generate_series(1, 2) n WHERE s.name IN ('Part Web', 'Part Kept');
SELECT tableoid::regclass AS partition, count(*) FROM segment_events WHERE message_id LIKE 'old%' GROUP BY 1 ORDER BY 1;
-- No retention anywhere: nothing is removed.
SELECT segment_apply_retention() AS removed;
-- Part Web keeps 30 days, Part Kept everything: the old day keeps its partition and loses Part Web's rows;
-- the default partition loses Part Web's old rows too (found through its id index), and nothing recent goes.
UPDATE segment_sources SET retention = interval '30 days' WHERE name = 'Part Web';
SELECT segment_apply_retention() AS removed;
SELECT message_id FROM segment_events WHERE message_id LIKE 'old%' ORDER BY 1;
SELECT count(*) AS recent_kept FROM segment_events WHERE message_id LIKE 'pm-%';
SELECT segment_apply_retention() AS removed_again;
-- Once every source has a retention the old day is dropped whole (its rows counted); the others stay.
UPDATE segment_sources SET retention = interval '90 days' WHERE retention IS NULL;
SELECT segment_apply_retention() AS removed;
SELECT to_regclass('segment_events_p20200101') AS old_partition, count(*) = (SELECT day_partitions FROM made) AS the_others_left FROM segment_event_partitions();
SELECT count(*) AS old_events_left FROM segment_events WHERE received_at < '2021-01-01';
UPDATE segment_sources SET retention = NULL;
-- A retention must be positive.
\set VERBOSITY terse
UPDATE segment_sources SET retention = interval '-1 day' WHERE name = 'Part Web';
\set VERBOSITY default

-- The dedup window: keys received before it are forgotten by segment_run_maintenance(); after that the same
-- message would be stored again.
SHOW segment_webhook.dedup_window;
SELECT segment_dedup_window();
SET segment_webhook.dedup_window = '1h';
SELECT segment_dedup_window();
SET segment_webhook.dedup_window = '10min';
RESET segment_webhook.dedup_window;
UPDATE segment_event_keys SET received_at = now() - interval '8 days' WHERE message_id = 'pm-2';
SELECT segment_run_maintenance() AS call_again;
SELECT message_id FROM segment_event_keys WHERE message_id LIKE 'pm-%' ORDER BY 1;

-- The ingest role writes keys and draws ids, and may not delete or read payloads.
SELECT has_table_privilege('segment_webhook_ingest', 'segment_event_keys', 'INSERT') AS insert_keys,
       has_table_privilege('segment_webhook_ingest', 'segment_event_keys', 'DELETE') AS delete_keys,
       has_sequence_privilege('segment_webhook_ingest', 'segment_events_id_seq', 'USAGE') AS draw_ids,
       has_table_privilege('segment_webhook_ingest', 'segment_events', 'INSERT') AS insert_events,
       has_column_privilege('segment_webhook_ingest', 'segment_events', 'payload', 'SELECT') AS read_payloads;
-- Maintenance is the owner's.
SELECT p.proname, has_function_privilege('segment_webhook_ingest', p.oid, 'EXECUTE') AS ingest_may_run
FROM pg_proc p WHERE p.proname IN ('segment_apply_retention', 'segment_create_partitions', 'segment_run_maintenance') ORDER BY 1;
