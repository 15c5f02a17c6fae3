# The HTTP worker stores what Segment sends: a Classic webhook event, an Actions batch (signed on its first
# element or on the whole body), an SDK {"batch":[…]} envelope, with dedup on messageId, dead letters for what
# cannot be stored, and the answer only after the rows are committed.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('webhook_basic');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $classic_key = sql(q{SELECT segment_create_source('classic', 'classic-secret')});
my $actions_key = sql(q{SELECT segment_create_source('actions', 'actions-secret')});
my $sdk_key = sql(q{SELECT segment_create_source('sdk')});
my %source_id = map { $_ => sql("SELECT id FROM segment_sources WHERE name = '$_'") } qw(classic actions sdk);

# Sources created after the worker started become usable within about a second.
ok( wait_until(10, sub {
            my $r = post_webhook($port, encode_json_compact(track_message('warm-up')), key => $sdk_key, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'a new source is accepted without a restart');

sub counts_are
{
    my ($response, $accepted, $duplicates, $rejected, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($response && $response->{status}, 200, "$name: status 200")
      or diag(explain($response));
    is_deeply(
        decode_json_body($response),
        { success => JSON::PP::true, accepted => $accepted, duplicates => $duplicates, rejected => $rejected },
        "$name: accepted $accepted, duplicates $duplicates, rejected $rejected");
}

# --- /health -----------------------------------------------------------------------------------------------
my $health = http_request($port, 'GET', '/health');
is($health && $health->{status}, 200, 'GET /health answers 200');
is_deeply(decode_json_body($health), { status => 'ok' }, 'GET /health says ok');

# --- Classic webhook: one event, signed over the raw body --------------------------------------------------------
my $classic_body = encode_json_compact(
    track_message(
        'classic-1',
        event => 'Order Completed',
        userId => 'user-42',
        properties => { total => 30.5, currency => 'EUR' },
        context => { ip => '203.0.113.7', library => { name => 'analytics.js', version => '4.1.0' } }));
my $response = post_webhook($port, $classic_body,
    key => $classic_key,
    secret => 'classic-secret',
    headers => [ [ 'User-Agent', 'Segment.io/1.0' ] ]);
counts_are($response, 1, 0, 0, 'Classic signed event');
like($response->{headers}{'content-type'} // '', qr{^application/json}i, 'the answer is JSON');
# The answer comes after COMMIT: the row is visible to another session as soon as the answer is read.
is( sql(qq{SELECT type, event, user_id, source_id, payload = '$classic_body'::jsonb
    FROM segment_events WHERE message_id = 'classic-1'}),
    "track|Order Completed|user-42|$source_id{classic}|t",
    'the Classic event is stored with its typed fields and its payload as sent');

# A signature is over the bytes as sent, whitespace included; charset parameters are fine.
my $pretty_body = qq({\n  "type": "identify",\n  "userId": "user-42",\n  "messageId": "classic-2",\n)
  . qq(  "traits": { "email": "u42\@example.com", "name": "Zoë" }\n}\n);
$response = post_webhook($port, $pretty_body,
    key => $classic_key,
    secret => 'classic-secret',
    content_type => 'application/json; charset=utf-8',
    headers => [ [ 'User-Agent', 'Segment.io/1.0' ] ]);
counts_are($response, 1, 0, 0, 'pretty-printed signed identify');
is(sql(q{SELECT payload -> 'traits' ->> 'name' FROM segment_events WHERE message_id = 'classic-2'}),
    'Zoë', 'UTF-8 text survives');

# --- Actions: a JSON array, signed on its first element as Segment does today, or on the whole body ----------
my @actions_batch = (
    track_message('actions-1', event => 'Product Viewed'),
    { type => 'page', anonymousId => 'anon-1', messageId => 'actions-2', name => 'Home' },
    { type => 'identify', userId => 'user-1', messageId => 'actions-3', traits => { plan => 'pro' } });
my $actions_body = '[' . join(',', map { encode_json_compact($_) } @actions_batch) . ']';
my $first_element_signature = sign_body('actions-secret', encode_json_compact($actions_batch[0]));
$response = post_webhook($port, $actions_body,
    key => $actions_key,
    key_in => 'bearer',
    signature => $first_element_signature,
    headers => [ [ 'User-Agent', 'Segment (Actions)' ] ]);
counts_are($response, 3, 0, 0, 'Actions batch signed on its first element');
is(sql(q{SELECT string_agg(message_id || ':' || type, ',' ORDER BY message_id) FROM segment_events
    WHERE message_id LIKE 'actions-%'}),
    'actions-1:track,actions-2:page,actions-3:identify', 'every message of the Actions batch is stored');

my @actions_batch_2 = (track_message('actions-4'), track_message('actions-5', anonymousId => 'anon-5'));
my $actions_body_2 = encode_json_compact(\@actions_batch_2);
$response = post_webhook($port, $actions_body_2,
    key => $actions_key,
    key_in => 'bearer',
    secret => 'actions-secret',
    headers => [ [ 'User-Agent', 'Segment (Actions)' ] ]);
counts_are($response, 2, 0, 0, 'Actions batch signed on the whole body');

# --- Retries are deduplicated on messageId --------------------------------------------------------------------
my $events_before = sql('SELECT count(*) FROM segment_events');
$response = post_webhook($port, $actions_body,
    key => $actions_key,
    key_in => 'bearer',
    signature => $first_element_signature,
    headers => [ [ 'User-Agent', 'Segment (Actions)' ] ]);
counts_are($response, 0, 3, 0, 'the same batch retried');
is(sql('SELECT count(*) FROM segment_events'), $events_before, 'a retry stores nothing new');

# A retried batch may be regrouped: old and new messages together.
my $regrouped = encode_json_compact([ $actions_batch_2[1], track_message('actions-6'), $actions_batch[0] ]);
counts_are(post_webhook($port, $regrouped, key => $actions_key, key_in => 'bearer', secret => 'actions-secret'),
    1, 2, 0, 'a regrouped retry');

# The same messageId twice in one request is stored once.
counts_are(
    post_webhook($port, encode_json_compact([ track_message('twice-1'), track_message('twice-1') ]),
        key => $sdk_key),
    1, 1, 0,
    'a messageId repeated within one request');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'twice-1'}), '1', 'stored once');

# A message without messageId gets one derived from its content, so an identical retry is a duplicate.
my $no_id = encode_json_compact({ type => 'track', event => 'No Id', userId => 'user-9' });
counts_are(post_webhook($port, $no_id, key => $sdk_key), 1, 0, 0, 'a message without messageId');
counts_are(post_webhook($port, $no_id, key => $sdk_key), 0, 1, 0, 'the same message without messageId again');

# --- Every message type --------------------------------------------------------------------------------------
my $all_types = encode_json_compact(
    [
        { type => 'identify', userId => 'u-t', messageId => 'type-identify', traits => { a => 1 } },
        { type => 'track', userId => 'u-t', messageId => 'type-track', event => 'Clicked' },
        { type => 'page', userId => 'u-t', messageId => 'type-page', name => 'Pricing', category => 'Docs' },
        { type => 'screen', userId => 'u-t', messageId => 'type-screen', name => 'Cart' },
        { type => 'group', userId => 'u-t', messageId => 'type-group', groupId => 'g-1' },
        { type => 'alias', userId => 'u-t', messageId => 'type-alias', previousId => 'anon-t' },
    ]);
counts_are(post_webhook($port, $all_types, key => $sdk_key), 6, 0, 0, 'one message of each type');
is( sql(q{SELECT string_agg(concat_ws('/', type, event, name, category, group_id, previous_id), ',' ORDER BY id)
    FROM segment_events WHERE message_id LIKE 'type-%'}),
    'identify,track/Clicked,page/Pricing/Docs,screen/Cart,group/g-1,alias/anon-t',
    'each type is stored with its own fields');

# --- {"batch":[…]} envelope (analytics-node: Basic auth): top-level context/integrations/sentAt fill in -------
my $envelope = encode_json_compact(
    {
        batch => [
            track_message('envelope-1', event => 'A'),
            track_message('envelope-2', event => 'B', context => { ip => '198.51.100.1' },
                sentAt => '2024-05-01T10:00:30.000Z'),
        ],
        context => { ip => '203.0.113.9', library => { name => 'analytics-node', version => '2.1.0' } },
        integrations => { All => JSON::PP::false },
        sentAt => '2024-05-01T10:00:20.000Z',
    });
counts_are(post_webhook($port, $envelope, key => $sdk_key, key_in => 'basic', path => '/v1/webhook'),
    2, 0, 0, '{"batch":[…]} envelope');
is( sql(q{SELECT string_agg(concat_ws('|', message_id, payload -> 'context' ->> 'ip',
        payload -> 'integrations' ->> 'All', sent_at AT TIME ZONE 'UTC'), ',' ORDER BY message_id)
    FROM segment_events WHERE message_id LIKE 'envelope-%'}),
    'envelope-1|203.0.113.9|false|2024-05-01 10:00:20,envelope-2|198.51.100.1|false|2024-05-01 10:00:30',
    'top-level context, integrations and sentAt apply to the items lacking them');

# --- Browser (analytics.js): text/plain, write key in the body; or no Content-Type at all --------------------
counts_are(
    post_webhook($port, encode_json_compact(track_message('browser-1', writeKey => $sdk_key)),
        key_in => 'none', content_type => 'text/plain'),
    1, 0, 0,
    'text/plain body with the write key inside');
is(sql(q{SELECT payload ? 'writeKey' FROM segment_events WHERE message_id = 'browser-1'}),
    'f', 'the write key is not stored in the payload');
counts_are(post_webhook($port, encode_json_compact(track_message('no-type-1')), key => $sdk_key, content_type => undef),
    1, 0, 0, 'a body without Content-Type');

# --- Invalid JSON from an authenticated sender: 400 and a dead letter with the raw bytes ------------------------
my $rejected_before = sql('SELECT count(*) FROM segment_rejected');
$events_before = sql('SELECT count(*) FROM segment_events');
my $broken = qq({"type":"track","event":"Broken","userId":"u-b","messageId":"broken-1",\xff\x00 "properties":{);
$response = post_webhook($port, $broken, key => $sdk_key);
is($response && $response->{status}, 400, 'invalid JSON: 400');
is(error_code($response), 'invalid_json', 'invalid JSON: code invalid_json');
is((decode_json_body($response) // {})->{success}, JSON::PP::false, 'invalid JSON: success is false');
is( sql(qq{SELECT reason, source_id, encode(raw, 'hex') = '} . unpack('H*', $broken) . qq{'
    FROM segment_rejected ORDER BY id DESC LIMIT 1}),
    "invalid_json|$source_id{sdk}|t",
    'the invalid body is dead-lettered with its exact bytes');
is(sql('SELECT count(*) FROM segment_rejected'), $rejected_before + 1, 'one dead letter for the body');
is(sql('SELECT count(*) FROM segment_events'), $events_before, 'no event from an invalid body');

# The same for a signed source: a correctly signed but invalid body is dead-lettered too.
my $broken_signed = '[{"type":"track","event":"X","userId":"u"},';
$response = post_webhook($port, $broken_signed, key => $classic_key, secret => 'classic-secret');
is($response && $response->{status}, 400, 'signed invalid JSON: 400');
is(error_code($response), 'invalid_json', 'signed invalid JSON: code invalid_json');
is( sql(qq{SELECT reason, source_id, convert_from(raw, 'UTF8') FROM segment_rejected ORDER BY id DESC LIMIT 1}),
    "invalid_json|$source_id{classic}|$broken_signed",
    'the signed invalid body is dead-lettered');

# --- Invalid messages inside a valid batch: dead-lettered one by one, neighbours stored ----------------------
my $mixed = encode_json_compact(
    [
        track_message('mixed-1'),
        { type => 'track', userId => 'u-m', messageId => 'mixed-2' },
        track_message('mixed-3'),
        { type => 'track', event => 'No one', messageId => 'mixed-4' },
        { type => 'launch', userId => 'u-m', messageId => 'mixed-5' },
        { type => 'delete', userId => 'u-m', timestamp => '2024-05-01T10:00:00Z' },
    ]);
counts_are(post_webhook($port, $mixed, key => $sdk_key), 2, 0, 4, 'a batch with invalid messages');
is(sql(q{SELECT string_agg(message_id, ',' ORDER BY message_id) FROM segment_events WHERE message_id LIKE 'mixed-%'}),
    'mixed-1,mixed-3', 'the valid neighbours are stored');
is( sql(q{SELECT string_agg(coalesce(message_id, '-') || ':' || reason, ',' ORDER BY id) FROM segment_rejected
    WHERE message_id LIKE 'mixed-%' OR reason = 'deletion_request'}),
    'mixed-2:missing_event,mixed-4:missing_identity,mixed-5:unknown_type,-:deletion_request',
    'each invalid message is dead-lettered with its reason');

# A Classic deletion notification alone (no messageId) is kept for the deletion process, answered 200.
counts_are(
    post_webhook($port, '{"type":"delete","userId":"user-42","timestamp":"2024-05-01T10:00:00.000Z"}',
        key => $classic_key,
        secret => 'classic-secret',
        headers => [ [ 'User-Agent', 'Segment.io/1.0' ] ]),
    0, 0, 1,
    'a Classic deletion notification');

# --- Nothing was left half-done ---------------------------------------------------------------------------------
is(sql(q{SELECT count(*) FROM segment_events WHERE source_id NOT IN (SELECT id FROM segment_sources)}), '0',
    'every event belongs to a source');

$node->stop;
done_testing();
