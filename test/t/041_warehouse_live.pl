# The warehouse relations kept live by the warehouse worker, with no call of segment_warehouse_sync(): a new
# property, context key, event or trait becomes a column or relation within seconds of the commit that first
# carried it; a transaction that drew its event id early and commits late is not missed; a long query holding a
# view delays only that view's new column, never ingestion; segment_webhook.warehouse = off stops the passes and
# on resumes them; a dropped view is built again; the worker never crashes the server.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Time::HiRes qw(time usleep);

my ($node, $port) = start_webhook_node('warehouse_live');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $key = sql(q{SELECT segment_create_source('Live Shop')});
is(sql(q{SELECT warehouse_schema FROM segment_sources WHERE name = 'Live Shop'}), 'live_shop', 'schema named after the source');

my $sent = 0;
sub send_events
{
    my @messages = map { { type => 'track', userId => 'user-1', messageId => 'live-' . ++$sent, %$_ } } @_;
    my $response = post_webhook($port, encode_json_compact(\@messages), key => $key);
    return $response && $response->{status} == 200;
}
sub column_exists
{
    my ($relation, $column) = @_;
    return sql(qq{SELECT count(*) FROM pg_attribute
                  WHERE attrelid = to_regclass('live_shop.$relation') AND attname = '$column' AND NOT attisdropped}) eq '1';
}
# Seconds from now until the column exists (polled every 50 ms), or undef after $limit seconds.
sub seconds_until_column
{
    my ($relation, $column, $limit) = @_;
    my $start = time;
    while (time - $start < $limit)
    {
        return time - $start if column_exists($relation, $column);
        usleep(50_000);
    }
    return undef;
}

# --- New keys become columns within seconds -----------------------------------------------------------------------
ok(send_events({ event => 'Order Completed', properties => { revenue => 10.5, coupon => 'SPRING' },
                 context => { campaign => { source => 'newsletter' } } }), 'an order is answered 200');
my $waited = seconds_until_column('order_completed', 'revenue', 10);
ok(defined $waited && $waited < 5, sprintf('a new event and property are a relation and column %.2f s after the commit', $waited // -1));
ok(column_exists('order_completed', 'context_campaign_source'), 'and its context key a column');
is(sql(q{SELECT revenue || '/' || coupon || '/' || context_campaign_source FROM live_shop.order_completed}),
    '10.5/SPRING/newsletter', 'with the values sent');

ok(send_events({ event => 'Order Completed', properties => { revenue => 3, gift_wrap => JSON::PP::true } }),
    'a second order with a new property');
$waited = seconds_until_column('order_completed', 'gift_wrap', 10);
ok(defined $waited && $waited < 5, sprintf('the new property is a column %.2f s after the commit', $waited // -1));
is(sql(q{SELECT count(*) FROM live_shop.order_completed WHERE gift_wrap}), '1', 'typed boolean');

# --- A transaction that holds a lower event id and commits late ----------------------------------------------------
my $late = $node->background_psql('postgres');
$late->query_safe(q{BEGIN; SELECT segment_ingest('Live Shop',
    '{"type":"track","messageId":"late-1","userId":"user-2","event":"Late Event","properties":{"late_key":"x"}}')});
# Later events commit and are examined while it runs: its id is below theirs.
for my $n (1 .. 5)
{
    send_events({ event => 'Order Completed', properties => { revenue => $n } });
    usleep(300_000);
}
ok(sql(q{SELECT max(id) FROM segment_events}) > 0, 'later events stored while the early transaction is open');
ok(!column_exists('late_event', 'late_key'), 'the open transaction\'s event has no relation yet');
my $committed_at = time;
$late->query_safe('COMMIT');
$waited = seconds_until_column('late_event', 'late_key', 15);
ok(defined $waited && $waited < 5,
    sprintf('the late transaction\'s event is a relation with its column %.2f s after its commit', $waited // -1));
$late->quit;

# --- A long query holding a view delays that view only, never ingestion --------------------------------------------
my $reader = $node->background_psql('postgres');
$reader->query_safe('BEGIN; SELECT count(*) FROM live_shop.order_completed');
ok(send_events({ event => 'Order Completed', properties => { revenue => 1, held_key => 'h' } }),
    'an event with a new key is answered 200 while a query holds the view');
my $start = time;
my $answered = 0;
for my $n (1 .. 10)
{
    $answered++ if send_events({ event => 'Order Completed', properties => { revenue => $n } });
}
ok($answered == 10 && time - $start < 5, sprintf('ingestion goes on meanwhile: 10 requests answered 200 in %.2f s', time - $start));
usleep(1_500_000);
ok(!column_exists('order_completed', 'held_key'), 'the view is not replaced while the query holds it');
# The worker gives up its lock request after a second (lock_timeout) and tries again on a later pass, so other
# readers never queue behind it for long.
my $served = 0;
for my $n (1 .. 5)
{
    my ($ok) = $node->psql('postgres',
        q{SET statement_timeout = '2500ms'; SELECT count(*) FROM live_shop.order_completed});
    $served++ if $ok == 0;
    usleep(200_000);
}
is($served, 5, 'other readers of the view are served meanwhile (each within 2.5 s)');
$reader->query_safe('COMMIT');
$waited = seconds_until_column('order_completed', 'held_key', 10);
ok(defined $waited && $waited < 5, sprintf('the column appears %.2f s after the query ends', $waited // -1));
$reader->quit;

# --- Identify traits into identifies and users ------------------------------------------------------------------------
ok(send_events({ type => 'identify', userId => 'user-9', traits => { email => 'nine@example.com', address => { city => 'Oslo' } } }),
    'an identify is answered 200');
ok(defined seconds_until_column('users', 'address_city', 10), 'its nested trait is a column of users');
is(sql(q{SELECT email || '/' || address_city FROM live_shop.users WHERE id = 'user-9'}), 'nine@example.com/Oslo',
    'users holds the traits');

# --- Off stops the passes, on resumes them ------------------------------------------------------------------------
sql(q{ALTER SYSTEM SET segment_webhook.warehouse = off});
sql('SELECT pg_reload_conf()');
usleep(1_500_000);    # a pass that started before the reload ends
ok(send_events({ event => 'While Off', properties => { off_key => 1 } }), 'an event while off is answered 200');
usleep(3_000_000);
ok(!column_exists('while_off', 'off_key'), 'off: no relation appears');
sql(q{ALTER SYSTEM SET segment_webhook.warehouse = on});
sql('SELECT pg_reload_conf()');
ok(defined seconds_until_column('while_off', 'off_key', 10), 'on again: the relation appears');

# --- A view dropped by hand is built again ----------------------------------------------------------------------
sql('DROP VIEW live_shop.while_off');
ok(defined seconds_until_column('while_off', 'off_key', 10), 'a dropped view is built again');

# --- pg_cancel_backend and pg_terminate_backend of the warehouse worker ----------------------------------------------
my $warehouse_pid = sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'segment_webhook warehouse'});
ok($warehouse_pid, 'the warehouse worker is in pg_stat_activity');
sql("SELECT pg_cancel_backend($warehouse_pid)");
ok(send_events({ event => 'After Cancel', properties => { cancel_key => 1 } }), 'an event after a cancel is answered 200');
ok(defined seconds_until_column('after_cancel', 'cancel_key', 5), 'after a cancel the worker goes on within seconds');
is(sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'segment_webhook warehouse'}), $warehouse_pid,
    'the same process: a cancel never ends it');
sql("SELECT pg_terminate_backend($warehouse_pid)");
ok(send_events({ event => 'After Terminate', properties => { terminate_key => 1 } }),
    'an event after a terminate is answered 200');
ok(defined seconds_until_column('after_terminate', 'terminate_key', 30), 'the postmaster starts the worker again');

unlike(slurp_file($node->logfile), qr/terminated by signal|reinitializing/, 'no crash');
is(sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segment_webhook warehouse'}), '1',
    'the warehouse worker runs');
$node->stop;
done_testing();
