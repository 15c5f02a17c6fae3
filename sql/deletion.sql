-- Forgetting a user (GDPR): segment_forget_user() deletes the user's events in a source, those of the ids
-- linked to it by identify and alias calls (transitively), and its dead letters; the warehouse relations
-- (views) lose their rows; segment_deletions records the request; with suppress, new messages of these ids are
-- dead-lettered as suppressed. Segment's deletion notifications do the same for a source with honor_deletions.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS segment_webhook;
RESET client_min_messages;
SELECT segment_create_source('Forget Web') IS NOT NULL AS created;
SELECT segment_create_source('Forget Other') IS NOT NULL AS created;

-- du1 browsed as da1, identified (linking da1), was aliased from da2 and from its old userId du0, which had
-- identified with da4. du2 shares the device id da1; da3 is nobody's; du1 in another source is another matter.
SELECT segment_ingest('Forget Web', '[
  {"type":"track","event":"Viewed","anonymousId":"da1","messageId":"df-01"},
  {"type":"identify","userId":"du1","anonymousId":"da1","traits":{"email":"du1@example.com"},"messageId":"df-02"},
  {"type":"track","event":"Bought","userId":"du1","properties":{"total":10},"messageId":"df-03"},
  {"type":"page","name":"Home","anonymousId":"da2","messageId":"df-04"},
  {"type":"alias","previousId":"da2","userId":"du1","messageId":"df-05"},
  {"type":"identify","userId":"du0","anonymousId":"da4","traits":{"name":"Old"},"messageId":"df-06"},
  {"type":"alias","previousId":"du0","userId":"du1","messageId":"df-07"},
  {"type":"screen","name":"Start","anonymousId":"da4","messageId":"df-08"},
  {"type":"track","event":"Viewed","userId":"du2","anonymousId":"da1","messageId":"df-09"},
  {"type":"identify","userId":"du2","traits":{"email":"du2@example.com"},"messageId":"df-10"},
  {"type":"track","event":"Viewed","anonymousId":"da3","messageId":"df-11"},
  {"type":"track","userId":"du1","messageId":"df-12"},
  {"type":"delete","userId":"du1"},
  {"type":"track","userId":"du2","messageId":"df-13"}
]') AS stored;
SELECT segment_ingest('Forget Other', '{"type":"track","event":"Viewed","userId":"du1","messageId":"df-20"}') AS stored;
-- Dead letters kept only as raw bytes: a \u0000 (for da4), bytes that are not UTF-8 (for du0), not JSON at all.
INSERT INTO segment_rejected (source_id, reason, raw)
SELECT s.id, r.reason, r.raw FROM segment_sources s, (VALUES
    ('nul_character', convert_to('{"type":"track","event":"A\u0000","anonymousId":"da4","messageId":"df-30"}', 'UTF8')),
    ('invalid_utf8', '\x7b2274797065223a22747261636b222c226576656e74223a22ff222c22757365724964223a22647530227d'::bytea),
    ('invalid_json', convert_to('{"userId":"du1", oops', 'UTF8')),
    ('nul_character', convert_to('{"type":"track","event":"A\u0000","anonymousId":"da3","messageId":"df-31"}', 'UTF8'))
) AS r(reason, raw) WHERE s.name = 'Forget Web';
-- A whole body kept as one dead letter, naming du2 and da2: it names du1's da2, so it goes.
INSERT INTO segment_rejected (source_id, reason, payload)
SELECT id, 'invalid_batch', '{"batch":[{"type":"track","userId":"du2"},{"type":"page","anonymousId":"da2"}]}'
FROM segment_sources WHERE name = 'Forget Web';
SELECT reason, coalesce(payload ->> 'userId', payload ->> 'anonymousId', convert_from(raw, 'LATIN1')) AS about
FROM segment_rejected r JOIN segment_sources s ON s.id = r.source_id WHERE s.name = 'Forget Web' ORDER BY r.id;

SELECT segment_warehouse_sync() >= 0 AS synced;
SELECT id, email, name FROM forget_web.users ORDER BY id;
SELECT id, user_id, total FROM forget_web.bought ORDER BY id;
SELECT id FROM segment_users WHERE id IN ('du0', 'du1', 'du2') ORDER BY id;

SELECT segment_forget_user('Forget Web', 'du1') AS removed;

SELECT s.name, d.user_id, d.anonymous_ids, d.events_deleted, d.rejected_deleted, d.suppress, d.requested_via,
       d.status, d.requested_by = current_user AS by_me, d.session_role = session_user AS session_is_me,
       d.completed_at IS NOT NULL AS completed, d.error
FROM segment_deletions d JOIN segment_sources s ON s.id = d.source_id ORDER BY d.id;
-- What is left: du2's events (one of them with the shared da1), da3's, and du1 in the other source.
SELECT s.name, e.message_id, e.type, e.user_id, e.anonymous_id
FROM segment_events e JOIN segment_sources s ON s.id = e.source_id
WHERE e.message_id LIKE 'df-%' ORDER BY e.message_id;
SELECT reason, coalesce(payload ->> 'userId', payload ->> 'anonymousId', convert_from(raw, 'LATIN1')) AS about
FROM segment_rejected r JOIN segment_sources s ON s.id = r.source_id WHERE s.name = 'Forget Web' ORDER BY r.id;
-- The warehouse relations are views over the events: the user's rows are gone from each.
SELECT id, email FROM forget_web.users ORDER BY id;
SELECT id, user_id, anonymous_id FROM forget_web.tracks ORDER BY id;
SELECT count(*) AS bought FROM forget_web.bought;
SELECT count(*) AS aliases FROM forget_web.aliases;
SELECT count(*) AS pages FROM forget_web.pages;
SELECT count(*) AS screens FROM forget_web.screens;
SELECT id, user_id FROM forget_web.identifies ORDER BY id;
-- (segment_users spans every source: du1 of the other source stays.)
SELECT id FROM segment_users WHERE id IN ('du0', 'du1', 'du2') ORDER BY id;
-- Forgetting again finds nothing, and says so.
SELECT segment_forget_user('Forget Web', 'du1') AS removed;
SELECT count(*) AS requests, sum(events_deleted) AS events FROM segment_deletions WHERE user_id = 'du1';

-- Errors
\set VERBOSITY terse
SELECT segment_forget_user('No Such Source', 'du1');
SELECT segment_forget_user('Forget Web', NULL);
SELECT segment_forget_user('Forget Web', '');
SELECT segment_forget_user(NULL, 'du1');
SELECT segment_forget_user('Forget Web', 'du1', NULL);
SELECT segment_unsuppress_user('No Such Source', 'du1');
SELECT segment_unsuppress_user('Forget Web', '');
\set VERBOSITY default
SELECT has_function_privilege('public', 'segment_forget_user(text, text, boolean)', 'EXECUTE') AS public_forgets,
       has_function_privilege('public', 'segment_unsuppress_user(text, text)', 'EXECUTE') AS public_unsuppresses,
       has_function_privilege('public', 'segment_run_deletions()', 'EXECUTE') AS public_runs,
       has_table_privilege('public', 'segment_deletions', 'SELECT') AS public_reads_deletions,
       has_table_privilege('public', 'segment_suppressions', 'SELECT') AS public_reads_suppressions;
SELECT has_table_privilege('segment_webhook_ingest', 'segment_suppressions', 'SELECT') AS ingest_reads_suppressions,
       has_column_privilege('segment_webhook_ingest', 'segment_deletions', 'user_id', 'INSERT') AS ingest_records,
       has_column_privilege('segment_webhook_ingest', 'segment_deletions', 'status', 'INSERT') AS ingest_sets_status,
       has_table_privilege('segment_webhook_ingest', 'segment_events', 'DELETE') AS ingest_deletes;

-- Suppression: du3 (seen as da5) is forgotten and suppressed; its new messages, and da5's, are dead-lettered.
SELECT segment_ingest('Forget Web', '[
  {"type":"identify","userId":"du3","anonymousId":"da5","messageId":"ds-01"},
  {"type":"track","event":"Viewed","userId":"du3","messageId":"ds-02"}]') AS stored;
SELECT segment_forget_user('Forget Web', 'du3', suppress => true) AS removed;
SELECT s.name, p.user_id, p.suppressed_id FROM segment_suppressions p JOIN segment_sources s ON s.id = p.source_id
ORDER BY p.suppressed_id;
SELECT suppress, anonymous_ids, events_deleted FROM segment_deletions WHERE user_id = 'du3';
SELECT segment_ingest('Forget Web', '[
  {"type":"track","event":"Viewed","userId":"du3","messageId":"ds-03"},
  {"type":"page","anonymousId":"da5","messageId":"ds-04"},
  {"type":"alias","previousId":"da5","userId":"du4","messageId":"ds-05"},
  {"type":"track","event":"Viewed","userId":"du4","messageId":"ds-06"}]') AS stored;
SELECT segment_ingest('Forget Other', '{"type":"track","event":"Viewed","userId":"du3","messageId":"ds-07"}') AS stored;
SELECT message_id, user_id FROM segment_events WHERE message_id LIKE 'ds-%' ORDER BY message_id;
SELECT message_id, reason, detail FROM segment_rejected WHERE message_id LIKE 'ds-%' ORDER BY message_id;
-- Lifted: du3 is stored again (its dead letters can be replayed).
SELECT segment_unsuppress_user('Forget Web', 'du3') AS lifted;
SELECT count(*) AS suppressed FROM segment_suppressions;
SELECT segment_replay(id) AS stored FROM segment_rejected WHERE message_id = 'ds-03';
SELECT message_id, user_id FROM segment_events WHERE message_id = 'ds-03';

-- Segment's deletion notifications: dead-lettered while the source does not honour them...
SELECT segment_ingest('Forget Web', '[{"type":"track","event":"Viewed","userId":"du5","messageId":"dn-01"},
  {"type":"delete","userId":"du5","timestamp":"2024-05-01T10:00:00Z"}]') AS stored;
SELECT reason, payload ->> 'userId' AS user_id FROM segment_rejected
WHERE reason = 'deletion_request' AND source_id = (SELECT id FROM segment_sources WHERE name = 'Forget Web') ORDER BY id;
SELECT count(*) AS requests FROM segment_deletions WHERE user_id = 'du5';
-- ... recorded as pending when it does, and carried out by segment_run_deletions(), which the warehouse worker
-- calls about once a second (here in the same transaction, so that what is printed does not depend on when it
-- ran).
UPDATE segment_sources SET honor_deletions = true WHERE name = 'Forget Web';
BEGIN;
SELECT segment_ingest('Forget Web', '[{"type":"delete","userId":"du5"}, {"type":"delete"},
  {"type":"track","event":"Viewed","userId":"du6","messageId":"dn-02"}]') AS stored;
SELECT reason, payload ->> 'userId' AS user_id FROM segment_rejected
WHERE reason = 'deletion_request' AND source_id = (SELECT id FROM segment_sources WHERE name = 'Forget Web') ORDER BY id;
SELECT requested_via, requested_by = current_user AS by_me, status, events_deleted
FROM segment_deletions WHERE user_id = 'du5';
SELECT segment_run_deletions() AS carried_out;
SELECT requested_via, status, events_deleted, rejected_deleted, suppress, completed_at IS NOT NULL AS completed
FROM segment_deletions WHERE user_id = 'du5';
SELECT message_id, user_id FROM segment_events WHERE message_id LIKE 'dn-%' ORDER BY message_id;
SELECT reason, payload ->> 'userId' AS user_id FROM segment_rejected
WHERE reason = 'deletion_request' AND source_id = (SELECT id FROM segment_sources WHERE name = 'Forget Web') ORDER BY id;
-- a request whose source is gone fails on its own, with its error
INSERT INTO segment_deletions (source_id, user_id) VALUES (-1, 'du7');
SELECT segment_run_deletions() AS carried_out;
SELECT status, error FROM segment_deletions WHERE user_id = 'du7';
COMMIT;
UPDATE segment_sources SET honor_deletions = false WHERE name = 'Forget Web';

-- pg_dump keeps the requests and the suppressions.
SELECT c.relname FROM pg_extension x, unnest(x.extconfig) AS t(oid) JOIN pg_class c ON c.oid = t.oid
WHERE x.extname = 'segment_webhook' AND c.relname IN ('segment_deletions', 'segment_deletions_id_seq', 'segment_suppressions')
ORDER BY 1;
