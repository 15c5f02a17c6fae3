-- segment_events.signature_verified: the last column, NOT NULL, false unless the HTTP worker verified an
-- X-Signature over the event's own bytes (so never for segment_ingest() and segment_replay()).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS segment_webhook;
RESET client_min_messages;
SELECT a.attnum = (SELECT max(attnum) FROM pg_attribute WHERE attrelid = a.attrelid AND NOT attisdropped) AS is_last,
       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       pg_get_expr(d.adbin, d.adrelid) AS default_value
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'segment_events'::regclass AND a.attname = 'signature_verified';
SELECT segment_create_source('scope') IS NOT NULL AS created;
SELECT segment_ingest('scope', '[{"type":"track","event":"E","userId":"u","messageId":"scope-1"},
                                 {"type":"track","userId":"u","messageId":"scope-2"}]') AS stored;
SELECT segment_replay(id, payload || '{"event":"Fixed"}') AS replayed FROM segment_rejected WHERE message_id = 'scope-2';
SELECT message_id, signature_verified FROM segment_events WHERE message_id LIKE 'scope-%' ORDER BY message_id;
