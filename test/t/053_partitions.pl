# segment_events partitioned by received_at, on a fresh installation with the workers running: the warehouse
# worker makes the day partitions (from today: the default partition is empty) within seconds of CREATE
# EXTENSION, with no user action; events sent over HTTP to two workers land in today's partition, each message
# stored once with its key; a closed day partition is reordered when the worker starts (not while a query holds
# segment_events), and a partition dropped by hand is made again; with partition_premake = 0 none is made, and
# partitions made by another tool are used as they are.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('partitions', workers => 2, conf => "segment_webhook.workers = 2\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $today = sql(q{SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')});
my $today_start = q{(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')};

# --- The day partitions appear by themselves --------------------------------------------------------------------
ok(wait_until(20, sub { sql('SELECT count(*) FROM segment_event_partitions()') == 8 }),
    'the worker makes eight day partitions (today and seven days ahead) after CREATE EXTENSION');
is(sql(qq{SELECT min(from_time) = $today_start AND max(to_time) = $today_start + interval '8 days'
          FROM segment_event_partitions()}), 't', 'from today (the default partition is empty) to a week ahead');
is(sql(q{SELECT string_agg(DISTINCT (to_time - from_time)::text, ',') FROM segment_event_partitions()}), '1 day',
    'one UTC day each');
is(sql(q{SELECT convalidated FROM pg_constraint WHERE conname = 'segment_events_default_before'}), 't',
    'the default partition is bounded below today by a validated constraint');

# --- Events over HTTP, to two workers, each stored once --------------------------------------------------------
my $key = sql(q{SELECT segment_create_source('Part Site')});
my @batch = map { track_message(sprintf('part-%03d', $_ % 80), properties => { n => $_ % 80 }) } 1 .. 100;
my @answers;
for my $round (1 .. 3)
{
    # Two connections at once: the same batch reaches both workers (SO_REUSEPORT) or one twice.
    my @connections = map { http_connect($port) } 1 .. 2;
    my $body = encode_json_compact({ batch => \@batch });
    for my $connection (@connections)
    {
        $connection->send(build_request($port, 'POST', "/v1/batch?writeKey=$key",
            headers => [ [ 'Content-Type', 'application/json' ] ], body => $body));
    }
    push @answers, map { $_->read_response(timeout => 10) } @connections;
    $_->close for @connections;
}
is(scalar(grep { $_ && $_->{status} == 200 } @answers), 6, 'six sends of a batch of 100 (80 messages) answered 200');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id LIKE 'part-%'}), '80', 'each message stored once');
is(sql(qq{SELECT count(*) FROM segment_events WHERE message_id LIKE 'part-%'
          AND tableoid = 'segment_events_p$today'::regclass}), '80', "all in today's partition (segment_events_p$today)");
is(sql(q{SELECT count(*) FROM ONLY segment_events_default}), '0', 'none in the default partition');
is(sql(q{SELECT count(*) FROM segment_event_keys k JOIN segment_events e
         ON e.received_at = k.received_at AND e.id = k.event_id AND e.message_id = k.message_id
         WHERE k.message_id LIKE 'part-%'}), '80', 'each with its key, which says where it is');

# --- A day partition dropped by hand comes back when the worker starts --------------------------------------------
# --- and a closed day partition is reordered by the maintenance the worker runs as it starts (then hourly) -------
my $closed_day = sql(qq{SELECT to_char($today_start - interval '3 days', 'YYYYMMDD')});
sql(qq{CREATE TABLE segment_events_p$closed_day PARTITION OF segment_events
           FOR VALUES FROM ($today_start - interval '3 days') TO ($today_start - interval '2 days');
       INSERT INTO segment_events (source_id, message_id, type, event, user_id, "timestamp", received_at, payload)
       SELECT s.id, 'closed-' || g, (ARRAY['track', 'page', 'identify'])[1 + g % 3], CASE WHEN g % 3 = 0 THEN 'E' END,
              'u', $today_start - interval '3 days' + g * interval '1 minute',
              $today_start - interval '3 days' + g * interval '1 minute', '{}'
       FROM segment_sources s, generate_series(1, 30) g WHERE s.name = 'Part Site'});
my $closed_rows = sql(qq{SELECT md5(string_agg(e::text, ',' ORDER BY id)) FROM segment_events_p$closed_day e});
# While a query holds segment_events, the swap gives up after 100 ms, with a clear error (and the maintenance
# without one), leaving the partition as it was.
my $reader = $node->background_psql('postgres');
$reader->query_safe('BEGIN; SELECT count(*) FROM segment_events;');
my ($out, $err) = ('', '');
$node->psql('postgres', "SELECT segment_reorder_partition('segment_events_p$closed_day')", stdout => \$out, stderr => \$err);
like($err, qr/partition (public\.)?segment_events_p$closed_day was not reordered: segment_events was in use/,
    'while a query holds segment_events, reordering gives up, saying why');
$node->psql('postgres', 'SELECT segment_reorder_next()', stdout => \$out, stderr => \$err);
like($err, qr/segment_events was in use/, 'so does segment_reorder_next(), which the reorder worker calls');
is(sql(qq{SELECT count(*) FROM pg_constraint WHERE conrelid = 'segment_events_p$closed_day'::regclass
          AND conname = 'segment_events_reordered'}), '0', 'the partition is as it was');
is(sql(q{SELECT count(*) FROM pg_class WHERE relname LIKE '%\_new'}), '0', 'and no copy is left behind');
$reader->query_safe('COMMIT');
# The lock a vacuum of another partition holds (SHARE UPDATE EXCLUSIVE) does not stand in the way.
my $older_day = sql(qq{SELECT to_char($today_start - interval '4 days', 'YYYYMMDD')});
sql(qq{CREATE TABLE segment_events_p$older_day PARTITION OF segment_events
           FOR VALUES FROM ($today_start - interval '4 days') TO ($today_start - interval '3 days');
       INSERT INTO segment_events (source_id, message_id, type, "timestamp", received_at, payload)
       SELECT s.id, 'older-' || g, (ARRAY['track', 'page'])[1 + g % 2], $today_start - interval '4 days',
              $today_start - interval '4 days', '{}'
       FROM segment_sources s, generate_series(1, 10) g WHERE s.name = 'Part Site'});
$reader->query_safe("BEGIN; LOCK TABLE segment_events_p$today IN SHARE UPDATE EXCLUSIVE MODE;");
is(sql("SELECT segment_reorder_partition('segment_events_p$older_day')"), 't',
    "a vacuum's lock on another partition does not stop reordering");
$reader->query_safe('COMMIT');
$reader->quit;
my $last = sql(q{SELECT partition FROM segment_event_partitions() ORDER BY from_time DESC LIMIT 1});
sql("DROP TABLE $last");
$node->restart;
# The warehouse worker's maintenance, then the reorder worker it starts.
ok(wait_until(20, sub { sql(qq{SELECT to_regclass('$last') IS NOT NULL}) eq 't' }),
    "$last is made again after a restart");
ok( wait_until(30, sub {
            sql(qq{SELECT count(*) FROM pg_constraint WHERE conrelid = 'segment_events_p$closed_day'::regclass
                   AND conname = 'segment_events_reordered'}) eq '1' }),
    "the closed day partition segment_events_p$closed_day is reordered");
is(sql(qq{SELECT md5(string_agg(e::text, ',' ORDER BY id)) FROM segment_events_p$closed_day e}), $closed_rows,
    'with the same rows');
like(slurp_file($node->logfile), qr/LOG:  segment_webhook: partition public\.segment_events_p$closed_day reordered \(30 events\)/,
    'the server log says so');
is(sql(qq{SELECT string_agg(type, ',' ORDER BY ctid) FROM (SELECT type, min(ctid) AS ctid FROM segment_events_p$closed_day GROUP BY type) t}),
    'identify,page,track', 'stored by type');
is(sql(qq{SELECT count(*) FROM (SELECT type, lag(type) OVER (ORDER BY ctid) AS previous FROM segment_events_p$closed_day) t
          WHERE type <> previous}), '2', 'each type in one run');
ok(wait_until(20, sub {
            my $response = post_webhook($port, encode_json_compact(track_message('after-restart')), key => $key,
                quiet => 1);
            $response && $response->{status} == 200;
        }), 'the endpoint answers after the restart');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'after-restart'}), '1', 'and stores');

# --- partition_premake = 0: another tool makes the partitions -----------------------------------------------------
$node->append_conf('postgresql.conf', "segment_webhook.partition_premake = 0\n");
$node->reload;
sql('CREATE DATABASE other_tool');
my $offset = log_offset($node);
$node->safe_psql('other_tool', 'CREATE EXTENSION segment_webhook');
is($node->safe_psql('other_tool', 'SELECT segment_create_partitions()'), 'f', 'premake 0: nothing to do');
is($node->safe_psql('other_tool', 'SELECT count(*) FROM segment_event_partitions()'), '0', 'premake 0: no partition');
$node->safe_psql('other_tool', qq{
    CREATE TABLE tool_made PARTITION OF segment_events FOR VALUES FROM ($today_start) TO ($today_start + interval '1 day');
    SELECT segment_create_source('Tool');
    SELECT segment_ingest('Tool', '[{"type":"track","event":"E","userId":"u","messageId":"t1"},
                                    {"type":"track","event":"E","userId":"u","messageId":"t1"}]');
});
is($node->safe_psql('other_tool', q{SELECT string_agg(p || ' ' || n, ',') FROM (SELECT tableoid::regclass::text AS p, count(*) AS n FROM segment_events GROUP BY 1) c}),
    'tool_made 1', 'events go to the partition another tool made, deduplicated');
unlike(slurp_file($node->logfile, $offset), qr/terminated by signal|reinitializing/, 'no crash');

done_testing();
