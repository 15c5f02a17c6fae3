# User deletion over HTTP. A user forgotten with suppression: its new events (by userId, or by an anonymousId
# linked to it) are dead-lettered with reason suppressed, counted as rejected, while the other users' events of
# the same batch are stored; lifting the suppression stores them again. Segment's deletion notifications
# ({"type":"delete","userId":…}): with honor_deletions = true the request is recorded by the ingest worker
# (which may not delete) and the warehouse worker removes the user's events within seconds; with
# honor_deletions = false the notification stays in the dead letter and nothing is removed.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('user_deletion');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $key = sql(q{SELECT segment_create_source('app')});
my $other_key = sql(q{SELECT segment_create_source('other app')});
ok( wait_until(10, sub {
            my $r = post_webhook($port, encode_json_compact(track_message('warm-up', userId => 'warm')),
                key => $key, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'the source is accepted');

sub post_batch
{
    my ($messages, $write_key) = @_;
    return post_webhook($port, encode_json_compact($messages), key => $write_key // $key);
}

sub counts_are
{
    my ($response, $accepted, $duplicates, $rejected, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($response && $response->{status}, 200, "$name: status 200") or diag(explain($response));
    is_deeply(
        decode_json_body($response),
        { success => JSON::PP::true, accepted => $accepted, duplicates => $duplicates, rejected => $rejected },
        "$name: accepted $accepted, duplicates $duplicates, rejected $rejected");
}

# --- Suppression ---------------------------------------------------------------------------------------------
counts_are(
    post_batch([
        track_message('s-1', userId => 'alice', anonymousId => 'device-a'),
        { type => 'identify', userId => 'alice', anonymousId => 'device-b', messageId => 's-2',
          traits => { email => 'alice@example.com' } },
        track_message('s-3', userId => 'bob') ]),
    3, 0, 0, 'alice and bob');
is(sql(q{SELECT segment_forget_user('app', 'alice', suppress => true)}), '2',
    'segment_forget_user removes alice\'s two events');
is(sql(q{SELECT string_agg(suppressed_id, ',' ORDER BY suppressed_id) FROM segment_suppressions}),
    'alice,device-a,device-b', 'alice and her anonymousIds are suppressed');

# The suppression applies from the next batch on: the commit wakes the worker, which reads it before writing.
my $response = post_batch([
    track_message('s-4', userId => 'alice'),
    track_message('s-5', userId => 'bob'),
    { type => 'page', anonymousId => 'device-b', messageId => 's-6', name => 'Home' },
    track_message('s-7', userId => undef, anonymousId => 'device-c') ]);
counts_are($response, 2, 0, 2, 'a batch with alice\'s events among others');
is(sql(q{SELECT string_agg(message_id, ',' ORDER BY message_id) FROM segment_events WHERE message_id LIKE 's-%'}),
    's-3,s-5,s-7', 'the other users\' events of the batch are stored, not alice\'s');
is( sql(q{SELECT string_agg(message_id || ':' || reason, ',' ORDER BY message_id) FROM segment_rejected
          WHERE message_id LIKE 's-%'}),
    's-4:suppressed,s-6:suppressed', 'alice\'s events are dead-lettered with reason suppressed');
counts_are(post_batch([ track_message('s-8', userId => 'alice') ], $other_key), 1, 0, 0,
    'alice in another source is not suppressed');

is(sql(q{SELECT segment_unsuppress_user('app', 'alice')}), '3', 'the suppression is lifted');
counts_are(post_batch([ track_message('s-9', userId => 'alice') ]), 1, 0, 0, 'alice is stored again');

# --- Deletion notifications, not honoured: kept in the dead letter ------------------------------------------
counts_are(post_batch([ track_message('d-1', userId => 'carol'), track_message('d-2', userId => 'dave') ]),
    2, 0, 0, 'carol and dave');
$response = post_webhook($port, encode_json_compact(
        { type => 'delete', userId => 'carol', timestamp => '2024-05-01T10:00:00.000Z' }), key => $key);
counts_are($response, 0, 0, 1, 'a deletion notification while honor_deletions is false');
is(sql(q{SELECT reason FROM segment_rejected WHERE payload ->> 'userId' = 'carol'}), 'deletion_request',
    'it stays in the dead letter');
is(sql(q{SELECT count(*) FROM segment_deletions WHERE user_id = 'carol'}), '0', 'no deletion is recorded');
sleep 2;    # the warehouse worker has had its passes: still nothing removed
is(sql(q{SELECT count(*) FROM segment_events WHERE user_id = 'carol'}), '1', 'carol\'s event is kept');

# --- Deletion notifications, honoured: recorded, then carried out within seconds ----------------------------
sql(q{UPDATE segment_sources SET honor_deletions = true WHERE name = 'app'});
my $ingest_role = 'segment_webhook_ingest';
ok( wait_until(10, sub {
            my $r = post_webhook($port, encode_json_compact(
                    { type => 'delete', userId => 'carol', timestamp => '2024-05-01T10:00:00.000Z' }),
                key => $key, quiet => 1);
            return 0 unless $r && $r->{status} == 200;
            my $body = decode_json_body($r);
            return $body && $body->{accepted} == 1 && $body->{rejected} == 0;
        }),
    'a deletion notification with honor_deletions is accepted (recorded), not dead-lettered');
is(sql(qq{SELECT requested_via || ' ' || requested_by FROM segment_deletions WHERE user_id = 'carol' ORDER BY id LIMIT 1}),
    "segment $ingest_role", 'the request is recorded by the ingest worker');
ok( wait_until(15, sub {
            sql(q{SELECT count(*) FROM segment_deletions WHERE user_id = 'carol' AND status = 'done'}) ne '0';
        }),
    'the warehouse worker carries the request out within seconds');
is(sql(q{SELECT count(*) FROM segment_events WHERE user_id = 'carol'}), '0', 'carol\'s events are gone');
is(sql(q{SELECT count(*) FROM segment_rejected WHERE payload ->> 'userId' = 'carol'}), '0',
    'so is her earlier deletion notification in the dead letter');
is(sql(q{SELECT count(*) FROM segment_events WHERE user_id = 'dave'}), '1', 'dave\'s event is kept');
is( sql(q{SELECT status || ' ' || events_deleted || ' ' || rejected_deleted || ' ' || suppress
          FROM segment_deletions WHERE user_id = 'carol' AND status = 'done' ORDER BY id LIMIT 1}),
    'done 1 1 false', 'segment_deletions says what was removed');
is($node->safe_psql('postgres', q{SELECT count(*) FROM segment_deletions WHERE status = 'failed'}), '0',
    'no request failed');

$node->stop;
done_testing();
