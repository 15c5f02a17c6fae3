# A retry carries the same messageId and the same content; the same messageId with other content is not a
# duplicate: it is dead-lettered with reason message_id_conflict (its new bytes kept) and counted as rejected,
# on every write path, in one batch or across batches. What legitimately changes between two sends of a message
# (sentAt, receivedAt, writeKey, context.ip) does not make a conflict.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('conflicting_retries');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $key = sql(q{SELECT segment_create_source('retries')});
my $other_key = sql(q{SELECT segment_create_source('other')});
ok( wait_until(10, sub {
            my $r = post_webhook($port, encode_json_compact(track_message('warm-up')), key => $key, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'the source is accepted');

sub answer_is
{
    my ($response, $accepted, $duplicates, $rejected, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($response && $response->{status}, 200, "$name: status 200") or diag(explain($response));
    is_deeply(
        decode_json_body($response),
        { success => JSON::PP::true, accepted => $accepted, duplicates => $duplicates, rejected => $rejected },
        "$name: accepted $accepted, duplicates $duplicates, rejected $rejected");
}

sub conflicts
{
    my ($message_id) = @_;
    return sql(qq{SELECT count(*) FROM segment_rejected WHERE reason = 'message_id_conflict'
                  AND message_id = '$message_id'});
}

for my $direct (qw(on off))
{
    sql("ALTER SYSTEM SET segment_webhook.direct_insert = $direct");
    sql('SELECT pg_reload_conf()');
    sleep 1;
    my $id = "order-$direct";
    my %first = (
        event => 'Order Completed',
        userId => 'user-1',
        sentAt => '2026-11-29T10:00:00.000Z',
        properties => { total => 30, currency => 'EUR' },
        context => { ip => '203.0.113.7' });
    answer_is(post_webhook($port, encode_json_compact(track_message($id, %first)), key => $key),
        1, 0, 0, "direct_insert $direct: the first send");

    # A retry: later sentAt and receivedAt, another context.ip, the writeKey in the body.
    my %retry = (%first, sentAt => '2026-11-29T10:05:00.000Z', receivedAt => '2026-11-29T10:05:01.000Z',
        writeKey => $key, context => { ip => '198.51.100.9' });
    answer_is(post_webhook($port, encode_json_compact(track_message($id, %retry)), key => $key),
        0, 1, 0, "direct_insert $direct: a retry with other sentAt, receivedAt, writeKey and context.ip is a duplicate");
    is(conflicts($id), '0', "direct_insert $direct: and no conflict");

    # Other content under the same messageId, alone and in a batch with new messages.
    my %changed = (%first, properties => { total => 3000, currency => 'EUR' });
    answer_is(post_webhook($port, encode_json_compact(track_message($id, %changed)), key => $key),
        0, 0, 1, "direct_insert $direct: other properties under the same messageId are rejected");
    is( sql(qq{SELECT reason, payload->'properties'->>'total', detail LIKE '%already stored%'
               FROM segment_rejected WHERE message_id = '$id'}),
        'message_id_conflict|3000|t',
        "direct_insert $direct: dead-lettered as message_id_conflict with the new content");
    is(sql(qq{SELECT payload->'properties'->>'total' FROM segment_events WHERE message_id = '$id'}),
        '30', "direct_insert $direct: the stored event is unchanged");
    my $batch = encode_json_compact([
            track_message("$id-new-1"),
            track_message($id, %changed, event => 'Order Refunded'),
            track_message($id, %retry),
            track_message("$id-new-2"),
            track_message("$id-twice", properties => { n => 1 }),
            track_message("$id-twice", properties => { n => 2 }) ]);
    answer_is(post_webhook($port, $batch, key => $key),
        3, 1, 2, "direct_insert $direct: a batch with new messages, a retry and two conflicts");
    is(conflicts($id), '2', "direct_insert $direct: the conflicting event of the batch is dead-lettered");
    is(conflicts("$id-twice"), '1',
        "direct_insert $direct: one messageId twice in one batch with other content: the second is dead-lettered");
    is(sql(qq{SELECT payload->'properties'->>'n' FROM segment_events WHERE message_id = '$id-twice'}), '1',
        "direct_insert $direct: and the first is stored");

    # The same messageId in another source is another message.
    answer_is(post_webhook($port, encode_json_compact(track_message($id, %changed)), key => $other_key),
        1, 0, 0, "direct_insert $direct: the same messageId in another source is stored");
}

# The tracking API fills context.ip from the connection: a retry from another address is still a duplicate.
my $tracked = encode_json_compact({
        type => 'track', event => 'Signed Up', userId => 'user-2', messageId => 'tracked-1',
        timestamp => '2026-11-29T10:00:00.000Z' });
answer_is(post_webhook($port, $tracked, key => $key, key_in => 'basic', path => '/v1/track'), 1, 0, 0,
    'tracking API: the first send');
answer_is(
    post_webhook($port, $tracked, key => $key, key_in => 'basic', path => '/v1/track',
        headers => [ [ 'X-Forwarded-For', '192.0.2.44' ] ]),
    0, 1, 0, 'tracking API: a retry is a duplicate');

# A message without context: the tracking API adds one holding only context.ip; the same message on the webhook
# endpoint, which adds none, is still a duplicate.
my $bare = encode_json_compact({ type => 'track', event => 'Bare', userId => 'user-3', messageId => 'bare-1' });
answer_is(post_webhook($port, $bare, key => $key, key_in => 'basic', path => '/v1/track'), 1, 0, 0,
    'tracking API: a message without context');
is(sql(q{SELECT payload->'context' ? 'ip' FROM segment_events WHERE message_id = 'bare-1'}), 't',
    'tracking API: stored with context.ip');
answer_is(post_webhook($port, $bare, key => $key), 0, 1, 0,
    'the same message on /v1/webhook (no context at all) is a duplicate');

# segment_ingest, the SQL door, takes the same path.
is( sql(q{SELECT segment_ingest('retries', '{"type":"track","event":"Signed Up","userId":"user-2","messageId":"tracked-1","properties":{"plan":"pro"}}')}),
    '0', 'segment_ingest: a conflicting message stores nothing');
is(conflicts('tracked-1'), '1', 'segment_ingest: it is dead-lettered as message_id_conflict');
is(sql(q{SELECT segment_retry_content('{"sentAt":"x","receivedAt":"y","writeKey":"k","context":{"ip":"1.2.3.4","locale":"fr"},"event":"e"}')}),
    '{"event": "e", "context": {"locale": "fr"}}', 'segment_retry_content drops sentAt, receivedAt, writeKey and context.ip');
is(sql(q{SELECT segment_retry_content('{"context":{"ip":"1.2.3.4"},"event":"e"}')}), '{"event": "e"}',
    'segment_retry_content: a context holding only ip is dropped');

done_testing();
