# Two workers writing overlapping retries never deadlock: every batch writes its events in (source_id, message_id)
# order, so two transactions inserting the same new messageIds wait for each other in one direction only.
#
# Two workers share the port (SO_REUSEPORT: each connection goes to one of them). Eight client processes send, in
# rounds that start together, one batch of 200 messages each, drawn from a pool of 400 messageIds new to that
# round and shuffled differently by every client: the retries of one round overlap by about half, arrive at both
# workers at the same time and are written concurrently. Every answer must be 200, the log must not say
# "deadlock detected", each messageId must be stored exactly once and be counted as accepted exactly once, the
# rest as duplicates. Before the fix the workers wrote in arrival order and such batches failed with "deadlock
# detected" (503).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use Fcntl qw(:flock);
use List::Util qw(shuffle sum0);
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Time::HiRes qw(time usleep);

my $clients = 8;
my $rounds = 20;
my $pool_size = 400;
my $batch_size = 200;

# log_lock_waits: should the workers wait for each other for long, the log says which transactions and where.
my ($node, $port) = start_webhook_node('no_deadlock',
    workers => 2,
    conf => "segment_webhook.workers = 2\nlog_lock_waits = on\ndeadlock_timeout = '50ms'\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $session = $node->background_psql('postgres');    # dies with the server, should it crash-restart
my $key = sql(q{SELECT segment_create_source('deadlock')});
ok(wait_until(10, sub { worker_pids($node) == 2 }), 'two workers run');
ok( wait_until(10, sub {
            my $r = post_webhook($port, encode_json_compact(track_message('warm-up')), key => $key, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'the workers know the source');

sub pool_id { my ($round, $n) = @_; return sprintf('r%02d-%04d', $round, $n); }
my %stats_before = map { my ($worker, @counts) = split /\|/; ($worker => \@counts) }
  split /\n/, sql('SELECT worker, batches_committed, events_stored, duplicates FROM segment_webhook_stats');

my $work_dir = PostgreSQL::Test::Utils::tempdir();

# The start of each round: the parent holds an exclusive lock on the round's file until every client is ready,
# then releases it, and the clients, blocked on a shared lock of it, all send at once.
my @round_locks;
for my $round (1 .. $rounds)
{
    open my $lock, '>', "$work_dir/round-$round.lock" or die "cannot create a lock file: $!";
    flock($lock, LOCK_EX) or die "cannot lock: $!";
    push @round_locks, $lock;
}

# One client: in each round one batch of $batch_size messageIds of that round's pool, in an order of its own,
# ready before the round starts. A new connection every second round.
sub run_client
{
    my ($client) = @_;
    srand($$ ^ int(time * 1000));
    close $_ for @round_locks;    # the parent's locks, not ours
    open my $out, '>', "$work_dir/client-$client.out" or POSIX::_exit(2);
    $out->autoflush(1);
    my $connection;
    for my $round (1 .. $rounds)
    {
        my @ids = (shuffle(1 .. $pool_size))[ 0 .. $batch_size - 1 ];
        my $body = encode_json_compact(
            [ map { track_message(pool_id($round, $_)) } @ids ]);    # every client sends the same messages
        $connection = undef if $round % 2;
        $connection //= http_connect($port, timeout => 30);

        open my $ready, '>', "$work_dir/ready-$round-$client" or POSIX::_exit(2);
        close $ready;
        open my $start, '<', "$work_dir/round-$round.lock" or POSIX::_exit(2);
        flock($start, LOCK_SH) or POSIX::_exit(2);
        close $start;
        my $response;
        if ($connection
            && $connection->send(build_request($port, 'POST', "/v1/webhook?writeKey=$key",
                    headers => [ [ 'Content-Type', 'application/json' ] ], body => $body)))
        {
            $response = $connection->read_response;
        }
        $connection = undef unless $response;
        my $answer = decode_json_body($response) // {};
        if ($response && $response->{status} == 200)
        {
            print $out join(' ', 'ok', $round, $answer->{accepted} // -1, $answer->{duplicates} // -1,
                $answer->{rejected} // -1, map { pool_id($round, $_) } @ids), "\n";
        }
        else
        {
            print $out "fail $round "
              . ($response ? "$response->{status} " . error_code($response) : 'no answer') . "\n";
        }
    }
    print $out "done\n";
    close $out;
    POSIX::_exit(0);
}

my %children;
for my $client (1 .. $clients)
{
    my $pid = fork();
    die "fork failed: $!" unless defined $pid;
    run_client($client) if $pid == 0;
    $children{$pid} = $client;
}
# Start each round when every client still running is ready for it (or after 30 s), then wait for the clients.
my $deadline = time + 120;
for my $round (1 .. $rounds)
{
    wait_until(30, sub {
        while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) { delete $children{$pid}; }
        !grep { !-e "$work_dir/ready-$round-$children{$_}" } keys %children;
    });
    close $round_locks[ $round - 1 ];
}
while (%children && time < $deadline)
{
    my $pid = waitpid(-1, POSIX::WNOHANG());
    if ($pid > 0) { delete $children{$pid}; next; }
    usleep(50_000);
}
ok(!%children, "all $clients clients finished in time");
for my $pid (keys %children)
{
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# What the clients were told.
my (@failures, @bad_counts, %sent, %accepted, %duplicates, $answers, $done);
for my $client (1 .. $clients)
{
    open my $in, '<', "$work_dir/client-$client.out" or next;
    while (my $line = <$in>)
    {
        chomp $line;
        if ($line =~ /^ok (\d+) (-?\d+) (-?\d+) (-?\d+) (.*)$/)
        {
            my ($round, $accepted, $duplicates, $rejected, @ids) = ($1, $2, $3, $4, split / /, $5);
            $answers++;
            $sent{$_}++ for @ids;
            $accepted{$round} += $accepted;
            $duplicates{$round} += $duplicates;
            push @bad_counts, "client $client round $round: $accepted + $duplicates + $rejected"
              unless $accepted + $duplicates == @ids && $rejected == 0;
        }
        elsif ($line =~ /^fail (.*)$/) { push @failures, "client $client round $1"; }
        elsif ($line eq 'done') { $done++; }
    }
    close $in;
}
is($done, $clients, 'every client ran to the end');
is_deeply(\@failures, [], 'every batch was answered 200');
is($answers, $clients * $rounds, 'every batch was answered');
is_deeply(\@bad_counts, [], 'each answer counts every message of its batch as accepted or duplicate');

my $log = slurp_file($node->logfile);
unlike($log, qr/deadlock detected/, 'the log has no "deadlock detected"');

# What the database holds.
my %stored;
for my $row (split /\n/, sql(q{SELECT message_id, count(*) FROM segment_events WHERE message_id ~ '^r\d\d-' GROUP BY 1}))
{
    my ($id, $count) = split /\|/, $row;
    $stored{$id} = $count;
}
my @not_once = grep { ($stored{$_} // 0) != 1 } sort keys %sent;
is_deeply(\@not_once, [], 'each messageId sent is stored exactly once');
is_deeply([ grep { !$sent{$_} } sort keys %stored ], [], 'nothing else is stored');
is(sql('SELECT count(*) FROM segment_rejected'), '0', 'nothing was dead-lettered')
  or diag(sql(q{SELECT string_agg(DISTINCT reason || ': ' || coalesce(detail, ''), E'\n') FROM segment_rejected}));
my (@accepted_per_round, @distinct_per_round, @sent_minus_distinct, @duplicates_per_round);
for my $round (1 .. $rounds)
{
    my @of_round = grep { /^r\Q@{[sprintf '%02d', $round]}\E-/ } keys %sent;
    push @distinct_per_round, scalar @of_round;
    push @accepted_per_round, $accepted{$round} // 0;
    push @sent_minus_distinct, sum0(map { $sent{$_} } @of_round) - @of_round;
    push @duplicates_per_round, $duplicates{$round} // 0;
}
is_deeply(\@accepted_per_round, \@distinct_per_round,
    'in each round every distinct messageId was accepted exactly once');
is_deeply(\@duplicates_per_round, \@sent_minus_distinct, 'and every other copy counted as a duplicate');

my %stats_after = map { my ($worker, @counts) = split /\|/; ($worker => \@counts) }
  split /\n/, sql('SELECT worker, batches_committed, events_stored, duplicates FROM segment_webhook_stats');
my @committed_by = map { ($stats_after{$_}[0] // 0) - ($stats_before{$_}[0] // 0) } 0, 1;
ok($committed_by[0] > 0 && $committed_by[1] > 0,
    "both workers committed batches of the test ($committed_by[0] and $committed_by[1])");
is(sum0(map { $stats_after{$_}[1] - ($stats_before{$_}[1] // 0) } keys %stats_after), scalar keys %sent,
    'segment_webhook_stats: events stored = distinct messageIds');
is(sum0(map { $stats_after{$_}[2] - ($stats_before{$_}[2] // 0) } keys %stats_after),
    sum0(values %sent) - scalar keys %sent,
    'segment_webhook_stats: duplicates = copies sent beyond the first');

is($session->query_safe('SELECT 1'), '1', 'the session opened at the start is still connected');
$session->quit;
$log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no process was terminated by a signal');
unlike($log, qr/reinitializing/, 'the server never reinitialized');

$node->stop;
done_testing();
