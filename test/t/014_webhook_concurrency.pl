# Many senders at once: 50 clients each send several signed Actions batches, some on one keep-alive connection,
# some on a new connection per request; afterwards every acknowledged messageId is stored exactly once. Messages
# sent by several clients at the same time (same messageId) are stored once and counted as accepted exactly once.
# Then the same with two workers sharing the port.
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

my ($node, $port) = start_webhook_node('webhook_concurrency');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $secret = 'concurrency-secret';
my $key = sql(qq{SELECT segment_create_source('concurrency', '$secret')});
my $requests_per_client = 5;
my $messages_per_request = 2;
my $shared_ids = 5;
my $work_dir = PostgreSQL::Test::Utils::tempdir();

ok( wait_until(10, sub {
            my $body = encode_json_compact(track_message('warm-up'));
            my $r = post_webhook($port, $body, key => $key, secret => $secret, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'the worker knows the source');

# One client: its own signed batches, then one message that other clients send too. Writes what it was told.
sub run_client
{
    my ($prefix, $client, $go_file) = @_;
    open my $out, '>', "$work_dir/$prefix-$client.out" or POSIX::_exit(2);
    $out->autoflush(1);
    wait_until(20, sub { -e $go_file });
    my $keep_alive = $client % 2 == 0;
    my $connection;
    my $send = sub {
        my ($messages) = @_;
        # Actions batching: an array signed on the bytes of its first element.
        my $body = '[' . join(',', map { encode_json_compact($_) } @$messages) . ']';
        my $request = build_request($port, 'POST', '/v1/webhook',
            headers => [
                [ 'Content-Type', 'application/json' ], [ 'User-Agent', 'Segment (Actions)' ],
                [ 'Authorization', basic_auth($key) ],
                [ 'X-Signature', sign_body($secret, encode_json_compact($messages->[0])) ],
            ],
            body => $body,
            connection => $keep_alive ? undef : 'close');
        $connection = undef unless $keep_alive;
        $connection //= http_connect($port, timeout => 30);
        return undef unless $connection && $connection->send($request);
        my $response = $connection->read_response;
        $connection = undef unless $response;
        return $response;
    };
    for my $request (1 .. $requests_per_client)
    {
        my @messages = map {
            track_message("$prefix-$client-$request-$_", userId => "user-$client",
                properties => { client => $client, request => $request })
        } 1 .. $messages_per_request;
        my $response = $send->(\@messages);
        my $answer = decode_json_body($response) // {};
        if ($response && $response->{status} == 200)
        {
            print $out "ack $_->{messageId}\n" for @messages;
            print $out "counts $answer->{accepted} $answer->{duplicates} $answer->{rejected}\n";
        }
        else
        {
            print $out 'fail ' . ($response ? $response->{status} : 'no answer') . "\n";
        }
    }
    my $shared = "$prefix-shared-" . ($client % $shared_ids);
    my $response = $send->([ track_message($shared, userId => 'shared-user') ]);
    my $answer = decode_json_body($response) // {};
    if ($response && $response->{status} == 200)
    {
        print $out "shared $shared $answer->{accepted} $answer->{duplicates}\n";
    }
    else
    {
        print $out 'fail ' . ($response ? $response->{status} : 'no answer') . "\n";
    }
    print $out "done\n";
    close $out;
    POSIX::_exit(0);
}

# Run $clients clients at once and check what the database holds against what they were told.
sub run_clients
{
    my ($prefix, $clients) = @_;
    my $go_file = "$work_dir/$prefix.go";
    my %children;
    for my $client (1 .. $clients)
    {
        my $pid = fork();
        die "fork failed: $!" unless defined $pid;
        run_client($prefix, $client, $go_file) if $pid == 0;
        $children{$pid} = $client;
    }
    open my $go, '>', $go_file or die "cannot create $go_file: $!";
    close $go;

    my $deadline = time + 60;
    while (%children && time < $deadline)
    {
        my $pid = waitpid(-1, POSIX::WNOHANG());
        if ($pid > 0) { delete $children{$pid}; next; }
        usleep(50_000);
    }
    ok(!%children, "$prefix: all $clients clients finished in time");
    for my $pid (keys %children)
    {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }

    my (@acked, @failures, %shared_accepted, %shared_duplicates, $done, $counts_ok);
    $counts_ok = 1;
    for my $client (1 .. $clients)
    {
        open my $in, '<', "$work_dir/$prefix-$client.out" or next;
        while (my $line = <$in>)
        {
            chomp $line;
            if ($line =~ /^ack (\S+)$/) { push @acked, $1; }
            elsif ($line =~ /^counts (\S+) (\S+) (\S+)$/)
            {
                $counts_ok = 0 unless "$1 $2 $3" eq "$messages_per_request 0 0";
            }
            elsif ($line =~ /^shared (\S+) (\d+) (\d+)$/)
            {
                $shared_accepted{$1} += $2;
                $shared_duplicates{$1} += $3;
            }
            elsif ($line =~ /^fail (.*)$/) { push @failures, "client $client: $1"; }
            elsif ($line eq 'done') { $done++; }
        }
        close $in;
    }
    is($done, $clients, "$prefix: every client ran to the end");
    is_deeply(\@failures, [], "$prefix: every request was answered 200");
    is(scalar @acked, $clients * $requests_per_client * $messages_per_request,
        "$prefix: every message was acknowledged");
    ok($counts_ok, "$prefix: each answer counted its own messages as accepted");

    my %stored;
    for my $row (split /\n/,
        sql(qq{SELECT message_id, count(*) FROM segment_events WHERE message_id LIKE '$prefix-%' GROUP BY 1}))
    {
        my ($id, $count) = split /\|/, $row;
        $stored{$id} = $count;
    }
    my @not_once = grep { ($stored{$_} // 0) != 1 } @acked;
    is_deeply(\@not_once, [], "$prefix: every acknowledged messageId is stored exactly once");
    my %sent = map { $_ => 1 } @acked, map { "$prefix-shared-$_" } 0 .. $shared_ids - 1;
    is_deeply([ grep { !$sent{$_} } sort keys %stored ], [], "$prefix: nothing else is stored");

    my $senders_per_shared = int($clients / $shared_ids);
    is_deeply(
        [ map { $shared_accepted{"$prefix-shared-$_"} // 0 } 0 .. $shared_ids - 1 ],
        [ (1) x $shared_ids ],
        "$prefix: a message sent by several clients at once is accepted exactly once");
    is_deeply(
        [ map { $shared_duplicates{"$prefix-shared-$_"} // 0 } 0 .. $shared_ids - 1 ],
        [ ($senders_per_shared - 1) x $shared_ids ],
        "$prefix: and counted as a duplicate for every other sender");
    is_deeply(
        [ map { $stored{"$prefix-shared-$_"} // 0 } 0 .. $shared_ids - 1 ],
        [ (1) x $shared_ids ],
        "$prefix: each shared message is stored once");
}

run_clients('one-worker', 50);

# Two workers on the same port.
$node->append_conf('postgresql.conf', "segment_webhook.workers = 2\n");
my $offset = log_offset($node);
$node->restart;
for my $worker (0, 1)
{
    ok(defined wait_for_log_within($node, qr/segment_webhook: worker $worker listening on 127\.0\.0\.1:$port\b/,
            $offset, 30),
        "worker $worker listening after the restart");
}
ok(wait_until(10, sub { worker_pids($node) == 2 }), 'two workers are running');
ok( wait_until(10, sub {
            my $body = encode_json_compact(track_message('warm-up-2'));
            my $r = post_webhook($port, $body, key => $key, secret => $secret, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'the workers answer after the restart');
run_clients('two-workers', 30);

is(sql('SELECT count(*) FROM segment_rejected'), '0', 'nothing was dead-lettered');

$node->stop;
done_testing();
