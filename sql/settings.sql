-- Bounds of the settings that protect the host: a body must fit in one Postgres allocation.
SELECT name, setting, unit, min_val, max_val, context
FROM pg_settings WHERE name IN ('segment_webhook.max_request_size', 'segment_webhook.max_buffered_bytes')
ORDER BY name;
\set VERBOSITY terse
ALTER SYSTEM SET segment_webhook.max_request_size = '1GB';
ALTER SYSTEM SET segment_webhook.max_request_size = '1024MB';
\set VERBOSITY default
ALTER SYSTEM SET segment_webhook.max_request_size = '1023MB';
ALTER SYSTEM RESET segment_webhook.max_request_size;
-- every segment_webhook.* name is reserved: a misspelt one is refused, not silently kept
\set VERBOSITY terse
SET segment_webhook.max_request_sise = '1MB';
\set VERBOSITY default
