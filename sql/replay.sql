-- Dead letters are replayed with segment_replay(): as kept, or as fixed by the caller. The dead letter is removed
-- once replayed; a message rejected again leaves a new dead letter saying why.
CREATE EXTENSION IF NOT EXISTS segment_webhook;
SELECT segment_create_source('replay') IS NOT NULL AS created;
SELECT segment_ingest('replay', '[{"type":"track","event":"Good","userId":"u1","messageId":"r-1"},
  {"type":"track","event":"No Identity","messageId":"r-2"},
  {"type":"track","userId":"u3","messageId":"r-3"}]') AS stored;
SELECT message_id, reason FROM segment_rejected WHERE message_id LIKE 'r-%' ORDER BY message_id;

-- fixed by the caller: the missing userId added
SELECT segment_replay(id, payload || '{"userId":"u2"}') AS stored FROM segment_rejected WHERE message_id = 'r-2';
SELECT message_id, user_id FROM segment_events WHERE message_id = 'r-2';
SELECT count(*) AS dead_letters_left FROM segment_rejected WHERE message_id = 'r-2';

-- replayed as kept: rejected again, with a new dead letter
SELECT segment_replay(id) AS stored FROM segment_rejected WHERE message_id = 'r-3';
SELECT message_id, reason FROM segment_rejected WHERE message_id LIKE 'r-%' ORDER BY message_id;

-- a message already stored is not stored twice
INSERT INTO segment_rejected (source_id, reason, message_id, payload)
SELECT id, 'refused_by_database', 'r-1', '{"type":"track","event":"Good","userId":"u1","messageId":"r-1"}'
FROM segment_sources WHERE name = 'replay';
SELECT segment_replay(id) AS stored FROM segment_rejected WHERE message_id = 'r-1';
SELECT count(*) AS copies FROM segment_events WHERE message_id = 'r-1';

-- a poisoned message kept as raw bytes only: replayed once its bytes are fixed
INSERT INTO segment_rejected (source_id, reason, message_id, raw)
SELECT id, 'nul_character', NULL, convert_to('{"type":"track","event":"Bad\u0000Name","userId":"u4","messageId":"r-4"}', 'UTF8')
FROM segment_sources WHERE name = 'replay';
\set VERBOSITY terse
SELECT segment_replay(id) FROM segment_rejected WHERE reason = 'nul_character';
SELECT segment_replay(12345678);
\set VERBOSITY default
SELECT segment_replay(id, replace(convert_from(raw, 'UTF8'), '\u0000', '')::jsonb) AS stored
FROM segment_rejected WHERE reason = 'nul_character';
SELECT event FROM segment_events WHERE message_id = 'r-4';

-- the ingest role: exactly what the worker needs
SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = 'segment_webhook_ingest';
SELECT has_table_privilege('segment_webhook_ingest', 'segment_sources', 'SELECT') AS read_sources,
       has_table_privilege('segment_webhook_ingest', 'segment_sources', 'UPDATE') AS update_sources,
       has_table_privilege('segment_webhook_ingest', 'segment_events', 'INSERT') AS insert_events,
       has_table_privilege('segment_webhook_ingest', 'segment_events', 'SELECT') AS read_all_events,
       has_column_privilege('segment_webhook_ingest', 'segment_events', 'message_id', 'SELECT') AS read_keys,
       has_table_privilege('segment_webhook_ingest', 'segment_events', 'DELETE') AS delete_events,
       has_table_privilege('segment_webhook_ingest', 'segment_rejected', 'INSERT') AS insert_rejected,
       has_table_privilege('segment_webhook_ingest', 'segment_rejected', 'SELECT') AS read_rejected,
       has_function_privilege('segment_webhook_ingest', 'segment_replay(bigint, jsonb)', 'EXECUTE') AS replay;
