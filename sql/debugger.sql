-- The live event debugger's list: segment_recent() returns the latest stored events and dead letters of a source
-- (or of all sources), newest first, read along indexes however large the tables are.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS segment_webhook;
RESET client_min_messages;
SELECT segment_create_source('dbg-web') IS NOT NULL AS created;
SELECT segment_create_source('dbg-app') IS NOT NULL AS created;
SELECT segment_create_source('dbg-quiet') IS NOT NULL AS created;

-- each call is its own transaction, so each has its own received_at, later than the one before
SELECT segment_ingest('dbg-web', '[{"type":"track","event":"Signed Up","userId":"u1","messageId":"w-1"},
  {"type":"page","name":"Home","userId":"u1","messageId":"w-2"}]') AS stored;
SELECT segment_ingest('dbg-app', '{"type":"identify","userId":"u2","messageId":"a-1"}') AS stored;
SELECT segment_ingest('dbg-web', '[{"type":"track","userId":"u1","messageId":"w-3"},
  {"type":"screen","name":"Settings","userId":"u1","messageId":"w-4"},
  {"type":"track","event":"Signed Up","userId":"u1","messageId":"w-1"}]') AS stored;
-- a body that was not JSON: kept as bytes only
INSERT INTO segment_rejected (source_id, received_at, reason, detail, raw)
SELECT id, clock_timestamp(), 'invalid_json', 'unexpected end of input', '{"type":'::bytea
FROM segment_sources WHERE name = 'dbg-web';

-- newest first: the dead letter of the last request, then its events, then the earlier requests; the duplicate
-- w-1 was not stored again
SELECT kind, source, type, event, message_id, reason, payload ->> 'userId' AS user_id
FROM segment_recent('dbg-web', 20);
-- at most max_rows events and max_rows dead letters
SELECT kind, message_id, reason FROM segment_recent('dbg-web', 1);
-- rows of the same received_at: dead letters first, then higher ids first
SELECT count(*) = count(DISTINCT (received_at, kind, id)) AS rows_distinct,
       bool_and(ordered) AS ordered_newest_first
FROM (SELECT received_at, kind, id,
             coalesce((received_at, kind, id) >= (lead(received_at) OVER w, lead(kind) OVER w, lead(id) OVER w)
                      OR received_at > lead(received_at) OVER w, true) AS ordered
      FROM segment_recent('dbg-web', 20) WITH ORDINALITY AS r(kind, id, source, received_at, type, event,
                                                              message_id, payload, reason, n)
      WINDOW w AS (ORDER BY n)) checked;
-- the stored row's id and payload
SELECT r.id = e.id AS same_id, r.payload = e.payload AS same_payload, r.received_at = e.received_at AS same_time
FROM segment_recent('dbg-app') r JOIN segment_events e ON e.message_id = r.message_id;
-- a source that sent nothing: no rows
SELECT count(*) AS rows FROM segment_recent('dbg-quiet');
-- every source (NULL): the newest of all of them
SELECT kind, source, message_id, reason FROM segment_recent(NULL, 2);
SELECT kind, source, message_id FROM segment_recent(max_rows => 3) WHERE kind = 'event';

-- bad arguments
\set VERBOSITY terse
SELECT * FROM segment_recent('dbg-nowhere');
SELECT * FROM segment_recent('dbg-web', 0);
SELECT * FROM segment_recent('dbg-web', 10001);
SELECT * FROM segment_recent('dbg-web', NULL);
SELECT count(*) AS rows FROM segment_recent('dbg-web', 10000);
\set VERBOSITY default

-- who may call it: not PUBLIC; with EXECUTE, the caller still needs SELECT on the tables (no SECURITY DEFINER)
CREATE ROLE segment_debugger_viewer;
SET ROLE segment_debugger_viewer;
\set VERBOSITY terse
SELECT * FROM segment_recent('dbg-web');
RESET ROLE;
GRANT EXECUTE ON FUNCTION segment_recent(text, integer) TO segment_debugger_viewer;
SET ROLE segment_debugger_viewer;
SELECT * FROM segment_recent('dbg-web');
RESET ROLE;
GRANT SELECT ON segment_sources, segment_events, segment_rejected TO segment_debugger_viewer;
SET ROLE segment_debugger_viewer;
SELECT count(*) AS rows FROM segment_recent('dbg-web');
RESET ROLE;
\set VERBOSITY default
REVOKE ALL ON segment_sources, segment_events, segment_rejected FROM segment_debugger_viewer;
REVOKE ALL ON FUNCTION segment_recent(text, integer) FROM segment_debugger_viewer;
DROP ROLE segment_debugger_viewer;

-- cheap on a big table: 30,000 newer events and 3,000 dead letters of another source. Reading the 5 latest rows
-- of dbg-app (whose rows are older than all of these) scans neither table and fetches only the rows it returns.
INSERT INTO segment_events (source_id, message_id, type, event, user_id, "timestamp", received_at, payload)
SELECT s.id, 'bulk-' || n, 'track', 'Bulk', 'u', now(), now(), '{"type":"track"}'
FROM segment_sources s, generate_series(1, 30000) n WHERE s.name = 'dbg-web';
INSERT INTO segment_rejected (source_id, received_at, reason, message_id)
SELECT s.id, now(), 'missing_event', 'bulk-rejected-' || n
FROM segment_sources s, generate_series(1, 3000) n WHERE s.name = 'dbg-web';
ANALYZE segment_events, segment_rejected, segment_sources;
-- (segment_events is partitioned: here every row is in its default partition. pg_stat_xact_user_tables also
-- shows what this session counted earlier and has not reported yet: report it.)
SELECT pg_stat_force_next_flush();
BEGIN;
SELECT count(*) AS rows FROM segment_recent('dbg-app', 5);
SELECT relname, seq_scan, idx_scan > 0 AS used_an_index, idx_tup_fetch <= 5 AS fetched_at_most_5
FROM pg_stat_xact_user_tables WHERE relname IN ('segment_events_default', 'segment_rejected') ORDER BY relname;
COMMIT;
SELECT pg_stat_force_next_flush();
BEGIN;
SELECT count(*) AS rows FROM segment_recent(NULL, 5);
SELECT relname, seq_scan, idx_scan > 0 AS used_an_index, idx_tup_fetch <= 5 AS fetched_at_most_5
FROM pg_stat_xact_user_tables WHERE relname IN ('segment_events_default', 'segment_rejected') ORDER BY relname;
COMMIT;
SELECT pg_stat_force_next_flush();
BEGIN;
SELECT count(*) AS rows FROM segment_recent('dbg-web', 100);
SELECT relname, seq_scan, idx_scan > 0 AS used_an_index, idx_tup_fetch <= 100 AS fetched_at_most_100
FROM pg_stat_xact_user_tables WHERE relname IN ('segment_events_default', 'segment_rejected') ORDER BY relname;
COMMIT;
DELETE FROM segment_events WHERE message_id LIKE 'bulk-%';
DELETE FROM segment_rejected WHERE message_id LIKE 'bulk-rejected-%';
