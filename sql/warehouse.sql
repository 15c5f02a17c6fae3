-- Warehouse relations: one schema per source, flattening, naming, type inference, widening, limits.
-- (segment_webhook.warehouse is off in the test instance: each step calls segment_warehouse_sync() itself.)
SELECT segment_create_source('Shop Web') IS NOT NULL AS created;
SELECT warehouse_schema FROM segment_sources WHERE name = 'Shop Web';
-- the base relations exist at once, with their standard columns
SELECT relation, string_agg(column_name, ', ') AS columns FROM segment_warehouse_schema('Shop Web') GROUP BY relation ORDER BY relation;

-- a track with nested context and properties
SELECT segment_ingest('Shop Web', $${"type":"track","messageId":"t-1","userId":"u-1","anonymousId":"a-1",
  "event":"Order Completed","timestamp":"2026-01-02T03:04:05.678Z","sentAt":"2026-01-02T03:04:06Z",
  "context":{"ip":"192.0.2.1","userAgent":"Mozilla/5.0","campaign":{"source":"newsletter","name":"spring"},
             "library":{"name":"analytics.js","version":"3.1.0"},"traits":{"email":"a@example.com"}},
  "properties":{"revenue":12.5,"quantity":3,"orderId":"o-1","coupon":null,"paid":true,
                "shippedAt":"2026-01-03T10:00:00+02:00","birthday":"1990-05-01",
                "products":[{"sku":"s-1","price":10}],"shipping":{"method":"ups","cost":{"amount":4}},
                "user_id":"discarded","id":"discarded","event":"discarded","context_ip":"discarded",
                "Product ID":"p-9","$%&":"no name"}}$$);
SELECT segment_warehouse_sync() AS examined;
SELECT column_name, column_type FROM segment_warehouse_schema('Shop Web') WHERE relation = 'order_completed';
SELECT id, sent_at, "timestamp", original_timestamp, user_id, anonymous_id, received_at = uuid_ts AS uuid_ts_is_received_at,
       event, event_text, context_ip, context_user_agent, context_campaign_source, context_campaign_name,
       context_library_name, context_library_version, context_traits_email, revenue, quantity, order_id, paid,
       shipped_at, birthday, products, shipping_method, shipping_cost_amount, product_id
FROM shop_web.order_completed;
SELECT id, event, event_text, context_campaign_source, context_user_agent FROM shop_web.tracks;
SELECT count(*) AS property_columns_in_tracks FROM segment_warehouse_schema('Shop Web')
WHERE relation = 'tracks' AND column_name IN ('revenue', 'quantity');

-- spellings with the same slug share a relation; a slug naming a standard relation gets none
SELECT segment_ingest('Shop Web', $$[{"type":"track","messageId":"t-2","userId":"u-1","event":"order_completed","properties":{"revenue":3}},
  {"type":"track","messageId":"t-3","userId":"u-1","event":"Pages","properties":{"x":1}}]$$);
SELECT segment_warehouse_sync() AS examined;
SELECT id, event_text, revenue FROM shop_web.order_completed ORDER BY id;
SELECT relation, kind, event_names FROM segment_warehouse_relations
WHERE kind = 'event' AND source_id = (SELECT id FROM segment_sources WHERE name = 'Shop Web') ORDER BY relation;
SELECT count(*) AS tracks FROM shop_web.tracks;

-- pages, screens, identifies, groups, aliases, users
SELECT segment_ingest('Shop Web', $$[
  {"type":"page","messageId":"p-1","anonymousId":"a-1","name":"Home","category":"Landing",
   "properties":{"url":"https://shop.example/?utm_source=ads","path":"/","title":"Shop","referrer":"https://ref.example/","search":"?utm_source=ads","depth":2},
   "context":{"campaign":{"source":"ads"}}},
  {"type":"screen","messageId":"s-1","userId":"u-1","name":"Cart","properties":{"items":2}},
  {"type":"identify","messageId":"i-1","userId":"u-1","receivedAt":"2026-01-01T00:00:00Z","traits":{"email":"old@example.com","plan":"free","address":{"city":"Lyon"}}},
  {"type":"identify","messageId":"i-2","userId":"u-1","traits":{"email":"new@example.com","age":41}},
  {"type":"group","messageId":"g-1","userId":"u-1","groupId":"acme","traits":{"name":"Acme","employees":50}},
  {"type":"alias","messageId":"al-1","userId":"u-1","previousId":"a-1"}]$$);
SELECT segment_warehouse_sync() AS examined;
SELECT id, name, category, url, path, title, referrer, search, depth, context_campaign_source FROM shop_web.pages;
SELECT id, name, items FROM shop_web.screens;
SELECT id, user_id, email, plan, address_city, age FROM shop_web.identifies ORDER BY id;
SELECT id, email, plan, address_city, age, received_at = uuid_ts AS uuid_ts_is_latest FROM shop_web.users;
SELECT id, group_id, name, employees FROM shop_web.groups;
SELECT id, previous_id FROM shop_web.aliases;

-- widening: bigint, then double precision, then text; the view is replaced when nothing depends on it, and keeps
-- its grants
CREATE ROLE warehouse_reader;
GRANT USAGE ON SCHEMA shop_web TO warehouse_reader;
SELECT segment_ingest('Shop Web', '{"type":"track","messageId":"w-1","userId":"u-1","event":"Item Viewed","properties":{"price":1}}');
SELECT segment_warehouse_sync() AS examined;
GRANT SELECT ON shop_web.item_viewed TO warehouse_reader;
SELECT pg_typeof(price), price FROM shop_web.item_viewed;
SELECT segment_ingest('Shop Web', '{"type":"track","messageId":"w-2","userId":"u-1","event":"Item Viewed","properties":{"price":1.5}}');
-- before the next pass the new row reads as NULL, never as an error
SELECT id, price FROM shop_web.item_viewed ORDER BY id;
SELECT segment_warehouse_sync() AS examined;
SELECT id, pg_typeof(price), price FROM shop_web.item_viewed ORDER BY id;
SELECT has_table_privilege('warehouse_reader', 'shop_web.item_viewed', 'SELECT') AS reader_kept_its_grant;
SELECT segment_ingest('Shop Web', '{"type":"track","messageId":"w-3","userId":"u-1","event":"Item Viewed","properties":{"price":"free"}}');
SELECT segment_warehouse_sync() AS examined;
SELECT id, pg_typeof(price), price FROM shop_web.item_viewed ORDER BY id;

-- a view that depends on a relation holds its column types: logged, kept in last_error, NULL for other values,
-- until segment_warehouse_rebuild() after the dependent view is gone
SELECT segment_ingest('Shop Web', '{"type":"track","messageId":"d-1","userId":"u-1","event":"Signed Up","properties":{"step":1}}');
SELECT segment_warehouse_sync() AS examined;
CREATE VIEW signed_up_steps AS SELECT id, step FROM shop_web.signed_up;
SELECT segment_ingest('Shop Web', '{"type":"track","messageId":"d-2","userId":"u-1","event":"Signed Up","properties":{"step":"two"}}');
SELECT segment_warehouse_sync() AS examined;
SELECT last_error FROM segment_warehouse_relations WHERE relation = 'signed_up';
SELECT * FROM signed_up_steps ORDER BY id;
SELECT pg_typeof(step) FROM shop_web.signed_up LIMIT 1;
SELECT segment_warehouse_sync() AS examined_again_without_a_second_warning;
DROP VIEW signed_up_steps;
SELECT segment_warehouse_rebuild('Shop Web') AS examined;
SELECT id, pg_typeof(step), step FROM shop_web.signed_up ORDER BY id;
SELECT last_error FROM segment_warehouse_relations WHERE relation = 'signed_up';

-- names: cut to 63 bytes like any Postgres identifier; several keys that flatten to one name share the column
SELECT segment_ingest('Shop Web', $$[{"type":"track","messageId":"n-1","userId":"u-1","event":"Named",
  "properties":{"aVeryLongPropertyNameThatGoesOnAndOnBeyondWhatPostgresKeepsInAnIdentifier":1,"colorName":"red"}},
  {"type":"track","messageId":"n-2","userId":"u-1","event":"Named","properties":{"color_name":"blue"}}]$$);
SELECT segment_warehouse_sync() AS examined;
SELECT column_name, length(column_name) FROM segment_warehouse_schema('Shop Web') WHERE relation = 'named' AND column_name LIKE 'a_very%';
SELECT id, color_name, a_very_long_property_name_that_goes_on_and_on_beyond_what_postgres_keeps_in_an_identifier AS long FROM shop_web.named ORDER BY id;

-- limits: columns per relation and event relations per source; what is over stays in the payload, logged once
SET segment_webhook.warehouse_max_columns = 16;
SELECT segment_ingest('Shop Web', '{"type":"track","messageId":"l-1","userId":"u-1","event":"Wide","properties":{"p01":1,"p02":1,"p03":1,"p04":1,"p05":1,"p06":1,"p07":1,"p08":1,"p09":1,"p10":1,"p11":1,"p12":1,"p13":1,"p14":1,"p15":1,"p16":1,"p17":1,"p18":1}}');
SELECT segment_warehouse_sync() AS examined;
SELECT count(*) AS discovered_columns FROM segment_warehouse_columns WHERE relation = 'wide';
SELECT segment_ingest('Shop Web', '{"type":"track","messageId":"l-2","userId":"u-1","event":"Wide","properties":{"p19":1}}');
SELECT segment_warehouse_sync() AS examined_without_a_second_warning;
RESET segment_webhook.warehouse_max_columns;
SET segment_webhook.warehouse_max_relations = 5;
SELECT segment_ingest('Shop Web', '{"type":"track","messageId":"l-3","userId":"u-1","event":"One Too Many"}');
SELECT segment_warehouse_sync() AS examined;
SELECT count(*) AS one_too_many_relations FROM segment_warehouse_relations WHERE relation = 'one_too_many';
SELECT count(*) AS still_in_tracks FROM shop_web.tracks WHERE event = 'one_too_many';
RESET segment_webhook.warehouse_max_relations;

-- schemas: taken names are refused, an explicit name is used, renaming moves the views
CREATE SCHEMA taken;
SELECT segment_create_source('Taken');
SELECT segment_create_source('Taken', NULL, 'taken_events') IS NOT NULL AS created;
SELECT count(*) AS base_views FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'taken_events';
SELECT segment_create_source('Another Shop', NULL, 'shop_web');
UPDATE segment_sources SET warehouse_schema = 'shop' WHERE name = 'Shop Web';
SELECT count(*) AS order_completed_rows FROM shop.order_completed;
SELECT segment_create_source('$$$');

-- a source with no warehouse schema gets no relations
UPDATE segment_sources SET warehouse_schema = NULL WHERE name = 'Taken';
SELECT segment_ingest('Taken', '{"type":"track","messageId":"x-1","userId":"u","event":"Hidden","properties":{"a":1}}');
SELECT segment_warehouse_sync() AS examined;
SELECT count(*) AS hidden_relations FROM segment_warehouse_relations WHERE relation = 'hidden';

-- a pass that rolls back leaves nothing behind: the next one finds the same columns (shapes a session skips are
-- only those of its committed passes)
SELECT segment_ingest('Shop Web', '{"type":"track","messageId":"r-1","userId":"u-1","event":"Rolled Back","properties":{"kept":true}}');
BEGIN;
SELECT segment_warehouse_sync() AS examined;
SELECT count(*) AS columns_inside FROM segment_warehouse_columns WHERE relation = 'rolled_back';
ROLLBACK;
SELECT count(*) AS columns_after_rollback FROM segment_warehouse_columns WHERE relation = 'rolled_back';
SELECT segment_warehouse_sync() AS examined;
SELECT id, kept FROM shop.rolled_back;

-- the conversions never fail
SELECT segment_json_bigint('12'), segment_json_bigint('1.5'), segment_json_bigint('"12"'), segment_json_bigint('99999999999999999999'),
       segment_json_float8('1e400'), segment_json_boolean('"true"'), segment_json_timestamptz('"2026-01-02T03:04:05+01:00"'),
       segment_json_timestamptz('"2026-01-02"'), segment_json_timestamptz('{"a":1}');
SELECT segment_snake_case('Order Completed'), segment_snake_case('APIKeyCreated'), segment_snake_case('context.userAgent');
DROP OWNED BY warehouse_reader;
DROP ROLE warehouse_reader;
-- the ids a pass did not see, for a later look
SELECT segment_warehouse_missing(id, 0, 10) FROM unnest(ARRAY[1, 2, 5, 10, 11]::bigint[]) AS id;
SELECT segment_warehouse_missing(id, 0, 3) IS NULL AS no_row_no_answer FROM unnest(ARRAY[]::bigint[]) AS id;
