-- Warehouse-style views over segment_events.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SELECT segment_create_source('views') IS NOT NULL AS created;
SELECT segment_ingest('views', '[
  {"type":"identify","userId":"v-user","anonymousId":"v-anon-1","messageId":"v-1","timestamp":"2024-01-01T00:00:00Z",
   "traits":{"email":"old@example.com","plan":"free","age":30}},
  {"type":"identify","userId":"v-user","anonymousId":"v-anon-2","messageId":"v-2","timestamp":"2024-02-01T00:00:00Z",
   "traits":{"email":"new@example.com","company":"Acme"}},
  {"type":"track","userId":"v-user","messageId":"v-3","event":"Order Completed","timestamp":"2024-03-01T00:00:00Z",
   "properties":{"total":12.5},
   "context":{"ip":"203.0.113.5","library":{"name":"analytics.js","version":"2.11.1"},
              "page":{"path":"/checkout","referrer":"https://example.com/cart","search":"?q=1","title":"Checkout",
                      "url":"https://example.com/checkout?q=1"},
              "userAgent":"Mozilla/5.0","locale":"en-US","timezone":"Europe/Berlin"},
   "integrations":{"All":true}},
  {"type":"track","userId":"v-user","messageId":"v-3b","event":"checkoutStarted","timestamp":"2024-03-02T00:00:00Z"},
  {"type":"page","anonymousId":"v-anon-3","messageId":"v-4","name":"Pricing","category":"Marketing","timestamp":"2024-03-03T00:00:00Z",
   "properties":{"path":"/pricing","referrer":"","search":"","title":"Pricing","url":"https://example.com/pricing"}},
  {"type":"screen","userId":"v-mobile","messageId":"v-5","name":"Home","timestamp":"2024-03-04T00:00:00+01:00","properties":{"from":"push"},
   "context":{"library":{"name":"analytics-ios","version":"4.1.0"},"os":{"name":"iOS"}}},
  {"type":"group","userId":"v-user","messageId":"v-6","groupId":"acme","timestamp":"2024-03-05T00:00:00Z","traits":{"employees":50}},
  {"type":"alias","userId":"v-user","previousId":"v-anon-3","messageId":"v-7","timestamp":"2024-04-01T00:00:00Z"}
]') AS stored;

CREATE TEMP VIEW v_source AS SELECT id FROM segment_sources WHERE name = 'views';

SELECT id, event, event_text, properties, context_ip, context_library_name, context_library_version,
       context_page_path, context_page_referrer, context_page_search, context_page_title, context_page_url,
       context_user_agent, context_locale, context_timezone, integrations, "timestamp"
FROM segment_tracks WHERE source_id = (SELECT id FROM v_source) ORDER BY segment_event_id;
SELECT id, user_id, anonymous_id, traits FROM segment_identifies
WHERE source_id = (SELECT id FROM v_source) ORDER BY segment_event_id;
SELECT id, anonymous_id, name, category, path, referrer, search, title, url FROM segment_pages
WHERE source_id = (SELECT id FROM v_source);
SELECT id, user_id, name, properties, context_library_name, context -> 'os' AS os FROM segment_screens
WHERE source_id = (SELECT id FROM v_source);
SELECT id, user_id, group_id, traits FROM segment_groups WHERE source_id = (SELECT id FROM v_source);
SELECT id, user_id, previous_id FROM segment_aliases WHERE source_id = (SELECT id FROM v_source);
SELECT type, count(*) FROM segment_messages WHERE source_id = (SELECT id FROM v_source) GROUP BY type ORDER BY type;

-- users: traits merged across identifies (the later one wins per key), first and last seen, latest anonymous_id
SELECT id, traits, anonymous_id, first_seen, last_seen FROM segment_users WHERE id LIKE 'v-%' ORDER BY id;

-- a later identify with an earlier timestamp does not override newer traits
SELECT segment_ingest('views', '{"type":"identify","userId":"v-user","messageId":"v-8",
  "timestamp":"2023-06-01T00:00:00Z","traits":{"email":"ancient@example.com","nickname":"vu"}}') AS stored;
SELECT traits FROM segment_users WHERE id = 'v-user';

-- event slugs follow Segment's warehouse naming
SELECT segment_event_slug(e) FROM (VALUES ('Order Completed'), ('checkoutStarted'), ('  Sign-up / Step 2 '),
                                          ('already_snake'), ('APIKeyCreated')) v(e);
