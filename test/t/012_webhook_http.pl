# HTTP/1.1 as clients speak it to the worker: routing (404, 405 with Allow), Host, HTTP/1.0, keep-alive and
# pipelining, chunked bodies, Expect: 100-continue, size limits (413, 431), case-insensitive header names, and
# timeouts: a stalled client gets 408 without holding up the others, an idle keep-alive connection is closed.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Time::HiRes qw(usleep);

my $max_request_size = 65536;
my ($node, $port) = start_webhook_node(
    'webhook_http',
    conf => "segment_webhook.max_request_size = $max_request_size\n"
      . "segment_webhook.read_timeout = 1000\n"
      . "segment_webhook.idle_timeout = 4000\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $key = sql(q{SELECT segment_create_source('http')});
my $signed_key = sql(q{SELECT segment_create_source('http-signed', 'chunk-secret')});
ok( wait_until(10, sub {
            my $r = post_webhook($port, encode_json_compact(track_message('warm-up')), key => $key, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'the worker knows the sources');

sub answer { my ($response) = @_; return decode_json_body($response) // {}; }
sub stored { my ($id) = @_; return sql(qq{SELECT count(*) FROM segment_events WHERE message_id = '$id'}); }

sub is_json_error
{
    my ($response, $status, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($response && $response->{status}, $status, "$name: $status");
    my $body = decode_json_body($response);
    ok( ref $body eq 'HASH'
          && defined $body->{success}
          && !$body->{success}
          && length($body->{error}{code} // '')
          && length($body->{error}{message} // ''),
        "$name: JSON error body")
      or diag(explain($response));
}

# A POST of one track message on an open connection, as bytes.
sub webhook_request
{
    my ($message_id, %options) = @_;
    my $body = encode_json_compact(ref $message_id ? $message_id : track_message($message_id));
    return build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ], body => $body, %options);
}

# --- Routing -------------------------------------------------------------------------------------------------
is_json_error(http_request($port, 'GET', '/nope'), 404, 'unknown path');
is_json_error(post_webhook($port, encode_json_compact(track_message('r-1')), key => $key, path => '/v1/nope'),
    404, 'POST to an unknown path');
my $response = http_request($port, 'GET', "/v1/webhook?writeKey=$key");
is_json_error($response, 405, 'GET /v1/webhook');
like($response->{headers}{allow} // '', qr/\bPOST\b/, 'GET /v1/webhook: Allow names POST');
$response = http_request($port, 'DELETE', "/v1/webhook?writeKey=$key");
is_json_error($response, 405, 'DELETE /v1/webhook');
like($response->{headers}{allow} // '', qr/\bPOST\b/, 'DELETE /v1/webhook: Allow names POST');
$response = http_request($port, 'POST', '/health', body => '{}');
is_json_error($response, 405, 'POST /health');
like($response->{headers}{allow} // '', qr/\bGET\b/, 'POST /health: Allow names GET');
is(stored('r-1'), '0', 'nothing stored from a request to an unknown path');

# --- Host, HTTP/1.0 ----------------------------------------------------------------------------------------------
is_json_error(
    http_request($port, 'POST', "/v1/webhook?writeKey=$key",
        host => undef, body => encode_json_compact(track_message('no-host'))),
    400, 'HTTP/1.1 request without Host');
is(stored('no-host'), '0', 'nothing stored from a request without Host');

my $connection = http_connect($port, timeout => 5);
$connection->send(webhook_request('http10-1', version => '1.0', host => undef));
$response = $connection->read_response;
is($response && $response->{status}, 200, 'HTTP/1.0 request: 200');
is(answer($response)->{accepted}, 1, 'HTTP/1.0 request: stored');
ok($connection->closed_by_server(5), 'HTTP/1.0 without keep-alive: the server closes the connection');
$connection->close;

$connection = http_connect($port, timeout => 5);
$connection->send(webhook_request('http10-2', version => '1.0', host => undef, connection => 'keep-alive'));
$response = $connection->read_response;
is($response && $response->{status}, 200, 'HTTP/1.0 keep-alive: first answer');
ok($connection->send(webhook_request('http10-3', version => '1.0', host => undef, connection => 'keep-alive')),
    'HTTP/1.0 keep-alive: the connection stays open');
$response = $connection->read_response;
is($response && $response->{status}, 200, 'HTTP/1.0 keep-alive: second answer on the same connection');
$connection->close;
is(stored('http10-2') + stored('http10-3'), 2, 'both HTTP/1.0 keep-alive requests stored');

# --- Keep-alive and pipelining --------------------------------------------------------------------------------
$connection = http_connect($port, timeout => 10);
for my $i (1 .. 3)
{
    ok($connection->send(webhook_request("keep-$i")), "keep-alive request $i sent");
    $response = $connection->read_response;
    is($response && $response->{status}, 200, "keep-alive request $i: 200 on the same connection");
}

# Several requests written at once: the answers come back in order.
ok( $connection->send(
        webhook_request('pipe-1')
          . build_request($port, 'GET', '/health')
          . webhook_request('pipe-1')
          . webhook_request([ track_message('pipe-2'), track_message('pipe-3') ])
          . build_request($port, 'GET', '/nope')
          . webhook_request('pipe-4', connection => 'close')),
    'six pipelined requests written at once');
my @pipelined = map { $connection->read_response } 1 .. 6;
is_deeply(
    [ map { $_ ? $_->{status} : 'none' } @pipelined ],
    [ 200, 200, 200, 200, 404, 200 ],
    'pipelined: every request answered');
is_deeply(
    [ map { my $a = answer($_); join('/', map { $a->{$_} // '-' } qw(accepted duplicates status)) } @pipelined ],
    [ '1/0/-', '-/-/ok', '0/1/-', '2/0/-', '-/-/-', '1/0/-' ],
    'pipelined: the answers are in the order of the requests');
ok($connection->closed_by_server(5), 'Connection: close on the last pipelined request closes the connection');
$connection->close;
is(sql(q{SELECT string_agg(message_id, ',' ORDER BY message_id) FROM segment_events WHERE message_id LIKE 'pipe-%'}),
    'pipe-1,pipe-2,pipe-3,pipe-4', 'pipelined messages stored once each');

# --- Header names in any case ------------------------------------------------------------------------------------
my $lower_body = encode_json_compact(track_message('case-1'));
# Every header name in lower case (content_length => undef: the helper adds no Content-Length of its own).
$response = http_request($port, 'POST', '/v1/webhook',
    host => undef,
    headers => [
        [ 'host', "127.0.0.1:$port" ], [ 'content-type', 'application/json' ],
        [ 'content-length', length $lower_body ], [ 'authorization', "Bearer $signed_key" ],
        [ 'x-signature', sign_body('chunk-secret', $lower_body) ],
    ],
    content_length => undef,
    body => $lower_body);
is($response && $response->{status}, 200, 'lower-case header names');
my $upper_body = encode_json_compact(track_message('case-2'));
$response = http_request($port, 'POST', '/v1/webhook',
    host => undef,
    headers => [
        [ 'HOST', "127.0.0.1:$port" ], [ 'CONTENT-TYPE', 'application/json' ],
        [ 'CONTENT-LENGTH', length $upper_body ], [ 'AUTHORIZATION', "Bearer $signed_key" ],
        [ 'X-SIGNATURE', sign_body('chunk-secret', $upper_body) ],
    ],
    content_length => undef,
    body => $upper_body);
is($response && $response->{status}, 200, 'upper-case header names');
is(stored('case-1') + stored('case-2'), 2, 'both stored');

# --- Transfer-Encoding: chunked -----------------------------------------------------------------------------------
my $chunked_message = encode_json_compact([ track_message('chunk-1'), track_message('chunk-2') ]);
my @pieces = (substr($chunked_message, 0, 10), substr($chunked_message, 10, 50), substr($chunked_message, 60));
$response = http_request($port, 'POST', "/v1/webhook?writeKey=$signed_key",
    headers => [
        [ 'Content-Type', 'application/json' ], [ 'Transfer-Encoding', 'chunked' ],
        [ 'X-Signature', sign_body('chunk-secret', $chunked_message) ],
    ],
    body => chunked_body(@pieces));
is($response && $response->{status}, 200, 'chunked body: 200');
is(answer($response)->{accepted}, 2, 'chunked body: both messages stored (signature over the decoded body)');

# A chunked request followed by another on the same connection: the body ended where the chunks said.
$connection = http_connect($port, timeout => 5);
$connection->send(
    build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Transfer-Encoding', 'chunked' ] ],
        body => chunked_body(encode_json_compact(track_message('chunk-3'))))
      . webhook_request('chunk-4'));
my @answers = map { answer($connection->read_response) } 1 .. 2;
is_deeply([ map { $_->{accepted} // 'none' } @answers ], [ 1, 1 ], 'chunked request then a pipelined one');
$connection->close;

# --- Expect: 100-continue -----------------------------------------------------------------------------------------
my $continue_body = encode_json_compact(track_message('continue-1'));
$connection = http_connect($port, timeout => 5);
$connection->send(
    build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ], [ 'Expect', '100-continue' ] ],
        content_length => length $continue_body));
$response = $connection->read_response;
is($response && $response->{status}, 100, 'Expect: 100-continue: interim 100 before the body');
like($response ? $response->{raw} : '', qr{^HTTP/1\.1 100 Continue\r\n}, 'the interim answer is HTTP/1.1 100 Continue');
$connection->send($continue_body);
$response = $connection->read_response;
is($response && $response->{status}, 200, 'Expect: 100-continue: final answer 200');
is(answer($response)->{accepted}, 1, 'Expect: 100-continue: stored');
$connection->close;

# --- Size limits ------------------------------------------------------------------------------------------------
# A body of exactly max_request_size bytes is accepted; one byte more is not.
sub body_of_size
{
    my ($message_id, $size) = @_;
    my $empty = encode_json_compact(track_message($message_id, properties => { padding => '' }));
    return encode_json_compact(
        track_message($message_id, properties => { padding => 'x' x ($size - length $empty) }));
}
my $at_limit = body_of_size('limit-1', $max_request_size);
is(length $at_limit, $max_request_size, 'a body of exactly max_request_size bytes');
$response = post_webhook($port, $at_limit, key => $key);
is($response && $response->{status}, 200, 'a body of max_request_size bytes is accepted');
my $over_limit = body_of_size('limit-2', $max_request_size + 1);
$response = post_webhook($port, $over_limit, key => $key);
is_json_error($response, 413, 'a body one byte over max_request_size');
is(error_code($response), 'request_too_large', 'code request_too_large');

# With a Content-Length over the limit the answer comes before any byte of the body is sent.
$connection = http_connect($port, timeout => 5);
$connection->send(
    build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ],
        content_length => 10 * $max_request_size));
$response = $connection->read_response;
is($response && $response->{status}, 413, 'Content-Length over the limit: 413 without reading the body');
is(error_code($response), 'request_too_large', 'Content-Length over the limit: code request_too_large');
$connection->close;

# Expect: 100-continue over the limit: 413 and no 100 Continue.
$connection = http_connect($port, timeout => 5);
$connection->send(
    build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ], [ 'Expect', '100-continue' ] ],
        content_length => 10 * $max_request_size));
$response = $connection->read_response;
is($response && $response->{status}, 413, 'Expect: 100-continue over the limit: 413 first, no 100 Continue');
$connection->close;

# A chunked body growing over the limit.
$response = http_request($port, 'POST', "/v1/webhook?writeKey=$key",
    headers => [ [ 'Transfer-Encoding', 'chunked' ] ],
    body => chunked_body('[' . encode_json_compact(track_message('limit-3')) . ',"',
        ('x' x 8192) x int($max_request_size / 8192 + 1)));
is_json_error($response, 413, 'chunked body over the limit');
is(stored('limit-2') + stored('limit-3'), 0, 'nothing stored from bodies over the limit');

# Headers over max_header_size (16 kB by default): 431.
$response = post_webhook($port, encode_json_compact(track_message('big-header')),
    key => $key, headers => [ [ 'X-Padding', 'p' x 20000 ] ]);
is($response && $response->{status}, 431, 'headers over max_header_size: 431');
is(stored('big-header'), '0', 'nothing stored from a request with oversized headers');

# --- Timeouts: a stalled client does not hold up others and gets 408 ---------------------------------------------
my $stalled = http_connect($port, timeout => 10);
$stalled->send("POST /v1/webhook?writeKey=$key HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le");
my $stalled_body = http_connect($port, timeout => 10);
$stalled_body->send(
    build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ],
        content_length => 200)
      . '{"type":"track","event":"Stalled","userId":"u","messageId":"stalled-1"');
$response = post_webhook($port, encode_json_compact(track_message('meanwhile-1')), key => $key, timeout => 5);
is($response && $response->{status}, 200, 'another client is served while two clients stall');
ok(!$stalled->has_pending_data && !$stalled_body->has_pending_data,
    'the stalled clients are still waiting when the other one is answered');
$response = $stalled->read_response(timeout => 10);
is($response && $response->{status}, 408, 'headers that stop arriving: 408');
ok($stalled->closed_by_server(5), 'headers that stop arriving: the connection is closed');
$response = $stalled_body->read_response(timeout => 10);
is($response && $response->{status}, 408, 'a body that stops arriving: 408');
ok($stalled_body->closed_by_server(5), 'a body that stops arriving: the connection is closed');
$_->close for $stalled, $stalled_body;
is(stored('stalled-1'), '0', 'nothing stored from a stalled body');

# --- An idle keep-alive connection outlives read_timeout, and is closed after idle_timeout ------------------------
$connection = http_connect($port, timeout => 10);
$connection->send(webhook_request('idle-1'));
$response = $connection->read_response;
is($response && $response->{status}, 200, 'first request on a connection that then stays idle');
sleep 2;    # longer than read_timeout (1 s), shorter than idle_timeout (4 s)
ok($connection->send(webhook_request('idle-2')), 'after 2 s idle the connection is still open');
$response = $connection->read_response;
is($response && $response->{status}, 200, 'a request after 2 s idle is answered');
ok($connection->closed_by_server(15), 'the connection is closed after idle_timeout');
$connection->close;

$node->stop;
done_testing();
