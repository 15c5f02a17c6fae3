# pg_cancel_backend() on a worker cancels at most the batch it is writing (whose requests are answered 503 with
# Retry-After, so the sender retries): the worker does not exit, no connection is reset and no acknowledged
# event is lost. Before, the cancel raised an error in the worker's main loop that became FATAL: the worker
# restarted and every open connection was reset.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Time::HiRes qw(usleep);

my ($node, $port) = start_webhook_node('cancel', conf => "segment_webhook.lock_timeout = 0\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $key = sql(q{SELECT segment_create_source('cancel')});
my $pid = (worker_pids($node))[0];
ok($pid, 'the worker runs');

my $connection = http_connect($port, timeout => 20);
sub post_on
{
    my ($conn, $body) = @_;
    $conn->send(build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ], body => $body)) or return undef;
    return $conn->read_response;
}

my @acknowledged;
my $response = post_on($connection, encode_json_compact(track_message('idle-0')));
is($response && $response->{status}, 200, 'a keep-alive connection is answered');
push @acknowledged, 'idle-0' if $response && $response->{status} == 200;

# --- Cancels between batches: nothing to cancel ------------------------------------------------------------------
for my $round (1 .. 10)
{
    sql("SELECT pg_cancel_backend($pid)");
    usleep(20_000);
    $response = post_on($connection, encode_json_compact(track_message("idle-$round")));
    push @acknowledged, "idle-$round" if $response && $response->{status} == 200;
}
is(scalar @acknowledged, 11, 'after ten cancels the same connection is still answered 200 every time');
is((worker_pids($node))[0], $pid, 'the worker did not exit');

# --- A cancel while a batch waits for a lock: that batch is answered 503, the connection stays ------------------
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE segment_events IN ACCESS EXCLUSIVE MODE');
$connection->send(build_request($port, 'POST', "/v1/webhook?writeKey=$key",
    headers => [ [ 'Content-Type', 'application/json' ] ],
    body => encode_json_compact([ track_message('locked-1'), track_message('locked-2') ])));
ok(wait_until(10, sub { sql("SELECT count(*) FROM pg_locks WHERE pid = $pid AND NOT granted") > 0 }),
    'the batch waits for the lock');
sql("SELECT pg_cancel_backend($pid)");
$response = $connection->read_response;
is($response && $response->{status}, 503, 'the cancelled batch is answered 503');
like($response && $response->{headers}{'retry-after'}, qr/^\d+$/, 'with Retry-After');
$locker->query_safe('COMMIT');
$locker->quit;
$response = post_on($connection, encode_json_compact([ track_message('locked-1'), track_message('locked-2') ]));
is($response && $response->{status}, 200, 'the retry on the same connection is stored');
is(decode_json_body($response)->{accepted}, 2, 'both events of the cancelled batch are stored by the retry');
push @acknowledged, 'locked-1', 'locked-2';

# --- Cancels under load: every acknowledged event is stored -------------------------------------------------------
my @connections = map { http_connect($port, timeout => 20) } 1 .. 4;
my $sent = 0;
for my $round (1 .. 40)
{
    my @ids;
    for my $conn (@connections)
    {
        my $id = 'load-' . ++$sent;
        push @ids, $id;
        $conn->send(build_request($port, 'POST', "/v1/webhook?writeKey=$key",
            headers => [ [ 'Content-Type', 'application/json' ] ],
            body => encode_json_compact(track_message($id))));
    }
    sql("SELECT pg_cancel_backend($pid)") if $round % 4 == 0;
    for my $i (0 .. $#connections)
    {
        my $answer = $connections[$i]->read_response;
        push @acknowledged, $ids[$i] if $answer && $answer->{status} == 200;
    }
}
cmp_ok(scalar @acknowledged, '>', 150, 'most requests under load were acknowledged');
my $list = join(',', map { "'$_'" } @acknowledged);
is(sql("SELECT count(*) FROM segment_events WHERE message_id IN ($list)"), scalar @acknowledged,
    'every acknowledged event is stored');
is((worker_pids($node))[0], $pid, 'the worker never exited');
my $log = slurp_file($node->logfile);
unlike($log, qr/FATAL:  canceling statement|terminating background worker|terminated by signal/,
    'no FATAL, no worker exit in the log');
$response = post_on($connection, encode_json_compact(track_message('final')));
is($response && $response->{status}, 200, 'the first connection is still open and answered');

done_testing();
