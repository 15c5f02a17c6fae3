# Several ingest nodes feeding one analytics node through logical replication (docs/scale-out.md): the analytics
# node owns the sources and publishes segment_sources to the ingest nodes; each ingest node publishes its
# segment_events, and the analytics node subscribes to all of them with the segment_events_apply_dedup() trigger.
# The same messageId arriving at two ingest nodes is stored once there and stops no subscription; ids that
# overlap between the ingest nodes do not collide; the warehouse relations of the analytics node show it all.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my $logical = "wal_level = logical\nmax_replication_slots = 8\nmax_wal_senders = 8\nmax_logical_replication_workers = 8\n";
my ($analytics) = start_webhook_node('analytics', conf => $logical);
my ($ingest_a, $port_a) = start_webhook_node('ingest_a', conf => $logical . "segment_webhook.warehouse = off\n");
my ($ingest_b, $port_b) = start_webhook_node('ingest_b', conf => $logical . "segment_webhook.warehouse = off\n");
sub on { my ($node, $query) = @_; return $node->safe_psql('postgres', $query); }

# --- The sources, made once on the analytics node, replicated to the ingest nodes ----------------------------
my $key = on($analytics, q{SELECT segment_create_source('Web App')});
on($analytics, 'CREATE PUBLICATION segment_sources_pub FOR TABLE segment_sources');
my $analytics_connection = $analytics->connstr . ' dbname=postgres';
for my $node ($ingest_a, $ingest_b)
{
    my $name = $node->name;
    on($node, "CREATE SUBSCRIPTION sources_$name CONNECTION '$analytics_connection' PUBLICATION segment_sources_pub");
}
for my $node ($ingest_a, $ingest_b)
{
    my $name = $node->name;
    ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM segment_sources WHERE write_key = '$key'"),
        "$name has the source, with its write key");
}

# --- Events at both ingest nodes, one messageId at both ----------------------------------------------------------
sub post_ok
{
    my ($port, $messages, $name) = @_;
    my $response;
    ok( wait_until(10, sub {
                $response = post_webhook($port, encode_json_compact($messages), key => $key, quiet => 1);
                $response && $response->{status} == 200;
            }),
        $name) or diag(explain($response));
}
post_ok($port_a, [ map { track_message("a-$_", userId => 'user-a') } 1 .. 5 ], 'ingest node a stores 5 events');
post_ok($port_b, [ map { track_message("b-$_", userId => 'user-b') } 1 .. 5 ], 'ingest node b stores 5 events');
post_ok($port_a, [ track_message('both', event => 'Order Completed', properties => { total => 12 }) ],
    'one message at node a');
post_ok($port_b, [ track_message('both', event => 'Order Completed', properties => { total => 12 }) ],
    'and the same message at node b');
is(on($ingest_a, 'SELECT min(id) FROM segment_events'), on($ingest_b, 'SELECT min(id) FROM segment_events'),
    'the ingest nodes number their events from the same id');

# --- The analytics node subscribes to both -------------------------------------------------------------------
on($analytics, q{CREATE TRIGGER segment_events_apply_dedup BEFORE INSERT ON segment_events
                 FOR EACH ROW EXECUTE FUNCTION segment_events_apply_dedup()});
on($analytics, 'ALTER TABLE segment_events ENABLE REPLICA TRIGGER segment_events_apply_dedup');
for my $node ($ingest_a, $ingest_b)
{
    my $name = $node->name;
    on($node, q{CREATE PUBLICATION segment_events_pub FOR TABLE segment_events
                 WITH (publish_via_partition_root = true, publish = 'insert')});
    my $connection = $node->connstr . ' dbname=postgres';
    on($analytics, "CREATE SUBSCRIPTION events_$name CONNECTION '$connection' PUBLICATION segment_events_pub");
}
ok( $analytics->poll_query_until('postgres', q{SELECT count(*) = 11 FROM segment_events}),
    'the analytics node holds every message once (5 + 5 + 1 sent twice)');
is(on($analytics, q{SELECT count(*) FROM segment_events WHERE message_id = 'both'}), '1',
    'the message sent to both ingest nodes is stored once');

# Later events, and the same message again at both nodes while the subscriptions stream.
post_ok($port_a, [ track_message('late-a'), track_message('late-both') ], 'more events at node a');
post_ok($port_b, [ track_message('late-b'), track_message('late-both') ], 'more events at node b');
ok($analytics->poll_query_until('postgres', q{SELECT count(*) = 14 FROM segment_events}),
    'streamed events arrive, the duplicate once');
is( on($analytics, q{SELECT count(*) FROM pg_stat_subscription WHERE subname LIKE 'events_%' AND pid IS NOT NULL}),
    '2', 'both subscriptions are running');
is( on($analytics, q{SELECT coalesce(sum(apply_error_count), 0) FROM pg_stat_subscription_stats
                     WHERE subname LIKE 'events_%'}),
    '0', 'and no apply error ever stopped them');
is(on($analytics, 'SELECT count(DISTINCT id) FROM segment_events'), '14', 'ids are unique on the analytics node');

# The analytics node's own warehouse relations show the replicated events.
ok( wait_until(20, sub {
            on($analytics, q{SELECT to_regclass('web_app.order_completed') IS NOT NULL})
              eq 't' && on($analytics, q{SELECT count(*) FROM web_app.order_completed}) eq '1';
        }),
    'the warehouse relation web_app.order_completed of the analytics node holds the replicated event');
is(on($analytics, q{SELECT total FROM web_app.order_completed}), '12', 'with its typed column');

# The trigger does nothing on an ordinary insert: it is a REPLICA trigger.
is(on($analytics, q{SELECT segment_ingest('Web App', '{"type":"track","event":"Local","userId":"u","messageId":"local-1"}')}),
    '1', 'the analytics node still stores its own events');
done_testing();
