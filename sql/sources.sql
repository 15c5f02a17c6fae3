-- Sources and their write keys.
SELECT segment_create_source('website') ~ '^[A-Za-z0-9_-]{32}$' AS url_safe_key_of_192_bits;
SELECT segment_create_source('backend', 'backend-secret') IS NOT NULL AS created_with_secret;
SELECT name, length(write_key) AS key_length, shared_secret, enabled FROM segment_sources ORDER BY id;

-- every key is new
SELECT count(DISTINCT segment_new_write_key()) AS distinct_keys FROM generate_series(1, 1000);

-- the key returned is the one stored
DO $$
DECLARE key text := segment_create_source('mobile');
BEGIN
    IF NOT EXISTS (SELECT FROM segment_sources WHERE name = 'mobile' AND write_key = key) THEN
        RAISE EXCEPTION 'returned key % is not the stored one', key;
    END IF;
END $$;

-- clear errors
\set VERBOSITY sqlstate
SELECT segment_create_source('website');
SELECT segment_create_source('');
SELECT segment_create_source('empty-secret', '');
\set VERBOSITY default
SELECT segment_create_source('website');
SELECT segment_create_source('empty-secret', '');
