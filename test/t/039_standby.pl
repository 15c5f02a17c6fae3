# With streaming replication: a hot standby serves nothing (the worker starts only once recovery has finished);
# with a synchronous standby, a 200 means the standby has the event (the worker keeps synchronous_commit when it
# already waits for standbys); after pg_promote() the former standby ingests within seconds.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($primary, $port) = start_webhook_node('primary', conf => "wal_level = replica\nmax_wal_senders = 4\n");
my $key = $primary->safe_psql('postgres', q{SELECT segment_create_source('replicated')});
my $response = post_webhook($port, encode_json_compact(track_message('before-standby')), key => $key);
is($response && $response->{status}, 200, 'the primary ingests');

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
my $standby_port = PostgreSQL::Test::Cluster::get_free_port();
$standby->append_conf('postgresql.conf', "segment_webhook.port = $standby_port\n");
$standby->start;
$primary->wait_for_catchup('standby');

# --- A hot standby serves nothing -------------------------------------------------------------------------------
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segment_webhook worker'}),
    '0', 'no worker runs on the hot standby');
is(http_connect($standby_port, timeout => 2), undef, "nothing listens on the standby's HTTP port");
unlike(slurp_file($standby->logfile), qr/segment_webhook: worker \d+ listening/, 'and none ever listened');

# --- A synchronous standby has every event answered 200 ---------------------------------------------------------
$primary->append_conf('postgresql.conf',
    "synchronous_standby_names = 'standby'\nsynchronous_commit = remote_apply\n");
$primary->reload;
ok($primary->poll_query_until('postgres',
        q{SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'standby'}),
    'the standby is synchronous');
my @ids = map { "sync-$_" } 1 .. 20;
my $answered = 0;
for my $id (@ids)
{
    my $r = post_webhook($port, encode_json_compact(track_message($id)), key => $key);
    $answered++ if $r && $r->{status} == 200;
}
is($answered, 20, 'twenty events answered 200 with a synchronous standby');
# remote_apply: visible on the standby the moment the primary answered, without waiting for it to catch up.
is($standby->safe_psql('postgres', q{SELECT count(*) FROM segment_events WHERE message_id LIKE 'sync-%'}), '20',
    'the standby has every event that was answered 200');

# --- Promotion: the former standby ingests within seconds --------------------------------------------------------
$primary->stop;
$standby->safe_psql('postgres', 'SELECT pg_promote()');
ok( wait_until(20, sub {
            my $r = post_webhook($standby_port, encode_json_compact(track_message('after-promotion')),
                key => $key, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'after pg_promote() the former standby ingests with the same write key');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM segment_events WHERE message_id = 'after-promotion'}), '1',
    'and the event is stored there');
unlike(slurp_file($standby->logfile), qr/terminated by signal|reinitializing/, 'no crash on the standby');

done_testing();
