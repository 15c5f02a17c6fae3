-- Rotation without downtime: segment_rotate_secret() and segment_rotate_write_key() keep the previous secret or
-- key for a grace period, in segment_sources.previous_*; clear errors for what cannot be rotated.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS segment_webhook;
RESET client_min_messages;
SET timezone = 'UTC';
SELECT segment_create_source('rotating', 'first-secret') IS NOT NULL AS created;
SELECT segment_create_source('unsigned') IS NOT NULL AS created;

-- the new secret at once, the previous one until the grace (default: a day) ends
BEGIN;
SELECT segment_rotate_secret('rotating', 'second-secret');
SELECT shared_secret, previous_shared_secret,
       previous_shared_secret_expires_at = now() + interval '24 hours' AS expires_in_a_day
FROM segment_sources WHERE name = 'rotating';
COMMIT;

-- a second rotation within the grace: the older previous secret is dropped
BEGIN;
SELECT segment_rotate_secret('rotating', 'third-secret', '10 minutes');
SELECT shared_secret, previous_shared_secret,
       previous_shared_secret_expires_at = now() + interval '10 minutes' AS expires_in_ten_minutes
FROM segment_sources WHERE name = 'rotating';
COMMIT;

-- a grace of 0: the previous secret stops at once and is not kept
SELECT segment_rotate_secret('rotating', 'fourth-secret', '0');
SELECT shared_secret, previous_shared_secret, previous_shared_secret_expires_at
FROM segment_sources WHERE name = 'rotating';

-- a source without a secret gets one at once: there is no previous secret to honour
SELECT segment_rotate_secret('unsigned', 'its-first-secret');
SELECT shared_secret, previous_shared_secret, previous_shared_secret_expires_at
FROM segment_sources WHERE name = 'unsigned';

-- write keys: a new key (returned and stored), the previous one kept for the grace
CREATE TEMP TABLE old_key AS SELECT write_key FROM segment_sources WHERE name = 'rotating';
BEGIN;
SELECT segment_rotate_write_key('rotating', '1 hour') AS new_key \gset
SELECT :'new_key' ~ '^[A-Za-z0-9_-]{32}$' AS url_safe_key,
       write_key = :'new_key' AS new_key_stored,
       previous_write_key = (SELECT write_key FROM old_key) AS previous_key_kept,
       previous_write_key_expires_at = now() + interval '1 hour' AS expires_in_an_hour
FROM segment_sources WHERE name = 'rotating';
COMMIT;
-- rotated again within the grace: the previous key is the one just replaced
UPDATE old_key SET write_key = :'new_key';
SELECT segment_rotate_write_key('rotating') <> :'new_key' AS another_key;
SELECT previous_write_key = (SELECT write_key FROM old_key) AS previous_is_the_last_key
FROM segment_sources WHERE name = 'rotating';
-- a grace of 0: the previous key stops at once
SELECT segment_rotate_write_key('rotating', '0') IS NOT NULL AS rotated;
SELECT previous_write_key, previous_write_key_expires_at FROM segment_sources WHERE name = 'rotating';

-- clear errors; nothing changes
CREATE TEMP TABLE before AS SELECT * FROM segment_sources;
\set VERBOSITY sqlstate
SELECT segment_rotate_secret('nosuch', 'secret');
SELECT segment_rotate_secret(NULL, 'secret');
SELECT segment_rotate_secret('rotating', NULL);
SELECT segment_rotate_secret('rotating', '');
SELECT segment_rotate_secret('rotating', 'fourth-secret');
SELECT segment_rotate_secret('rotating', 'fifth-secret', '-1 second');
SELECT segment_rotate_secret('rotating', 'fifth-secret', NULL);
SELECT segment_rotate_write_key('nosuch');
SELECT segment_rotate_write_key(NULL);
SELECT segment_rotate_write_key('rotating', '-1 day');
SELECT segment_rotate_write_key('rotating', NULL);
\set VERBOSITY default
SELECT segment_rotate_secret('nosuch', 'secret');
SELECT segment_rotate_secret('rotating', '');
SELECT segment_rotate_secret('rotating', 'fourth-secret');
SELECT segment_rotate_secret('rotating', 'fifth-secret', '-1 second');
SELECT segment_rotate_write_key('rotating', NULL);
SELECT count(*) AS changed_rows FROM (TABLE before EXCEPT TABLE segment_sources) changed;

-- only those trusted with the sources may rotate
CREATE ROLE segment_rotation_outsider;
SET ROLE segment_rotation_outsider;
\set VERBOSITY terse
SELECT segment_rotate_secret('rotating', 'stolen');
SELECT segment_rotate_write_key('rotating');
\set VERBOSITY default
RESET ROLE;
DROP ROLE segment_rotation_outsider;
