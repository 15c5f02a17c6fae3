-- segment_parse: a Segment message as a typed record.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- a complete track call
SELECT * FROM segment_parse('{
  "type": "track", "event": "Order Completed", "messageId": "ajs-next-1700000000000-abc",
  "userId": "user-1", "anonymousId": "anon-1",
  "timestamp": "2024-05-01T12:34:56.789Z", "originalTimestamp": "2024-05-01T12:34:50.000Z",
  "sentAt": "2024-05-01T12:34:51.000Z", "receivedAt": "2024-05-01T12:34:57.000Z",
  "properties": {"total": 30.5, "currency": "EUR"},
  "context": {"ip": "203.0.113.7", "library": {"name": "analytics.js", "version": "next-1.53.0"}},
  "integrations": {"All": true}
}');

-- every call type keeps its own fields
SELECT type, name, category, properties FROM segment_parse('{"type":"page","name":"Pricing","category":"Docs","anonymousId":"a","properties":{"path":"/pricing"}}');
SELECT type, name, properties FROM segment_parse('{"type":"screen","name":"Home","userId":"u"}');
SELECT type, traits FROM segment_parse('{"type":"identify","userId":"u","traits":{"email":"a@example.com","plan":"pro"}}');
SELECT type, group_id, traits FROM segment_parse('{"type":"group","userId":"u","groupId":"g-1","traits":{"name":"Acme"}}');
SELECT type, previous_id, user_id FROM segment_parse('{"type":"alias","previousId":"anon-9","userId":"u"}');

-- type is reported in lower case when it is one of the six, as sent otherwise; absent stays NULL
SELECT (segment_parse('{"type":"Track"}')).type AS mixed_case,
       (segment_parse('{"type":"delete"}')).type AS other,
       (segment_parse('{"event":"x"}')).type IS NULL AS absent;

-- numeric ids become text, digits kept; empty ids and non-scalar ids are NULL
SELECT user_id, anonymous_id, group_id, message_id
FROM segment_parse('{"userId": 12345, "anonymousId": 9007199254740993, "groupId": 1.5, "messageId": 42}');
SELECT user_id IS NULL AS empty_user, anonymous_id IS NULL AS object_anonymous, group_id IS NULL AS bool_group
FROM segment_parse('{"userId": "", "anonymousId": {"a": 1}, "groupId": true}');

-- timestamps: Z, offsets with and without a colon, fractions from none to microseconds (more are truncated)
SELECT (segment_parse('{"timestamp":"2024-05-01T12:00:00Z"}')).timestamp AS zulu,
       (segment_parse('{"timestamp":"2024-05-01T14:00:00+02:00"}')).timestamp AS plus_two,
       (segment_parse('{"timestamp":"2024-05-01T07:30:00-0430"}')).timestamp AS minus_four_thirty,
       (segment_parse('{"timestamp":"2024-05-01T12:00:00.123456Z"}')).timestamp AS micros,
       (segment_parse('{"timestamp":"2024-05-01T12:00:00.1234567Z"}')).timestamp AS nanos_truncated,
       (segment_parse('{"timestamp":"2024-05-01T12:00:00.5"}')).timestamp AS no_zone_is_utc;

-- garbage is NULL, never an error
SELECT (segment_parse('{"timestamp":"yesterday"}')).timestamp IS NULL AS words,
       (segment_parse('{"timestamp":"2024-13-01T00:00:00Z"}')).timestamp IS NULL AS month_13,
       (segment_parse('{"timestamp":"2023-02-29T00:00:00Z"}')).timestamp IS NULL AS not_a_leap_year,
       (segment_parse('{"timestamp":"2024-02-29T00:00:00Z"}')).timestamp IS NOT NULL AS leap_year,
       (segment_parse('{"timestamp":"2024-05-01T25:00:00Z"}')).timestamp IS NULL AS hour_25,
       (segment_parse('{"timestamp":"2024-05-01T12:00:00+25:00"}')).timestamp IS NULL AS offset_25,
       (segment_parse('{"timestamp":"2024-05-01T12:00:00Zjunk"}')).timestamp IS NULL AS trailing_junk,
       (segment_parse('{"timestamp":1714564800000}')).timestamp IS NULL AS epoch_number,
       (segment_parse('{"timestamp":""}')).timestamp IS NULL AS empty;

-- the skew rule: timestamp = receivedAt - (sentAt - originalTimestamp) when timestamp is absent
SELECT "timestamp", original_timestamp, sent_at, received_at FROM segment_parse('{
  "originalTimestamp": "2024-05-01T12:00:00.000Z", "sentAt": "2024-05-01T12:00:10.000Z",
  "receivedAt": "2024-05-01T11:00:15.000Z"}');
-- ... with offsets on each side
SELECT "timestamp" FROM segment_parse('{
  "originalTimestamp": "2024-05-01T14:00:00+02:00", "sentAt": "2024-05-01T12:00:05Z",
  "receivedAt": "2024-05-01T08:00:06-04:00"}');
-- the message's own timestamp wins over the rule
SELECT "timestamp" FROM segment_parse('{"timestamp": "2020-01-01T00:00:00Z",
  "originalTimestamp": "2024-05-01T12:00:00Z", "sentAt": "2024-05-01T12:00:10Z", "receivedAt": "2024-05-01T12:00:11Z"}');
-- an unparseable own timestamp falls through to the rule
SELECT "timestamp" FROM segment_parse('{"timestamp": "soon",
  "originalTimestamp": "2024-05-01T12:00:00Z", "sentAt": "2024-05-01T12:00:10Z", "receivedAt": "2024-05-01T12:00:11Z"}');
-- without sentAt or receivedAt: originalTimestamp
SELECT "timestamp" FROM segment_parse('{"originalTimestamp": "2024-05-01T12:00:00Z", "sentAt": "2024-05-01T12:00:10Z"}');
-- nothing at all: NULL
SELECT "timestamp" IS NULL AS no_time FROM segment_parse('{"type":"track"}');

-- jsonb members are returned as they are, whatever their JSON type; absent ones are NULL
SELECT context, properties, traits, integrations FROM segment_parse('{"context": [], "properties": "x", "traits": null}');

-- usable in a view over raw jsonb from elsewhere
CREATE TABLE raw_events (body jsonb);
INSERT INTO raw_events VALUES ('{"type":"track","event":"A","userId":"1"}'), ('{"type":"page","name":"B","anonymousId":"2"}');
CREATE VIEW parsed_events AS SELECT (segment_parse(body)).* FROM raw_events;
SELECT type, event, name, user_id, anonymous_id FROM parsed_events ORDER BY type;
DROP VIEW parsed_events;
DROP TABLE raw_events;

-- a non-object is an error with SQLSTATE 22023
\set VERBOSITY sqlstate
SELECT segment_parse('[1, 2]');
SELECT segment_parse('"track"');
\set VERBOSITY default
SELECT segment_parse('42');
SELECT segment_parse(NULL) IS NULL AS strict_null;
