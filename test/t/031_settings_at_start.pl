# Every segment_webhook.* setting written in postgresql.conf before the server starts applies from the start,
# without a reload. (MarkGUCPrefixReserved, called before some settings were defined, once discarded the pending
# values of cors_origins, trust_proxy and direct_insert until the next reload.)
#
# One node starts with a value other than the default for every setting the library defines: SHOW and
# pg_settings report each (from the configuration file), and then the effect of each that can be seen over HTTP
# or in the catalog: two workers, the listen address, the database and role they connect to, CORS, X-Forwarded-For,
# the body, head and buffer limits, max_connections, the read and idle timeouts, lock_timeout and Retry-After,
# and the INSERT path (direct_insert = off draws ids in (source_id, message_id) order, the direct path in arrival
# order). batch_size and batch_delay are checked through SHOW only: their effect is not visible in one request.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Time::HiRes qw(time usleep);

# --- A database and a role for the workers, made while the server runs with the defaults ------------------------
my ($node, $port) = start_webhook_node('settings_at_start', create_extension => 0);
my $first_start_log = slurp_file($node->logfile);
my $session = $node->background_psql('postgres');    # dies with the server, should it crash-restart
$node->safe_psql('postgres', 'CREATE DATABASE ingestdb');
$node->safe_psql('ingestdb', q{
    CREATE SCHEMA ingest;
    CREATE EXTENSION segment_webhook SCHEMA ingest;
    CREATE ROLE ingester LOGIN;
    GRANT USAGE ON SCHEMA ingest TO ingester;
    GRANT SELECT ON ingest.segment_sources TO ingester;
    GRANT INSERT ON ingest.segment_events, ingest.segment_rejected TO ingester;
    GRANT SELECT (source_id, message_id) ON ingest.segment_events TO ingester;
    GRANT SELECT ON ingest.segment_suppressions TO ingester;
    GRANT INSERT (source_id, user_id) ON ingest.segment_deletions TO ingester;
    GRANT INSERT, SELECT (source_id, message_id, event_id) ON ingest.segment_event_keys TO ingester;
    GRANT USAGE ON SEQUENCE ingest.segment_events_id_seq TO ingester;
});
my $key = $node->safe_psql('ingestdb', q{SELECT ingest.segment_create_source('settings')});

# Every setting, with a value other than its default, and what SHOW says for it.
my $max_request_size = 2 * 1024 * 1024;
my $max_buffered_bytes = 1024 * 1024;
my $max_header_size = 4096;
my $max_connections = 3;
my $admin_port = PostgreSQL::Test::Cluster::get_free_port();
my %settings = (
    workers => [ '2', '2' ],
    listen_addresses => [ q{'127.0.0.1'}, '127.0.0.1' ],
    port => [ $port, $port ],
    database => [ q{'ingestdb'}, 'ingestdb' ],
    role => [ q{'ingester'}, 'ingester' ],
    batch_size => [ '250', '250' ],
    batch_delay => [ q{'20ms'}, '20ms' ],
    max_request_size => [ q{'2MB'}, '2MB' ],
    max_buffered_bytes => [ q{'1MB'}, '1MB' ],
    max_header_size => [ q{'4kB'}, '4kB' ],
    max_connections => [ $max_connections, "$max_connections" ],
    read_timeout => [ q{'1500ms'}, '1500ms' ],
    idle_timeout => [ q{'3s'}, '3s' ],
    retry_after => [ q{'7s'}, '7s' ],
    lock_timeout => [ q{'300ms'}, '300ms' ],
    cors_origins => [ q{'http://allowed.example'}, 'http://allowed.example' ],
    trust_proxy => [ 'on', 'on' ],
    direct_insert => [ 'off', 'off' ],
    notify => [ 'off', 'off' ],
    warehouse => [ 'off', 'off' ],
    warehouse_max_columns => [ '20', '20' ],
    warehouse_max_relations => [ '3', '3' ],
    dedup_window => [ q{'2d'}, '2d' ],
    partition_premake => [ '3', '3' ],
    reorder_partitions => [ 'off', 'off' ],
    admin_port => [ $admin_port, "$admin_port" ],
    admin_listen_addresses => [ q{'127.0.0.1'}, '127.0.0.1' ],
    admin_token => [ q{'token-at-start'}, 'token-at-start' ],);

# Settings whose effect from the start another test checks, because it changes what this test's raw HTTP client
# must speak: with ssl_cert_file and ssl_key_file the port speaks HTTPS only (047_tls.pl starts its node with them
# in postgresql.conf and checks that they apply from the start).
my %checked_elsewhere = (ssl_cert_file => '047_tls.pl', ssl_key_file => '047_tls.pl');

# The list above must name every setting the library defines, so that a new one is not forgotten here.
my $settings_source = slurp_file("$FindBin::RealBin/../../src/pg/settings.cc");
my @defined_in_source = sort($settings_source =~ /"segment_webhook\.(\w+)"/g);
is_deeply(\@defined_in_source, [ sort(keys %settings, keys %checked_elsewhere) ],
    'the test sets every setting of src/pg/settings.cc (or names the test that checks it)');
is_deeply(
    [ split /\n/, $node->safe_psql('postgres',
            q{SELECT substr(name, 17) FROM pg_settings WHERE name LIKE 'segment\_webhook.%' ORDER BY 1}) ],
    [ sort(keys %settings, keys %checked_elsewhere) ],
    'the test sets every segment_webhook setting the server knows (or names the test that checks it)');

$node->append_conf('postgresql.conf',
    join('', map { "segment_webhook.$_ = $settings{$_}[0]\n" } sort keys %settings));
is($session->query_safe('SELECT 1'), '1', 'the session opened at the first start is still connected');
$session->quit;
my $offset = log_offset($node);
$node->restart;    # a new postmaster: postgresql.conf is read before the library is loaded
$session = $node->background_psql('postgres');

# --- SHOW, right after the start, before anything could reload ----------------------------------------------------
for my $name (sort keys %settings)
{
    is($node->safe_psql('postgres', "SHOW segment_webhook.$name"), $settings{$name}[1],
        "SHOW segment_webhook.$name after the start");
}
my $elsewhere = join(', ', map { "'segment_webhook.$_'" } sort keys %checked_elsewhere);
is( $node->safe_psql('postgres',
        qq{SELECT count(*) FROM pg_settings WHERE name LIKE 'segment\\_webhook.%' AND source <> 'configuration file'
           AND name NOT IN ($elsewhere)}),
    '0',
    'every segment_webhook setting set here comes from the configuration file');

sub sql { return $node->safe_psql('ingestdb', $_[0]); }
sub answer { my ($response) = @_; return decode_json_body($response) // {}; }

# --- workers, listen_addresses, database, role ----------------------------------------------------------------------
for my $worker (0, 1)
{
    ok(defined wait_for_log_within($node, qr/segment_webhook: worker $worker listening on 127\.0\.0\.1:$port\b/,
            $offset, 30),
        "workers = 2: worker $worker listens");
}
ok(defined wait_for_log_within($node, qr/segment_webhook: extension found, ingesting/, $offset, 30),
    'database = ingestdb: the workers find the extension there');
ok(wait_until(10, sub { worker_pids($node) == 2 }), 'workers = 2: two workers in pg_stat_activity');
my @listening = slurp_file($node->logfile, $offset) =~ /segment_webhook: worker \d+ listening on (\S+)/g;
is_deeply([ sort @listening ], [ "127.0.0.1:$port", "127.0.0.1:$port" ],
    q{listen_addresses = '127.0.0.1': each worker listens there only});
my @default_listening = $first_start_log =~ /segment_webhook: worker \d+ listening on (\S+)/g;
note('with the default listen_addresses (localhost) the worker listened on: ' . join(', ', @default_listening));
is( $node->safe_psql('postgres',
        q{SELECT string_agg(datname || '/' || usename, ',') FROM pg_stat_activity
          WHERE backend_type = 'segment_webhook worker'}),
    'ingestdb/ingester,ingestdb/ingester',
    'database and role: the workers are connected to ingestdb as ingester');

ok( wait_until(10, sub {
            my $r = post_webhook($port, encode_json_compact(track_message('warm-up')), key => $key, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'the workers ingest');
is(sql(q{SELECT count(*) FROM ingest.segment_events WHERE message_id = 'warm-up'}), '1',
    'database = ingestdb: the event is stored in ingestdb');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'segment_webhook'}), '0',
    'and the database postgres has no extension to store it in');

# --- admin_port, admin_listen_addresses, admin_token ------------------------------------------------------------------
ok(defined wait_for_log_within($node, qr/segment_webhook: worker 0 serves the admin listener on 127\.0\.0\.1:$admin_port\b/,
        $offset, 30),
    'admin_port and admin_listen_addresses: worker 0 serves the admin listener there');
is_deeply([ slurp_file($node->logfile, $offset) =~ /worker (\d+) serves the admin listener/g ], [0],
    'only worker 0 serves it');
my $admin = http_request($admin_port, 'GET', '/metrics', headers => [ [ 'Authorization', 'Bearer token-at-start' ] ]);
is($admin && $admin->{status}, 200, 'admin_token: the token set at start is accepted');
$admin = http_request($admin_port, 'GET', '/metrics');
is($admin && $admin->{status}, 401, 'admin_token: a request without it gets 401');
# The workers connect as role ingester here, which may not read segment_events' payloads: the page's query runs as
# the extension's owner (in schema ingest), not as the worker's role.
$admin = http_request($admin_port, 'GET', '/api/recent', headers => [ [ 'Authorization', 'Bearer token-at-start' ] ]);
is($admin && $admin->{status}, 200, "the admin page's data is read as the extension's owner, not as role ingester")
  or diag($admin && $admin->{body});

# --- cors_origins --------------------------------------------------------------------------------------------------
my $response = post_webhook($port, encode_json_compact(track_message('cors-evil')),
    key => $key, path => '/v1/track', headers => [ [ 'Origin', 'http://evil.example' ] ]);
is($response && $response->{status}, 403, 'cors_origins: another Origin gets 403');
is(error_code($response), 'origin_not_allowed', 'cors_origins: code origin_not_allowed');
$response = post_webhook($port, encode_json_compact(track_message('cors-allowed')),
    key => $key, path => '/v1/track', headers => [ [ 'Origin', 'http://allowed.example' ] ]);
is($response && $response->{status}, 200, 'cors_origins: the allowed Origin gets 200');
is($response && $response->{headers}{'access-control-allow-origin'}, 'http://allowed.example',
    'cors_origins: Access-Control-Allow-Origin names the allowed origin');
is(sql(q{SELECT string_agg(message_id, ',') FROM ingest.segment_events WHERE message_id LIKE 'cors-%'}),
    'cors-allowed', 'cors_origins: only the allowed origin was stored');

# --- trust_proxy ---------------------------------------------------------------------------------------------------
$response = post_webhook($port, encode_json_compact(track_message('proxied')),
    key => $key, path => '/v1/track', headers => [ [ 'X-Forwarded-For', '203.0.113.7, 10.0.0.1' ] ]);
is($response && $response->{status}, 200, 'trust_proxy: a request with X-Forwarded-For is stored');
is(sql(q{SELECT payload->'context'->>'ip' FROM ingest.segment_events WHERE message_id = 'proxied'}),
    '203.0.113.7', 'trust_proxy = on: context.ip is the first X-Forwarded-For address');

# --- notify = off: no NOTIFY segment_events after a batch ---------------------------------------------------------
{
    my $listener = $node->background_psql('ingestdb');
    $listener->query_safe('LISTEN segment_events');
    $response = post_webhook($port, encode_json_compact(track_message('not-notified')), key => $key);
    is(answer($response)->{accepted}, 1, 'notify = off: the event is stored');
    unlike($listener->query_safe('SELECT 1'), qr/Asynchronous notification/, 'notify = off: nothing is notified');
    $listener->quit;
}

# --- direct_insert = off: the INSERT path writes in (source_id, message_id) order -------------------------------
sub ids_in_order
{
    my ($first, $second) = @_;
    return sql(qq{SELECT (SELECT id FROM ingest.segment_events WHERE message_id = '$first')
                       < (SELECT id FROM ingest.segment_events WHERE message_id = '$second')});
}
for my $n (1 .. 4)
{
    $response = post_webhook($port,
        encode_json_compact([ track_message("insert-$n-b"), track_message("insert-$n-a") ]), key => $key);
    is(answer($response)->{accepted}, 2, "direct_insert = off: batch $n [b, a] stored");
    is(ids_in_order("insert-$n-a", "insert-$n-b"), 't',
        "direct_insert = off: batch $n: id(a) < id(b), key order, not arrival order");
}

# --- max_request_size, max_header_size, max_buffered_bytes ---------------------------------------------------------
sub body_of_size
{
    my ($message_id, $size) = @_;
    my $empty = encode_json_compact(track_message($message_id, properties => { padding => '' }));
    return encode_json_compact(
        track_message($message_id, properties => { padding => 'x' x ($size - length $empty) }));
}
$response = post_webhook($port, body_of_size('size-small', 256 * 1024), key => $key);
is($response && $response->{status}, 200, 'a body of 256kB is accepted');
$response = post_webhook($port, body_of_size('size-over', $max_request_size + 1), key => $key, timeout => 20);
is($response && $response->{status}, 413, 'max_request_size = 2MB: a body one byte over it gets 413');
is(error_code($response), 'request_too_large', 'max_request_size: code request_too_large');

# A request head of a given size (request line, headers and the blank line).
sub request_with_head_of_size
{
    my ($message_id, $size) = @_;
    my $body = encode_json_compact(track_message($message_id));
    my $bare = build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'X-Padding', '' ] ], body => $body, connection => 'close');
    my $padding = 'p' x ($size - (length($bare) - length($body)));
    return build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'X-Padding', $padding ] ], body => $body, connection => 'close');
}
sub send_raw
{
    my ($bytes) = @_;
    my $connection = http_connect($port, timeout => 10) or return undef;
    my $sent = $connection->send($bytes);
    my $answer = $connection->read_response(timeout => $sent ? 10 : 2);
    $connection->close;
    return $answer;
}
$response = send_raw(request_with_head_of_size('head-under', $max_header_size - 64));
is($response && $response->{status}, 200, 'a head 64 bytes under max_header_size is accepted');
$response = send_raw(request_with_head_of_size('head-over', $max_header_size + 64));
is($response && $response->{status}, 431, 'max_header_size = 4kB: a head 64 bytes over it gets 431');
is(sql(q{SELECT count(*) FROM ingest.segment_events WHERE message_id = 'head-over'}), '0',
    'nothing stored from the oversized head');

# A body over max_buffered_bytes and under max_request_size cannot be held: 503 server_busy.
{
    my $body = body_of_size('buffered-over', $max_buffered_bytes + 512 * 1024);
    my $connection = http_connect($port, timeout => 10);
    $connection->send(build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ],
        content_length => length $body, connection => 'close'));
    # The answer may come as soon as the head is read, or after the body.
    $response = $connection->read_response(timeout => 1);
    unless ($response)
    {
        $connection->send($body);
        $response = $connection->read_response(timeout => 10);
    }
    $connection->close;
    is($response && $response->{status}, 503,
        'max_buffered_bytes = 1MB: a body of 1.5MB (under max_request_size) gets 503')
      or diag('answer: ' . ($response ? $response->{raw} : 'none'));
    is(error_code($response), 'server_busy', 'max_buffered_bytes: code server_busy');
    is($response && $response->{headers}{'retry-after'}, '7', 'max_buffered_bytes: Retry-After is retry_after');
}

# --- max_connections = 3 per worker ----------------------------------------------------------------------------------
# Each connection goes to one of the two workers (SO_REUSEPORT), so 2 * 3 + 1 connections put at least four on
# one of them: at least one is refused, and no more than six are served.
ok( wait_until(10, sub {
            sql('SELECT sum(open_connections) FROM ingest.segment_webhook_stats') eq '0';
        }),
    'no HTTP connection is open before the max_connections check');
my (@held, @statuses);
for my $n (1 .. 2 * $max_connections + 1)
{
    my $connection = http_connect($port, timeout => 5);
    # A refused connection is answered at once, before any request: read that first, then ask.
    my $answer = $connection ? $connection->read_response(timeout => 0.2) : undef;
    $answer //= $connection && $connection->send(build_request($port, 'GET', '/health'))
      ? $connection->read_response : undef;
    push @statuses, $answer ? $answer->{status} . ($answer->{status} == 503 ? ' ' . error_code($answer) : '') : 'none';
    push @held, $connection if $connection;
}
my $refused = grep { $_ eq '503 too_many_connections' } @statuses;
my $served = grep { $_ eq '200' } @statuses;
ok($refused >= 1, 'max_connections = 3: a connection over the limit of its worker gets 503 too_many_connections')
  or diag("answers: @statuses");
is($served + $refused, scalar @statuses, 'every other connection was served') or diag("answers: @statuses");
ok($served <= 2 * $max_connections, 'no worker serves more than 3 connections at once')
  or diag("answers: @statuses");
$_->close for @held;
ok( wait_until(10, sub {
            sql('SELECT sum(open_connections) FROM ingest.segment_webhook_stats') eq '0';
        }),
    'the workers saw those connections close');

# --- read_timeout = 1500ms: a body that never completes gets 408 -----------------------------------------------------
{
    my $connection = http_connect($port, timeout => 15);
    my $started = time;
    $connection->send(build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ], content_length => 200)
          . '{"type":"track","event":"Stalled","userId":"u","messageId":"stalled-1"');
    $response = $connection->read_response(timeout => 15);
    my $elapsed = time - $started;
    is($response && $response->{status}, 408, 'read_timeout: a body that stops arriving gets 408');
    ok($elapsed >= 1.2 && $elapsed < 6,
        sprintf('read_timeout = 1500ms: 408 after %.1f s (about 1.5 s; the default is 10 s)', $elapsed));
    $connection->close;
}

# --- idle_timeout = 3s: an idle keep-alive connection is closed after it -------------------------------------------
{
    my $connection = http_connect($port, timeout => 15);
    $connection->send(build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ],
        body => encode_json_compact(track_message('idle-1'))));
    $response = $connection->read_response;
    is($response && $response->{status}, 200, 'idle_timeout: a first request on a keep-alive connection');
    sleep 2;    # longer than read_timeout, shorter than idle_timeout
    $connection->send(build_request($port, 'POST', "/v1/webhook?writeKey=$key",
        headers => [ [ 'Content-Type', 'application/json' ] ],
        body => encode_json_compact(track_message('idle-2'))));
    $response = $connection->read_response;
    is($response && $response->{status}, 200, 'idle_timeout: after 2 s idle (over read_timeout) it is still open');
    my $idle_since = time;
    ok($connection->closed_by_server(10), 'idle_timeout: the server closes the idle connection');
    my $elapsed = time - $idle_since;
    ok($elapsed >= 2 && $elapsed < 8,
        sprintf('idle_timeout = 3s: closed after %.1f s idle (about 3 s; the default is 60 s)', $elapsed));
    $connection->close;
}

# --- lock_timeout = 300ms and retry_after = 7s: a batch that cannot lock segment_events -------------------------------
{
    my $locker = $node->background_psql('ingestdb');
    $locker->query_safe('BEGIN');
    $locker->query_safe('LOCK TABLE ingest.segment_events IN ACCESS EXCLUSIVE MODE');
    my $started = time;
    $response = post_webhook($port, encode_json_compact(track_message('locked-1')), key => $key, timeout => 15);
    my $elapsed = time - $started;
    $locker->query_safe('COMMIT');
    $locker->quit;
    is($response && $response->{status}, 503, 'lock_timeout: a batch that cannot get its lock gets 503');
    is(error_code($response), 'database_unavailable', 'lock_timeout: code database_unavailable');
    ok($elapsed < 1.8,
        sprintf('lock_timeout = 300ms: answered after %.1f s, not after the default 2 s', $elapsed));
    is($response && $response->{headers}{'retry-after'}, '7', 'retry_after = 7s: Retry-After: 7');
    like(slurp_file($node->logfile, $offset), qr/canceling statement due to lock timeout/,
        'the log names the lock timeout');
    $response = post_webhook($port, encode_json_compact(track_message('locked-1')), key => $key);
    is($response && $response->{status}, 200, 'once the lock is released the retry is stored');
}

# --- direct_insert = on after a reload: ids in arrival order --------------------------------------------------------
$node->safe_psql('postgres', 'ALTER SYSTEM SET segment_webhook.direct_insert = on');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(10, sub { $node->safe_psql('postgres', 'SHOW segment_webhook.direct_insert') eq 'on' }),
    'direct_insert is on after the reload');
for my $n (1 .. 4)
{
    $response = post_webhook($port,
        encode_json_compact([ track_message("direct-$n-b"), track_message("direct-$n-a") ]), key => $key);
    is(answer($response)->{accepted}, 2, "direct_insert = on: batch $n [b, a] stored");
    is(ids_in_order("direct-$n-b", "direct-$n-a"), 't',
        "direct_insert = on: batch $n: id(b) < id(a), arrival order");
}

# --- warehouse = off, warehouse_max_columns = 20, warehouse_max_relations = 3 ------------------------------------------
{
    my %wide = map { ("p$_" => $_) } 1 .. 25;
    $response = post_webhook($port,
        encode_json_compact([ map { track_message("warehouse-$_", event => "Event $_", properties => \%wide) } 1 .. 4 ]),
        key => $key);
    is(answer($response)->{accepted}, 4, 'warehouse: four events with 25 properties each are stored');
    usleep(3_000_000);
    is(sql(q{SELECT count(*) FROM ingest.segment_warehouse_relations WHERE relation LIKE 'event_%'}), '0',
        'warehouse = off: no pass in 3 s recorded a relation for them');
    sql('SELECT ingest.segment_warehouse_sync()');    # a pass of this session, under the same configuration
    is(sql(q{SELECT count(*) FROM ingest.segment_warehouse_relations WHERE kind = 'event'}), '3',
        'warehouse_max_relations = 3: three event relations (the default is 500)');
    is(sql(q{SELECT max(n) FROM (SELECT count(*) AS n FROM ingest.segment_warehouse_columns GROUP BY source_id, relation) c}),
        '20', 'warehouse_max_columns = 20: twenty columns in the widest relation (the default is 1000)');
}

# --- partition_premake = 3, dedup_window = 2d ------------------------------------------------------------------------
ok( wait_until(20, sub {
            sql(q{SELECT max(to_time) = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '4 days'
                  FROM ingest.segment_event_partitions()}) eq 't';
        }),
    'partition_premake = 3: the worker makes day partitions up to three days ahead (the default is 7)');
is(sql('SELECT ingest.segment_dedup_window()'), '2 days', 'dedup_window = 2d: segment_dedup_window() says 2 days');
sql(q{INSERT INTO ingest.segment_event_keys (source_id, message_id, received_at)
      VALUES (1, 'key-49h', now() - interval '49 hours'), (1, 'key-47h', now() - interval '47 hours')});
sql('SELECT ingest.segment_run_maintenance()');
is(sql(q{SELECT string_agg(message_id, ',') FROM ingest.segment_event_keys WHERE message_id LIKE 'key-%'}), 'key-47h',
    'dedup_window = 2d: maintenance forgets the keys received more than two days ago (the default is 7)');

# --- reorder_partitions = off ------------------------------------------------------------------------------------------
sql(q{CREATE TABLE ingest.segment_events_p20200401 PARTITION OF ingest.segment_events
          FOR VALUES FROM ('2020-04-01 00:00+00') TO ('2020-04-02 00:00+00');
      INSERT INTO ingest.segment_events (source_id, message_id, type, "timestamp", received_at, payload)
      SELECT s.id, 'closed-' || g, (ARRAY['track', 'page'])[1 + g % 2], '2020-04-01 12:00+00', '2020-04-01 12:00+00', '{}'
      FROM ingest.segment_sources s, generate_series(1, 10) g LIMIT 10});
is(sql('SELECT ingest.segment_reorder_next() IS NULL'), 't', 'reorder_partitions = off: segment_reorder_next() does nothing');
is(sql(q{SELECT count(*) FROM pg_constraint WHERE conrelid = 'ingest.segment_events_p20200401'::regclass
         AND conname = 'segment_events_reordered'}), '0',
    'reorder_partitions = off: a closed day partition is not reordered (the default is on)');

# --- No crash along the way ---------------------------------------------------------------------------------------------
is($session->query_safe('SELECT 1'), '1', 'the session opened after the start is still connected');
$session->quit;
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no process was terminated by a signal');
unlike($log, qr/reinitializing/, 'the server never reinitialized');

$node->stop;
done_testing();
