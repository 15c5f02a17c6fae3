-- segment_ingest: validation, defaults, dedup and the dead letter, shared with the HTTP worker.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SELECT segment_create_source('app') IS NOT NULL AS created;

-- one message; stored once however often it is sent
SELECT segment_ingest('app', '{"type":"track","event":"Signed Up","userId":"u1","messageId":"m-1",
  "timestamp":"2024-05-01T10:00:00Z","properties":{"plan":"pro"}}') AS stored;
SELECT segment_ingest('app', '{"type":"track","event":"Signed Up","userId":"u1","messageId":"m-1",
  "timestamp":"2024-05-01T10:00:00Z","properties":{"plan":"pro"}}') AS stored_again;

-- an array of messages (Actions batching), with a duplicate inside the same array
SELECT segment_ingest('app', '[
  {"type":"identify","userId":"u1","messageId":"m-2","traits":{"email":"u1@example.com"},"timestamp":"2024-05-01T10:01:00Z"},
  {"type":"page","anonymousId":"a1","messageId":"m-3","name":"Home","timestamp":"2024-05-01T10:02:00Z"},
  {"type":"page","anonymousId":"a1","messageId":"m-3","name":"Home","timestamp":"2024-05-01T10:02:00Z"},
  {"type":"screen","userId":"u2","messageId":"m-4","name":"Cart"},
  {"type":"group","userId":"u1","messageId":"m-5","groupId":"g1","traits":{"name":"Acme"}},
  {"type":"alias","userId":"u1","previousId":"a1","messageId":"m-6"}
]') AS stored_from_array;

-- {"batch":[...]}: top-level context, integrations and sentAt apply to items lacking them
SELECT segment_ingest('app', '{"batch":[
    {"type":"track","event":"A","userId":"u3","messageId":"m-7","originalTimestamp":"2024-05-01T10:00:00Z"},
    {"type":"track","event":"B","userId":"u3","messageId":"m-8","context":{"ip":"198.51.100.1"},"sentAt":"2024-05-01T10:00:30Z"}
  ],
  "context":{"ip":"203.0.113.9","library":{"name":"analytics-node","version":"2.1.0"}},
  "integrations":{"All":false},
  "sentAt":"2024-05-01T10:00:20Z",
  "writeKey":"ignored-here"}') AS stored_from_envelope;
SELECT message_id, payload -> 'context' AS context, payload -> 'integrations' AS integrations,
       payload ->> 'sentAt' AS sent_at_in_payload, sent_at, payload ? 'writeKey' AS has_write_key
FROM segment_events WHERE message_id IN ('m-7', 'm-8') ORDER BY message_id;

-- the skew rule against the time we received it: timestamp = received_at - (sentAt - originalTimestamp)
SELECT message_id, "timestamp" = received_at - interval '20 seconds' AS skew_corrected
FROM segment_events WHERE message_id = 'm-7';
-- no time at all: received_at
SELECT "timestamp" = received_at AS defaults_to_received_at FROM segment_events WHERE message_id = 'm-4';
-- received_at is the time of the ingest: now(), the start of the calling transaction
BEGIN;
SELECT segment_ingest('app', '{"type":"track","event":"Now","userId":"u1","messageId":"now-1"}') AS stored;
SELECT received_at = now() AS received_now FROM segment_events WHERE message_id = 'now-1';
COMMIT;

-- the typed columns
SELECT message_id, type, event, name, category, user_id, anonymous_id, group_id, previous_id,
       CASE WHEN "timestamp" = received_at THEN 'received_at'
            WHEN "timestamp" = received_at - interval '20 seconds' THEN 'received_at - 20 s'
            ELSE "timestamp"::text END AS "timestamp",
       original_timestamp, sent_at
FROM segment_events ORDER BY id;
-- the payload is the message as received: every field kept, nothing renamed
SELECT payload FROM segment_events WHERE message_id = 'm-1';

-- a missing messageId is derived from the content, so an identical retry is a duplicate; sentAt may change
SELECT segment_ingest('app', '{"type":"track","event":"No Id","userId":"u9","sentAt":"2024-05-01T10:00:00Z"}') AS first_try;
SELECT segment_ingest('app', '{"type":"track","event":"No Id","userId":"u9","sentAt":"2024-05-01T10:05:00Z"}') AS retry;
SELECT segment_ingest('app', '{"type":"track","event":"No Id","userId":"u9","properties":{"n":2}}') AS different_message;
SELECT count(*) AS derived_ids, bool_and(message_id ~ '^sw-[0-9a-f]{32}$') AS derived_id_format
FROM segment_events WHERE user_id = 'u9';
-- key order and whitespace do not matter
SELECT segment_ingest('app', '{"userId":"u9",  "event":"No Id", "type":"track"}') AS reordered_retry;

-- the dead letter: each invalid message with its reason; its valid neighbours are stored
SELECT segment_ingest('app', '[
  {"type":"track","userId":"u1","messageId":"bad-1"},
  {"type":"track","event":"","userId":"u1","messageId":"bad-2"},
  {"type":"track","event":"Fine","messageId":"bad-3"},
  {"type":"launch","userId":"u1","messageId":"bad-4"},
  {"userId":"u1","messageId":"bad-5"},
  {"type":"alias","userId":"u1","messageId":"bad-6"},
  {"type":"group","userId":"u1","messageId":"bad-7"},
  {"type":"delete","userId":"u1"},
  {"type":"track","event":"E","userId":"u1","messageId":{"id":1}},
  "just a string",
  {"type":"track","event":"Good Neighbour","userId":"u1","messageId":"good-1"}
]') AS stored_among_invalid;
SELECT reason, detail, message_id, payload, convert_from(raw, 'UTF8') = payload::text AS raw_is_the_message
FROM segment_rejected ORDER BY id;
SELECT count(*) AS good_neighbour_stored FROM segment_events WHERE message_id = 'good-1';

-- a body that is not a message at all
SELECT segment_ingest('app', '"hello"') AS scalar_body;
SELECT segment_ingest('app', '{"batch": {"type":"track"}}') AS batch_not_an_array;
SELECT segment_ingest('app', '[]') AS empty_array;
SELECT segment_ingest('app', '{"batch": []}') AS empty_batch;
SELECT reason, detail, payload FROM segment_rejected WHERE reason IN ('not_an_object', 'invalid_batch') ORDER BY id;

-- a message Postgres itself refuses (here: a user trigger) is dead-lettered with the database's error;
-- its neighbours are stored
CREATE FUNCTION refuse_blocked_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id = 'blocked' THEN
        RAISE EXCEPTION 'user % is blocked', NEW.user_id USING DETAIL = 'blocked by policy';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_blocked BEFORE INSERT ON segment_events FOR EACH ROW EXECUTE FUNCTION refuse_blocked_users();
SELECT segment_ingest('app', '[
  {"type":"track","event":"E","userId":"ok-1","messageId":"t-1"},
  {"type":"track","event":"E","userId":"blocked","messageId":"t-2"},
  {"type":"track","event":"E","userId":"ok-2","messageId":"t-3"}
]') AS stored_around_refused;
SELECT message_id FROM segment_events WHERE message_id LIKE 't-%' ORDER BY 1;
SELECT reason, detail, message_id FROM segment_rejected WHERE reason = 'refused_by_database';
DROP TRIGGER refuse_blocked ON segment_events;
DROP FUNCTION refuse_blocked_users();

-- a failure of the database itself is an error for the whole call: nothing is stored, nothing dead-lettered
CREATE FUNCTION fail_like_a_full_disk() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pretend the disk is full' USING ERRCODE = 'disk_full';
END $$;
CREATE TRIGGER full_disk BEFORE INSERT ON segment_events FOR EACH ROW EXECUTE FUNCTION fail_like_a_full_disk();
SELECT count(*) AS events_before, (SELECT count(*) FROM segment_rejected) AS rejected_before FROM segment_events;
\set VERBOSITY terse
SELECT segment_ingest('app', '[{"type":"track","event":"E","userId":"x","messageId":"df-1"},{"type":"bogus","userId":"x"}]');
\set VERBOSITY default
SELECT count(*) AS events_after, (SELECT count(*) FROM segment_rejected) AS rejected_after FROM segment_events;
DROP TRIGGER full_disk ON segment_events;
DROP FUNCTION fail_like_a_full_disk();

-- sources: unknown and disabled ones are errors
\set VERBOSITY sqlstate
SELECT segment_ingest('nobody', '{"type":"track","event":"E","userId":"x"}');
UPDATE segment_sources SET enabled = false WHERE name = 'app';
SELECT segment_ingest('app', '{"type":"track","event":"E","userId":"x"}');
\set VERBOSITY default
SELECT segment_ingest('app', '{"type":"track","event":"E","userId":"x"}');
UPDATE segment_sources SET enabled = true WHERE name = 'app';
SELECT segment_ingest(NULL, '{}') IS NULL AS strict_null;

-- dedup is per source: the same messageId from another source is another event
SELECT segment_create_source('other') IS NOT NULL AS created;
SELECT segment_ingest('other', '{"type":"track","event":"Signed Up","userId":"u1","messageId":"m-1"}') AS other_source;

-- the same outcome through INSERT ... ON CONFLICT, the path taken when segment_events has triggers
SET segment_webhook.direct_insert = off;
SELECT segment_ingest('app', '[{"type":"track","event":"S","userId":"spi","messageId":"spi-1"},
  {"type":"track","event":"S","userId":"spi","messageId":"spi-1"},
  {"type":"track","event":"S","userId":"spi","messageId":"m-1"},
  {"type":"track","event":"S","userId":"spi","messageId":"spi-2"}]') AS stored_through_insert;
RESET segment_webhook.direct_insert;
SELECT message_id FROM segment_events WHERE user_id = 'spi' ORDER BY 1;

-- many messages in one call
SELECT segment_ingest('app', jsonb_agg(jsonb_build_object('type', 'track', 'event', 'Bulk', 'userId', 'bulk',
                                                          'messageId', 'bulk-' || i)))
FROM generate_series(1, 2500) i;
SELECT count(*) AS bulk_stored FROM segment_events WHERE event = 'Bulk';
