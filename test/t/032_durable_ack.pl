# An answer of 200 means the batch's commit record reached the local WAL, whatever synchronous_commit the server,
# the database or the role set: every acknowledged messageId survives an immediate stop (no shutdown checkpoint)
# and a crash of the worker (SIGKILL, crash recovery).
#
# The node commits asynchronously by default (synchronous_commit = off in postgresql.conf, for the database and
# for the bootstrap role the worker connects as) and its WAL writer waits 10 s between rounds, so a commit that
# is not flushed by the worker itself stays in wal_buffers, which an immediate stop or a crash-restart discards.
# (The test cluster runs with fsync = off: a WAL write still leaves shared memory for the kernel, which outlives
# the killed server, so what an immediate stop loses is what was never written.) Each cycle sends a few hundred
# events one request at a time and in small concurrent bursts, stops the server immediately after the last
# answer, starts it again and looks for every acknowledged messageId. A worker that committed asynchronously
# lost acknowledged events this way (480 of 488,560 after immediate stops).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Time::HiRes qw(time usleep);

# restart_after_crash: the test framework turns it off; a Postgres in production has it on.
my ($node, $port) = start_webhook_node('durable_ack',
    conf => "restart_after_crash = on\nsynchronous_commit = off\nwal_writer_delay = '10s'\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $key = sql(q{SELECT segment_create_source('durable')});
my $bootstrap = sql(q{SELECT rolname FROM pg_roles WHERE oid = 10});
sql('ALTER DATABASE postgres SET synchronous_commit = off');
sql(qq{ALTER ROLE "$bootstrap" SET synchronous_commit = off});

# Starts the server (again) and waits until the worker ingests; returns a new session kept open meanwhile.
sub start_and_wait
{
    my ($how) = @_;
    my $offset = log_offset($node);
    $how->();
    defined wait_for_log_within($node, qr/segment_webhook: worker 0 listening on 127\.0\.0\.1:$port\b/, $offset, 30)
      or die 'the worker did not listen again; see ' . $node->logfile;
    defined wait_for_log_within($node, qr/segment_webhook: extension found, ingesting/, $offset, 30)
      or die 'the worker did not ingest again; see ' . $node->logfile;
    ok( wait_until(15, sub {
                my $r = post_webhook($port, encode_json_compact(track_message('warm-up')), key => $key, quiet => 1);
                $r && $r->{status} == 200;
            }),
        'the worker answers 200');
    return $node->background_psql('postgres');
}
my $session = start_and_wait(sub { $node->restart });
is(sql('SHOW synchronous_commit'), 'off', 'synchronous_commit is off for the database and role of the worker');
is(sql(q{SELECT count(*) FROM pg_db_role_setting WHERE setconfig @> '{synchronous_commit=off}'}), '2',
    'set for the database and for the bootstrap role');

# A request of @ids (one track message each) as bytes.
sub request_for
{
    my (@ids) = @_;
    my $messages = [ map { track_message($_, properties => { filler => 'f' x 100 }) } @ids ];
    return build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ],
        body => encode_json_compact(@ids == 1 ? $messages->[0] : $messages),
        connection => 'close');
}

# Sends each request (an array ref of ids) on a connection of its own, all at once, then reads every answer.
# Returns the ids answered 200.
sub send_concurrently
{
    my (@requests) = @_;
    my @sent;
    for my $ids (@requests)
    {
        my $connection = http_connect($port, timeout => 10) or next;
        push @sent, [ $connection, $ids ] if $connection->send(request_for(@$ids));
    }
    my @acked;
    for my $entry (@sent)
    {
        my ($connection, $ids) = @$entry;
        my $response = $connection->read_response;
        push @acked, @$ids if $response && $response->{status} == 200;
        $connection->close;
    }
    return @acked;
}

# Of @ids, those not stored exactly once.
sub not_stored_once
{
    my (@ids) = @_;
    my %stored;
    for my $row (split /\n/, sql(q{SELECT message_id, count(*) FROM segment_events GROUP BY 1}))
    {
        my ($id, $count) = split /\|/, $row;
        $stored{$id} = $count;
    }
    return grep { ($stored{$_} // 0) != 1 } @ids;
}

# --- Immediate stops -----------------------------------------------------------------------------------------------
for my $cycle (1 .. 3)
{
    my $offset = log_offset($node);
    my @acked;
    for my $i (1 .. 100)
    {
        push @acked, send_concurrently([ "c$cycle-single-$i" ]);
    }
    for my $burst (1 .. 40)
    {
        push @acked, send_concurrently(map { [ "c$cycle-burst-$burst-$_-1", "c$cycle-burst-$burst-$_-2" ] } 1 .. 4);
    }
    is(scalar @acked, 100 + 40 * 4 * 2, "cycle $cycle: every event was answered 200");
    is($session->query_safe('SELECT 1'), '1', "cycle $cycle: the session is still connected");
    $session->quit;
    my $log = slurp_file($node->logfile, $offset);
    unlike($log, qr/terminated by signal|reinitializing/, "cycle $cycle: no process crashed during the load");

    # Right after the last answer: no checkpoint, no WAL writer round, nothing written that was not yet.
    $node->stop('immediate');
    $session = start_and_wait(sub { $node->start });
    my @missing = not_stored_once(@acked);
    is_deeply(\@missing, [], "cycle $cycle: after an immediate stop every acknowledged event is stored once")
      or diag(scalar(@missing) . ' of ' . scalar(@acked) . ' acknowledged events missing');
}

# --- SIGKILL of the worker under load: crash recovery -------------------------------------------------------------
# The crash takes every session with it: this part checks what was acknowledged, not the absence of a crash.
is($session->query_safe('SELECT 1'), '1', 'the session is still connected before the kill');
$session->quit;
my $work_dir = PostgreSQL::Test::Utils::tempdir();
my $acks_file = "$work_dir/acks";
my $stop_file = "$work_dir/stop";
my $sender = fork();
die "fork failed: $!" unless defined $sender;
if ($sender == 0)
{
    # Singles and bursts, without pause, until told to stop (at most 60 s); refused requests are not retried.
    open my $acks, '>', $acks_file or POSIX::_exit(2);
    $acks->autoflush(1);
    my $deadline = time + 60;
    my $n = 0;
    while (!-e $stop_file && time < $deadline)
    {
        ++$n;
        my @acked = $n % 2
          ? send_concurrently([ "kill-single-$n" ])
          : send_concurrently(map { [ "kill-burst-$n-$_-1", "kill-burst-$n-$_-2" ] } 1 .. 4);
        print $acks "$_\n" for @acked;
        usleep(50_000) unless @acked;    # the server is restarting
    }
    close $acks;
    POSIX::_exit(0);
}
sub acked_so_far
{
    open my $in, '<', $acks_file or return ();
    my @ids = map { chomp; $_ } grep { /\n$/ } <$in>;
    close $in;
    return @ids;
}
ok(wait_until(20, sub { acked_so_far() >= 200 }), 'traffic flows before the kill');
my $pid = (worker_pids($node))[0] // 0;
my $offset = log_offset($node);
ok($pid > 0 && kill('KILL', $pid), 'SIGKILL sent to the worker under load');
my $acked_at_kill = () = acked_so_far();
ok(defined wait_for_log_within($node, qr/all server processes terminated; reinitializing/, $offset, 30),
    'the server reinitializes after the crash');
ok(defined wait_for_log_within($node, qr/segment_webhook: worker 0 listening on 127\.0\.0\.1:$port\b/, $offset, 30),
    'a worker listens again');
ok(wait_until(30, sub { acked_so_far() >= $acked_at_kill + 100 }), 'traffic flows again after the restart');
$session = $node->background_psql('postgres');
open my $stop, '>', $stop_file or die "cannot create $stop_file: $!";
close $stop;
my $sender_done = wait_until(30, sub { waitpid($sender, POSIX::WNOHANG()) == $sender });
ok($sender_done, 'the sender finished');
unless ($sender_done) { kill 'KILL', $sender; waitpid($sender, 0); }

my @acked = acked_so_far();
my @missing = not_stored_once(@acked);
is_deeply(\@missing, [], 'after SIGKILL of the worker every acknowledged event is stored once')
  or diag(scalar(@missing) . ' of ' . scalar(@acked) . ' acknowledged events missing');
my @acked_before_kill = @acked[ 0 .. $acked_at_kill - 1 ];
is(scalar(not_stored_once(@acked_before_kill)), 0,
    "in particular the $acked_at_kill acknowledged before the kill");
is($session->query_safe('SELECT 1'), '1', 'the session opened after the recovery is still connected');
$session->quit;
my ($after_recovery) = slurp_file($node->logfile, $offset) =~ /reinitializing\n(.*)\z/s;
ok(defined $after_recovery, 'the log shows the recovery');
unlike($after_recovery // '', qr/terminated by signal|reinitializing/, 'no other crash after the recovery');

$node->stop;
done_testing();
