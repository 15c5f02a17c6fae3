# GET /metrics on the admin listener, read with a real Prometheus parser (Debian's python3-prometheus-client):
# after known traffic (200s, a 401, duplicates, a dead letter) the counters say so, by endpoint and status, by
# source (a name that needs escaping included) and reason; the histograms and gauges are there; the counters
# survive pg_terminate_backend of the worker, whose restart is counted. Also the admin token: Bearer, ?token=
# and its cookie, 401 for a wrong or missing one, a new token after a reload, and the loopback-only mode
# without a token.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my $python = '/usr/bin/python3';
my $parser_check = system($python, '-c', 'import prometheus_client.parser') == 0;
unless ($parser_check)
{
    fail('python3-prometheus-client is installed (apt-get install python3-prometheus-client)');
    done_testing();
    exit;
}

my $admin_port = PostgreSQL::Test::Cluster::get_free_port();
my $token = 'metrics-test-token';
my ($node, $port) = start_webhook_node('metrics',
    conf => "segment_webhook.admin_port = $admin_port\nsegment_webhook.admin_token = '$token'\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }
ok(defined wait_for_log_within($node, qr/worker 0 serves the admin listener on 127\.0\.0\.1:$admin_port/, 0, 30),
    'worker 0 serves the admin listener on admin_port (localhost)');

sub admin_get
{
    my ($target, @headers) = @_;
    return http_request($admin_port, 'GET', $target, headers => \@headers);
}

# Every sample of the exposition as parsed by prometheus_client: name → [ [labels, value], … ].
sub scrape
{
    my $response = admin_get('/metrics', [ 'Authorization', "Bearer $token" ]);
    return undef unless $response && $response->{status} == 200;
    my ($stdout, $stderr) = ('', '');
    my $program = 'import sys, json; from prometheus_client.parser import text_string_to_metric_families as parse; '
      . 'print(json.dumps([[s.name, s.labels, s.value] for f in parse(sys.stdin.read()) for s in f.samples]))';
    IPC::Run::run([ $python, '-c', $program ], '<', \$response->{body}, '>', \$stdout, '2>', \$stderr)
      or do { diag("the parser refused the exposition: $stderr\n$response->{body}"); return undef; };
    my %samples;
    push @{ $samples{ $_->[0] } }, [ $_->[1], $_->[2] ] for @{ decode_json($stdout) };
    return \%samples;
}

# The value of one series (labels given as a hash; all of them must match, and no other label be there).
sub value
{
    my ($samples, $name, %labels) = @_;
    for my $sample (@{ $samples->{$name} // [] })
    {
        my ($have, $value) = @$sample;
        next unless keys %$have == keys %labels;
        next if grep { ($have->{$_} // "\0") ne $labels{$_} } keys %labels;
        return $value;
    }
    return undef;
}

# --- The token ----------------------------------------------------------------------------------------------------
my $response = admin_get('/metrics');
is($response && $response->{status}, 401, 'no token: 401');
is(error_code($response), 'missing_token', 'no token: code missing_token');
$response = admin_get('/metrics', [ 'Authorization', 'Bearer wrong-token' ]);
is($response && $response->{status}, 401, 'a wrong Bearer token: 401');
is(error_code($response), 'invalid_token', 'a wrong token: code invalid_token');
unlike($response->{body}, qr/\Q$token\E/, 'the answer does not contain the token');
$response = admin_get('/metrics', [ 'Authorization', "Bearer $token" ]);
is($response && $response->{status}, 200, 'the Bearer token: 200');
is($response->{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
    'Content-Type of the text format 0.0.4');
$response = admin_get("/metrics?token=$token");
is($response && $response->{status}, 200, '?token=: 200');
my $cookie = $response->{headers}{'set-cookie'} // '';
like($cookie, qr/^segment_webhook_admin=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict$/,
    '?token= sets an HttpOnly, SameSite=Strict cookie');
unlike($cookie, qr/\Q$token\E/, 'the cookie does not hold the token itself');
my ($cookie_pair) = $cookie =~ /^([^;]+)/;
$response = admin_get('/metrics', [ 'Cookie', $cookie_pair ]);
is($response && $response->{status}, 200, 'the cookie alone authenticates the next request');
$response = admin_get('/metrics?token=nope');
is($response && $response->{status}, 401, 'a wrong ?token=: 401');
sql('CREATE ROLE plain_user');
my ($show_status, $show_out, $show_error) = $node->psql('postgres', 'SET ROLE plain_user; SHOW segment_webhook.admin_token');
isnt($show_status, 0, 'SHOW admin_token fails for a role that is not superuser');
unlike($show_out . $show_error, qr/\Q$token\E/, 'and does not show the token');
is($node->safe_psql('postgres', q{SET ROLE plain_user; SELECT count(*) FROM pg_settings WHERE name = 'segment_webhook.admin_token'}),
    '0', 'pg_settings does not list it for that role');
is(sql(q{SELECT count(*) FROM pg_settings WHERE name = 'segment_webhook.admin_token' AND setting = '} . $token . q{'}),
    '1', 'a superuser can read it');

# --- Known traffic ------------------------------------------------------------------------------------------------
my $odd_name = qq{we"ird\\source\nname};
my $key = sql(q{SELECT segment_create_source('metrics')});
my $odd_key = sql(q{SELECT segment_create_source(E'we"ird\\\\source\\nname')});
is(sql(q{SELECT name FROM segment_sources WHERE write_key = '} . $odd_key . q{'}), $odd_name,
    'a source whose name has a quote, a backslash and a line feed');
for my $k ($key, $odd_key)
{
    ok( wait_until(10, sub {
                my $r = post_webhook($port, '[]', key => $k, quiet => 1);
                $r && $r->{status} == 200;
            }),
        'the worker knows the new source');
}
my $before = scrape();
ok($before, 'the exposition parses');
my %before = map { $_ => value($before, 'segment_webhook_requests_total', endpoint => 'webhook', code => $_) // 0 }
  qw(200 400 401);

my @messages = map { track_message("metrics-$_") } 1 .. 3;
$response = post_webhook($port, encode_json_compact(\@messages), key => $key);
is(decode_json_body($response)->{accepted}, 3, 'three events stored');
$response = post_webhook($port, encode_json_compact([ @messages[0, 1] ]), key => $key);
is(decode_json_body($response)->{duplicates}, 2, 'two of them sent again are duplicates');
$response = post_webhook($port, '{"type":"track", broken', key => $key);
is($response && $response->{status}, 400, 'a body that is not JSON: 400 (and a dead letter)');
$response = post_webhook($port, encode_json_compact(track_message('metrics-unknown')), key => 'no-such-key-123');
is($response && $response->{status}, 401, 'an unknown write key: 401');
$response = post_webhook($port, encode_json_compact(track_message('odd-1')), key => $odd_key, path => '/v1/track');
is($response && $response->{status}, 200, 'an event of the oddly named source, through /v1/track');

my $after = scrape();
for ([ 200, 2 ], [ 400, 1 ], [ 401, 1 ])
{
    my ($code, $growth) = @$_;
    is(value($after, 'segment_webhook_requests_total', endpoint => 'webhook', code => $code) - $before{$code}, $growth,
        qq{requests_total{endpoint="webhook",code="$code"} grew by $growth});
}
is(value($after, 'segment_webhook_requests_total', endpoint => 'track', code => '200'), 1,
    'requests_total{endpoint="track",code="200"} is 1');
ok(value($after, 'segment_webhook_requests_total', endpoint => 'metrics', code => '401') >= 3,
    'the admin listener counts its own 401s under endpoint "metrics"');
is(value($after, 'segment_webhook_events_stored_total', source => 'metrics'), 3, 'events_stored_total{source="metrics"} is 3');
is(value($after, 'segment_webhook_events_duplicate_total', source => 'metrics'), 2,
    'events_duplicate_total{source="metrics"} is 2');
is(value($after, 'segment_webhook_events_rejected_total', source => 'metrics', reason => 'invalid_json'), 1,
    'events_rejected_total{source="metrics",reason="invalid_json"} is 1');
is(value($after, 'segment_webhook_events_stored_total', source => $odd_name), 1,
    'a label value with a quote, a backslash and a line feed reads back exactly');
ok(value($after, 'segment_webhook_batch_commit_seconds_count') >= 4, 'batch_commit_seconds histogram counts batches');
is(value($after, 'segment_webhook_batch_commit_seconds_bucket', le => '+Inf'),
    value($after, 'segment_webhook_batch_commit_seconds_count'), 'its +Inf bucket is its count');
ok(value($after, 'segment_webhook_batch_messages_sum') >= 7, 'batch_messages histogram sums the messages');
ok(defined value($after, 'segment_webhook_open_connections', worker => '0'), 'open_connections{worker="0"}');
ok(value($after, 'segment_webhook_received_bytes_total') > 0, 'received_bytes_total');
my $last_commit = value($after, 'segment_webhook_last_commit_timestamp_seconds');
ok(defined $last_commit && abs($last_commit - time) < 120, 'last_commit_timestamp_seconds is about now');
ok(defined value($after, 'segment_webhook_last_commit_age_seconds'), 'last_commit_age_seconds');
is(value($after, 'segment_webhook_worker_restarts_total', worker => '0'), 0, 'worker_restarts_total{worker="0"} is 0');

# --- A worker restart: counters survive, the restart is counted ------------------------------------------------------
my ($pid) = worker_pids($node);
my $offset = log_offset($node);
sql("SELECT pg_terminate_backend($pid)");
ok(defined wait_for_log_within($node, qr/worker 0 serves the admin listener/, $offset, 30),
    'the worker comes back after pg_terminate_backend, with its admin listener');
my $restarted;
ok(wait_until(20, sub { $restarted = scrape(); $restarted }), 'the restarted worker answers /metrics');
is(value($restarted, 'segment_webhook_worker_restarts_total', worker => '0'), 1, 'worker_restarts_total{worker="0"} is 1');
is(value($restarted, 'segment_webhook_events_stored_total', source => 'metrics'), 3, 'events_stored_total survived');
is(value($restarted, 'segment_webhook_events_rejected_total', source => 'metrics', reason => 'invalid_json'), 1,
    'events_rejected_total survived');
ok(value($restarted, 'segment_webhook_requests_total', endpoint => 'webhook', code => '401') >= 1,
    'requests_total survived');

# --- A new token after a reload; then no token: loopback clients only ------------------------------------------------
sql(q{ALTER SYSTEM SET segment_webhook.admin_token = 'second-token'});
sql('SELECT pg_reload_conf()');
ok( wait_until(10, sub {
            my $r = admin_get('/metrics', [ 'Authorization', 'Bearer second-token' ]);
            $r && $r->{status} == 200;
        }),
    'a reload applies a new admin_token');
$response = admin_get('/metrics', [ 'Authorization', "Bearer $token" ]);
is($response && $response->{status}, 401, 'the previous token is refused');
$response = admin_get('/metrics', [ 'Cookie', $cookie_pair ]);
is($response && $response->{status}, 401, 'and so is the cookie it set');
sql(q{ALTER SYSTEM SET segment_webhook.admin_token = ''});
sql('SELECT pg_reload_conf()');
ok( wait_until(10, sub {
            my $r = admin_get('/metrics');
            $r && $r->{status} == 200;
        }),
    'without admin_token a loopback client needs no token');
$response = http_request($admin_port, 'GET', '/metrics', host => "rebound.example:$admin_port");
is($response && $response->{status}, 403, 'but a request naming another host (DNS rebinding) gets 403');
is(error_code($response), 'forbidden', 'code forbidden');

unlike(slurp_file($node->logfile), qr/terminated by signal|reinitializing/, 'no crash');
$node->stop;
done_testing();
