# Bounded work before authentication: an unknown write key in the URL or the Authorization header is refused as
# soon as the request head arrives, before the body is read or decompressed; the bytes held by unanswered
# requests are capped (503 server_busy with Retry-After past segment_webhook.max_buffered_bytes); and a client
# that pipelines requests without reading the answers cannot make the worker's memory grow.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use IO::Select;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Time::HiRes qw(time usleep);

my ($node, $port) = start_webhook_node('bounded_work',
    conf => "segment_webhook.max_request_size = '64MB'\n"
      . "segment_webhook.max_buffered_bytes = '1MB'\n"
      . "segment_webhook.retry_after = 7\n"
      . "segment_webhook.read_timeout = '20s'\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $key = sql(q{SELECT segment_create_source('bounded')});
my $pid = (worker_pids($node))[0];

sub rss_kb
{
    my $status = slurp_file("/proc/$pid/status");
    return $status =~ /^VmRSS:\s+(\d+) kB/m ? $1 : 0;
}

# --- Unknown keys are refused from the head ------------------------------------------------------------------------
for my $case ([ 'query', "/v1/webhook?writeKey=unknown-key-0123456789", [] ],
    [ 'Bearer', '/v1/batch', [ [ 'Authorization', 'Bearer unknown-key-0123456789' ] ] ],
    [ 'Basic, gzip', '/v1/batch',
        [ [ 'Authorization', basic_auth('unknown-key-0123456789') ], [ 'Content-Encoding', 'gzip' ] ] ])
{
    my ($name, $target, $headers) = @$case;
    my $connection = http_connect($port, timeout => 5);
    # Only the head of a 50 MB request: the answer must come without the body.
    $connection->send(build_request($port, 'POST', $target,
        headers => [ [ 'Content-Type', 'application/json' ], @$headers ], content_length => 50_000_000));
    my $response = $connection->read_response(timeout => 5);
    is($response && $response->{status}, 401, "unknown key ($name): 401 before the body is sent");
    is(error_code($response), 'invalid_write_key', "unknown key ($name): invalid_write_key");
    like($response && $response->{headers}{connection}, qr/close/i, "unknown key ($name): the connection closes");
    $connection->close;
}
{
    # With Expect: 100-continue a refused request never gets the go-ahead.
    my $connection = http_connect($port, timeout => 5);
    $connection->send(build_request($port, 'POST', '/v1/webhook?writeKey=unknown-key-0123456789',
        headers => [ [ 'Expect', '100-continue' ] ], content_length => 50_000_000));
    my $response = $connection->read_response(timeout => 5);
    is($response && $response->{status}, 401, 'Expect: 100-continue with an unknown key: 401, no 100 Continue');
    $connection->close;
}

# --- The cap on bytes held by unanswered requests ------------------------------------------------------------------
{
    my $event = encode_json_compact(track_message('held-1', properties => { pad => 'x' x 800_000 }));
    my $holder = http_connect($port, timeout => 20);
    # A request whose 800 kB body is still arriving holds its bytes: half of it is sent now.
    my $head = build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ], content_length => length $event);
    $holder->send($head . substr($event, 0, 400_000));
    usleep(300_000);
    my $second = encode_json_compact(track_message('held-2', properties => { pad => 'y' x 300_000 }));
    my $response = post_webhook($port, $second, key => $key);
    is($response && $response->{status}, 503, 'past max_buffered_bytes a new request gets 503');
    is(error_code($response), 'server_busy', 'with code server_busy');
    is($response && $response->{headers}{'retry-after'}, '7', 'and Retry-After');
    $holder->send(substr($event, 400_000));
    $response = $holder->read_response;
    is($response && $response->{status}, 200, 'the request already accepted is stored');
    $response = post_webhook($port, $second, key => $key);
    is($response && $response->{status}, 200, 'once it is answered, the refused request goes through');
    is(sql(q{SELECT count(*) FROM segment_events WHERE message_id IN ('held-1', 'held-2')}), '2', 'both stored');
}

# --- Pipelining without reading answers ------------------------------------------------------------------------
{
    my $request = build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ],
        body => encode_json_compact(track_message('pipelined')));
    my $before = rss_kb();
    my $connection = http_connect($port, timeout => 20);
    my $socket = $connection->socket;
    $socket->blocking(0);
    my $chunk = $request x 200;
    my ($sent, $deadline) = (0, time + 8);
    my $select = IO::Select->new($socket);
    while (time < $deadline)
    {
        next unless $select->can_write(0.2);
        my $written = syswrite($socket, $chunk);
        $sent += $written if defined $written && $written > 0;
    }
    my $after = rss_kb();
    my $requests = int($sent / length $request);
    cmp_ok($requests, '>', 1000, "the client pipelined $requests requests without reading an answer");
    cmp_ok($after - $before, '<', 16 * 1024,
        'the worker grew by less than 16 MB (' . int(($after - $before) / 1024) . ' MB)');
    my $other = post_webhook($port, encode_json_compact(track_message('other-client')), key => $key);
    is($other && $other->{status}, 200, 'meanwhile other clients are served');
    $socket->blocking(1);
    $connection->close;
}

is((worker_pids($node))[0], $pid, 'the worker never restarted');
done_testing();
