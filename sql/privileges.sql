-- Secrets stay secret: PUBLIC can read nothing of the extension's tables and cannot call its writers.
CREATE ROLE segment_outsider LOGIN;
SET ROLE segment_outsider;
\set VERBOSITY terse
SELECT * FROM segment_sources;
SELECT * FROM segment_events;
SELECT * FROM segment_rejected;
SELECT * FROM segment_tracks;
SELECT segment_create_source('sneaky');
SELECT segment_ingest('app', '{"type":"track","event":"E","userId":"x"}');
SELECT segment_new_write_key();
-- the pure functions are for everyone
SELECT segment_sign('x'::text, 'k') IS NOT NULL AS can_sign;
SELECT (segment_parse('{"type":"track"}')).type AS can_parse;
RESET ROLE;
\set VERBOSITY default
SELECT has_table_privilege('public', 'segment_sources', 'SELECT') AS public_can_read_sources;

-- the warehouse views of the sources depend on the extension: DROP EXTENSION says so, CASCADE drops them too
-- (their schemas stay)
\set VERBOSITY terse
DROP EXTENSION segment_webhook;
\set VERBOSITY default
SET client_min_messages = warning;
DROP EXTENSION segment_webhook CASCADE;
RESET client_min_messages;
SELECT count(*) AS views_left FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('website', 'backend', 'mobile', 'app', 'other', 'views') AND c.relkind = 'v';

-- the extension can live in its own schema, and its functions find their tables there
CREATE SCHEMA segment;
CREATE EXTENSION segment_webhook SCHEMA segment;
SELECT segment.segment_create_source('in-schema') IS NOT NULL AS created;
SELECT segment.segment_ingest('in-schema', '{"type":"track","event":"E","userId":"x","messageId":"s-1"}') AS stored;
SELECT count(*) FROM segment.segment_tracks;
-- a search_path without the extension's schema does not matter
SET search_path = pg_catalog;
SELECT segment.segment_ingest('in-schema', '{"type":"track","event":"E","userId":"x","messageId":"s-2"}') AS stored;
RESET search_path;
SET client_min_messages = warning;
DROP EXTENSION segment_webhook CASCADE;
RESET client_min_messages;
DROP SCHEMA segment;
DROP ROLE segment_outsider;
