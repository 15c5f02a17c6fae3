# The admin listener and its live event debugger page. Over HTTP: the page and its files come from the
# extension's share directory with headers that keep them self-contained (CSP, no caching, no framing), a
# request without the token gets 401, /api/recent validates its parameters and returns the recent events and
# dead letters (read as the extension's owner: the ingest role could not read payloads), and only worker 0
# serves it when there are two workers. In headless Chromium (test/sdk/admin_page.mjs): events sent over HTTP
# appear without a reload, clicking one shows its JSON, dead letters show their reason, at desktop and phone
# sizes; the screenshots are saved in this test's output directory.
#
# Needs test/sdk/node_modules (playwright-core: `cd test/sdk && npm ci`) and Chromium (`apt-get install
# chromium`): without them the browser part fails and says which install step is missing.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use File::Basename qw(dirname);
use File::Spec;
use File::Temp ();
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my $admin_port = PostgreSQL::Test::Cluster::get_free_port();
my $token = 'admin-page-token';
my ($node, $port) = start_webhook_node('admin', workers => 2,
    conf => "segment_webhook.workers = 2\nsegment_webhook.admin_port = $admin_port\n"
      . "segment_webhook.admin_token = '$token'\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }

ok(defined wait_for_log_within($node, qr/worker 0 serves the admin listener on 127\.0\.0\.1:$admin_port/, 0, 30),
    'worker 0 serves the admin listener');
my @serving = slurp_file($node->logfile) =~ /worker (\d+) serves the admin listener/g;
is_deeply([ sort { $a <=> $b } keys %{ { map { $_ => 1 } @serving } } ], [0], 'with workers = 2, only worker 0 serves it');

sub admin_get
{
    my ($target, %options) = @_;
    return http_request($admin_port, 'GET', $target, %options);
}
my @bearer = (headers => [ [ 'Authorization', "Bearer $token" ] ]);

# --- The page and its files ----------------------------------------------------------------------------------------
my $response = admin_get('/');
is($response && $response->{status}, 401, 'the page without the token: 401');
is(error_code($response), 'missing_token', 'with a JSON error');
$response = admin_get('/', @bearer);
is($response && $response->{status}, 200, 'the page with the token: 200');
like($response->{headers}{'content-type'}, qr{^text/html}, 'as HTML');
like($response->{body}, qr{<script src="/admin\.js"}, 'it loads its script from the admin listener itself');
unlike($response->{body}, qr{https?://}i, 'and nothing from another site');
like($response->{headers}{'content-security-policy'} // '', qr/default-src 'none'.*script-src 'self'/,
    'Content-Security-Policy: its own scripts only');
is($response->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');
is($response->{headers}{'x-frame-options'}, 'DENY', 'X-Frame-Options: DENY');
for my $file ([ 'admin.js', qr{^text/javascript} ], [ 'admin.css', qr{^text/css} ])
{
    $response = admin_get("/$file->[0]", @bearer);
    is($response && $response->{status}, 200, "/$file->[0]: 200");
    like($response->{headers}{'content-type'}, $file->[1], "/$file->[0]: its content type");
}
unlike(admin_get('/admin.js', @bearer)->{body}, qr/innerHTML/, 'the script never uses innerHTML');
$response = admin_get('/no/such/page', @bearer);
is($response && $response->{status}, 404, 'another path: 404');
$response = http_request($admin_port, 'POST', '/api/recent', @bearer, body => '{}');
is($response && $response->{status}, 405, 'POST: 405');

# --- /api/recent --------------------------------------------------------------------------------------------------
my $key = sql(q{SELECT segment_create_source('admin_page')});
ok( wait_until(10, sub {
            my $r = post_webhook($port, '[]', key => $key, quiet => 1);
            $r && $r->{status} == 200;
        }),
    'the worker knows the new source');
$response = post_webhook($port, encode_json_compact([ track_message('api-1'), track_message('api-2') ]), key => $key);
is(decode_json_body($response)->{accepted}, 2, 'two events stored');
$response = post_webhook($port, 'not json at all', key => $key);
is($response && $response->{status}, 400, 'a body that is not JSON: 400');
$response = admin_get('/api/recent?limit=1', @bearer);
is($response && $response->{status}, 200, '/api/recent: 200') or diag($response && $response->{body});
my $recent = decode_json_body($response) // {};
is(scalar @{ $recent->{events} // [] }, 1, 'limit=1: one event');
is($recent->{events}[0]{message_id}, 'api-2', 'the newest first');
is($recent->{events}[0]{payload}{messageId}, 'api-2', 'with its payload');
is($recent->{rejected}[0]{reason}, 'invalid_json', 'the dead letter with its reason');
is($recent->{rejected}[0]{raw}, 'not json at all', 'and the body it received');
my ($source) = grep { $_->{name} eq 'admin_page' } @{ $recent->{sources} // [] };
ok($source, 'the source is listed');
is($recent->{counters}{ $source->{id} }{stored}, 2, 'with its stored counter');
my $newest = $recent->{events}[0]{id};
$response = admin_get("/api/recent?after=$newest", @bearer);
is(scalar @{ decode_json_body($response)->{events} // [1] }, 0, 'after=<newest id>: no event');
$response = admin_get('/api/recent?source=nobody', @bearer);
is(scalar @{ decode_json_body($response)->{events} // [1] }, 0, 'source=<unknown>: no event');
for my $bad ('limit=0', 'limit=201', 'after=-1', 'after=abc')
{
    $response = admin_get("/api/recent?$bad", @bearer);
    is($response && $response->{status}, 400, "/api/recent?$bad: 400");
    is(error_code($response), 'invalid_parameter', "/api/recent?$bad: code invalid_parameter");
}

# The page's query waits for no lock for long: with segment_events locked, /api/recent answers 503 at once
# (lock_timeout of the admin query), instead of holding up the worker.
{
    my $locker = $node->background_psql('postgres');
    $locker->query_safe('BEGIN');
    $locker->query_safe('LOCK TABLE segment_events IN ACCESS EXCLUSIVE MODE');
    $response = admin_get('/api/recent', @bearer, timeout => 10);
    $locker->query_safe('COMMIT');
    $locker->quit;
    is($response && $response->{status}, 503, '/api/recent while segment_events is locked: 503');
    is(error_code($response), 'admin_unavailable', 'code admin_unavailable');
    like($response && $response->{body}, qr/(statement|lock) timeout/, 'the message names the timeout');
    $response = admin_get('/api/recent?limit=1', @bearer);
    is($response && $response->{status}, 200, 'once the lock is gone, /api/recent answers again');
}

# --- In Chromium ---------------------------------------------------------------------------------------------------
my $sdk_dir = File::Spec->catdir(dirname($FindBin::RealBin), 'sdk');
my @missing;
push @missing, 'playwright-core is not installed: run (cd test/sdk && npm ci --no-audit --no-fund)'
  unless -f "$sdk_dir/node_modules/playwright-core/package.json";
push @missing, '/usr/bin/chromium is missing: run apt-get install -y chromium' unless -x '/usr/bin/chromium';
fail("browser test prerequisite: $_") for @missing;
unless (@missing)
{
    my $output_dir = $PostgreSQL::Test::Utils::tmp_check;
    my ($stdout, $stderr) = ('', '');
    local $ENV{TMPDIR} = File::Temp::tempdir('admin-chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $success = eval {
        IPC::Run::run([ 'node', "$sdk_dir/admin_page.mjs", $admin_port, $token, $port, $key, $output_dir ],
            '<', \undef, '>', \$stdout, '2>', \$stderr, IPC::Run::timeout(100));
    };
    my $error = $@;
    ok($success, 'in Chromium: events appear without a reload, clicking one shows its JSON, at desktop and phone sizes')
      or diag("admin_page.mjs failed" . ($error ? " ($error)" : '') . "\n--- stdout\n$stdout\n--- stderr\n$stderr");
    my ($report_line) = grep { /^\{/ } split /\n/, $stdout;
    my $report = eval { decode_json($report_line // '') } // {};
    note($_) for @{ $report->{checks} // [] };
    for my $file (qw(admin_page_desktop.png admin_page_phone.png))
    {
        my $path = "$output_dir/$file";
        ok(-s $path, "screenshot $file saved") and diag("screenshot: $path");
    }
    is(sql(q{SELECT count(*) FROM segment_events WHERE message_id LIKE 'admin-page-%'}), '4',
        'the four events the browser test sent are stored');
}

unlike(slurp_file($node->logfile), qr/terminated by signal|reinitializing/, 'no crash');
$node->stop;
done_testing();
