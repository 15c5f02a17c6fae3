# The Segment tracking API as the SDKs call it: per-type paths with the type implied, /v1/batch and /v1/import
# envelopes, newline-delimited JSON, gzip and deflate bodies (and a zip bomb), CORS for browsers, and context.ip
# filled from the connection (or X-Forwarded-For behind a trusted proxy).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use Compress::Zlib qw(compress);
use IO::Compress::Gzip qw(gzip $GzipError);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('tracking_api');
my $key = $node->safe_psql('postgres', q{SELECT segment_create_source('sdk')});
sub sql { return $node->safe_psql('postgres', $_[0]); }

sub post_path
{
    my ($path, $body, %options) = @_;
    return post_webhook($port, $body, key => $key, key_in => 'basic', path => $path, %options);
}

sub counts
{
    my ($response) = @_;
    my $body = decode_json_body($response) // {};
    return join(',', map { $body->{$_} // '-' } qw(accepted duplicates rejected));
}

# --- Per-type endpoints: the type is implied by the path -------------------------------------------------------
my %calls = (
    track => { event => 'Order Completed', userId => 'u1' },
    identify => { userId => 'u1', traits => { plan => 'pro' } },
    page => { name => 'Home', anonymousId => 'a1' },
    screen => { name => 'Cart', userId => 'u1' },
    group => { groupId => 'g1', userId => 'u1' },
    alias => { previousId => 'a1', userId => 'u1' },
);
for my $type (sort keys %calls)
{
    for my $path ("/v1/$type", '/v1/' . substr($type, 0, 1))
    {
        my $message = { %{ $calls{$type} }, messageId => "path-$path" };
        my $response = post_path($path, encode_json_compact($message));
        is($response && $response->{status}, 200, "POST $path: 200");
        is(counts($response), '1,0,0', "POST $path: one event stored");
        is(sql(qq{SELECT type FROM segment_events WHERE message_id = 'path-$path'}), $type, "POST $path: type $type");
    }
}

# A message whose own type differs from the path's is dead-lettered, not stored under either type.
my $mismatch = post_path('/v1/track', encode_json_compact({ type => 'page', name => 'P', userId => 'u', messageId => 'mismatch-1' }));
is($mismatch && $mismatch->{status}, 200, 'type mismatch: answered (the message is kept in the dead letter)');
is(counts($mismatch), '0,0,1', 'type mismatch: counted as rejected');
is(sql(q{SELECT reason FROM segment_rejected WHERE message_id = 'mismatch-1'}), 'type_mismatch', 'type mismatch: reason');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'mismatch-1'}), '0', 'type mismatch: not stored');

# --- /v1/batch and /v1/import: envelope, write key in the body, top-level fields inherited --------------------
my $envelope = encode_json_compact({
    batch => [ { type => 'track', event => 'A', userId => 'u2', messageId => 'env-1' },
               { type => 'identify', userId => 'u2', messageId => 'env-2', context => { locale => 'de-DE' } } ],
    context => { library => { name => 'analytics-python', version => '2.3.2' } },
    sentAt => '2024-05-01T10:00:00Z',
    writeKey => $key,
});
my $response = post_webhook($port, $envelope, path => '/v1/batch');
is(counts($response), '2,0,0', '/v1/batch with the write key in the body');
is(sql(q{SELECT string_agg(coalesce(payload #>> '{context,library,name}', '-'), ',' ORDER BY message_id) FROM segment_events WHERE message_id LIKE 'env-%'}),
    'analytics-python,-', 'the envelope context applies only to items without their own context');
is(sql(q{SELECT bool_and(NOT payload ? 'writeKey') FROM segment_events WHERE message_id LIKE 'env-%'}), 't',
    'the write key is not stored');

# --- Newline-delimited JSON -------------------------------------------------------------------------------------
my $lines = join("\n", map { encode_json_compact({ type => 'track', event => 'Line', userId => 'u3', messageId => "ndjson-$_" }) } 1 .. 3) . "\n";
is(counts(post_path('/v1/import', $lines)), '3,0,0', 'NDJSON on /v1/import: three events');
is(counts(post_webhook($port, $lines, key => $key)), '0,3,0', 'the same NDJSON on /v1/webhook: three duplicates');

# --- Compressed bodies -------------------------------------------------------------------------------------------
my $plain = encode_json_compact({ batch => [ map { { type => 'track', event => 'Zipped', userId => 'u4', messageId => "gzip-$_" } } 1 .. 50 ] });
my $gzipped;
gzip(\$plain => \$gzipped) or die "gzip failed: $GzipError";
$response = post_path('/v1/batch', $gzipped, headers => [ [ 'Content-Encoding', 'gzip' ] ]);
is(counts($response), '50,0,0', 'a gzip body is decoded');
$response = post_path('/v1/batch', compress(encode_json_compact({ type => 'track', event => 'Deflated', userId => 'u4', messageId => 'deflate-1' })),
    headers => [ [ 'Content-Encoding', 'deflate' ] ]);
is(counts($response), '1,0,0', 'a deflate body is decoded');
$response = post_path('/v1/batch', 'not gzip at all', headers => [ [ 'Content-Encoding', 'gzip' ] ]);
is($response && $response->{status}, 400, 'a corrupt gzip body: 400');
is(error_code($response), 'invalid_encoding', 'a corrupt gzip body: invalid_encoding');
$response = post_path('/v1/batch', $plain, headers => [ [ 'Content-Encoding', 'br' ] ]);
is($response && $response->{status}, 415, 'an unknown Content-Encoding: 415');

# A zip bomb: a small body that expands past max_request_size is refused, and the worker lives on.
$node->append_conf('postgresql.conf', "segment_webhook.max_request_size = '1MB'");
$node->reload;
my $zeros = '[' . ('0,' x (4 * 1024 * 1024)) . '0]';
my $bomb;
gzip(\$zeros => \$bomb) or die "gzip failed: $GzipError";
ok(length($bomb) < 200 * 1024, 'the bomb is small (' . length($bomb) . ' bytes)');
ok(wait_until(10, sub {
    my $r = post_path('/v1/batch', $bomb, headers => [ [ 'Content-Encoding', 'gzip' ] ], quiet => 1);
    return $r && $r->{status} == 413;
}), 'a body that decompresses past max_request_size: 413');
is(counts(post_path('/v1/track', encode_json_compact({ event => 'After Bomb', userId => 'u5', messageId => 'after-bomb' }))),
    '1,0,0', 'the worker serves on after the bomb');

# Deep nesting neither crashes the worker nor is stored as an event: valid JSON that Postgres refuses (stack depth)
# is a dead letter of its own (200, rejected 1), unbalanced brackets are not JSON at all (400).
{
    my $r = post_path('/v1/batch', '[' x 200000 . ']' x 200000);
    is($r && $r->{status}, 200, 'a body nested 400000 bytes deep: 200');
    is(counts($r), '0,0,1', 'a body nested 400000 bytes deep: its one message dead-lettered');
    $r = post_path('/v1/batch', '[' x 200000);
    is($r && $r->{status}, 400, 'unbalanced brackets 200000 deep: 400');
    is(error_code($r), 'invalid_json', 'unbalanced brackets: invalid_json');
}
is(counts(post_path('/v1/track', encode_json_compact({ event => 'After Deep', userId => 'u5', messageId => 'after-deep' }))),
    '1,0,0', 'the worker serves on after deeply nested bodies');

# --- Browsers: CORS ----------------------------------------------------------------------------------------------
my $preflight = http_request($port, 'OPTIONS', '/v1/t',
    headers => [ [ 'Origin', 'https://shop.example' ], [ 'Access-Control-Request-Method', 'POST' ],
                 [ 'Access-Control-Request-Headers', 'content-type' ] ]);
is($preflight && $preflight->{status}, 204, 'preflight: 204');
is($preflight->{headers}{'access-control-allow-origin'}, '*', 'preflight: any origin by default');
like($preflight->{headers}{'access-control-allow-methods'} // '', qr/POST/, 'preflight: POST allowed');
like($preflight->{headers}{'access-control-allow-headers'} // '', qr/content-type/i, 'preflight: the requested headers allowed');

my $browser_body = encode_json_compact({ event => 'Clicked', anonymousId => 'browser-anon', messageId => 'browser-1', writeKey => $key });
$response = post_webhook($port, $browser_body, path => '/v1/t', content_type => 'text/plain',
    headers => [ [ 'Origin', 'https://shop.example' ] ]);
is(counts($response), '1,0,0', 'text/plain with the write key in the body, from a browser origin');
is($response->{headers}{'access-control-allow-origin'}, '*', 'the answer carries Access-Control-Allow-Origin');

$node->append_conf('postgresql.conf', "segment_webhook.cors_origins = 'https://shop.example, https://www.shop.example'");
$node->reload;
ok(wait_until(10, sub {
    my $r = post_webhook($port, $browser_body, path => '/v1/t', content_type => 'text/plain',
        headers => [ [ 'Origin', 'https://evil.example' ] ], quiet => 1);
    return $r && $r->{status} == 403;
}), 'an origin outside segment_webhook.cors_origins: 403');
$response = post_webhook($port, encode_json_compact({ event => 'Clicked', anonymousId => 'b', messageId => 'browser-2', writeKey => $key }),
    path => '/v1/t', content_type => 'text/plain', headers => [ [ 'Origin', 'https://www.shop.example' ] ]);
is(counts($response), '1,0,0', 'a listed origin is served');
is($response->{headers}{'access-control-allow-origin'}, 'https://www.shop.example', 'the listed origin is echoed');
is($response->{headers}{'vary'}, 'Origin', 'with Vary: Origin');

# --- context.ip ----------------------------------------------------------------------------------------------------
post_path('/v1/track', encode_json_compact({ event => 'Ip', userId => 'u6', messageId => 'ip-1' }),
    headers => [ [ 'X-Forwarded-For', '198.51.100.23' ] ]);
post_path('/v1/track', encode_json_compact({ event => 'Ip', userId => 'u6', messageId => 'ip-2', context => { ip => '203.0.113.5' } }));
post_webhook($port, encode_json_compact(track_message('ip-webhook')), key => $key);
is(sql(q{SELECT string_agg(message_id || '=' || coalesce(payload #>> '{context,ip}', '-'), ',' ORDER BY message_id) FROM segment_events WHERE message_id LIKE 'ip-%'}),
    'ip-1=127.0.0.1,ip-2=203.0.113.5,ip-webhook=-',
    'context.ip: the connection address when missing, the message\'s own when given, untouched on webhooks');
$node->append_conf('postgresql.conf', "segment_webhook.trust_proxy = on");
$node->reload;
ok(wait_until(10, sub {
    my $id = 'ip-proxy-' . int(rand(1e9));
    post_path('/v1/track', encode_json_compact({ event => 'Ip', userId => 'u6', messageId => $id }),
        headers => [ [ 'X-Forwarded-For', '198.51.100.23, 10.0.0.2' ] ], quiet => 1);
    return sql(qq{SELECT payload #>> '{context,ip}' FROM segment_events WHERE message_id = '$id'}) eq '198.51.100.23';
}), 'with trust_proxy, context.ip comes from X-Forwarded-For');

# --- What the worker did, from SQL ---------------------------------------------------------------------------------
my ($stored_by_worker, $events) = split /\|/, sql(q{
    SELECT (SELECT sum(events_stored) FROM segment_webhook_stats), (SELECT count(*) FROM segment_events)});
is($stored_by_worker, $events, 'segment_webhook_stats counts every stored event');
is(sql(q{SELECT requests >= 30 AND request_errors >= 4 AND batches_committed > 0 AND bytes_received > 0
         AND last_commit_at IS NOT NULL AND pid = (SELECT pid FROM pg_stat_activity WHERE backend_type = 'segment_webhook worker')
         FROM segment_webhook_stats WHERE worker = 0}), 't', 'segment_webhook_stats reports requests, errors, batches and the worker');

$node->stop;
done_testing();
