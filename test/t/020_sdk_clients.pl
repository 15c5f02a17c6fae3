# The official SDKs, installed from npm and unmodified except for their host setting, deliver to the worker:
# Segment's @segment/analytics-node (the six calls, then 2,000 events flushed on close), RudderStack's
# @rudderstack/rudder-sdk-node (the six calls, gzip-compressed, Basic auth), and analytics.js
# (@segment/analytics-next) in headless Chromium on another origin (CORS), with its default dispatcher and with
# the batching delivery strategy. The scripts in test/sdk only send and report the SDK's errors; the rows are
# checked here.
#
# Needs test/sdk/node_modules (`cd test/sdk && npm ci`) and Chromium (`apt-get install chromium`): without
# them this test fails and says which install step is missing.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use JSON::PP;
use File::Temp ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my $sdk_dir = File::Spec->catdir(dirname($FindBin::RealBin), 'sdk');
my $chromium = '/usr/bin/chromium';

# --- What the scripts need: fail (not skip) with the missing install step -------------------------------------
my @missing;
# The SDKs and Playwright need node 20 or later (the machine image ships it; Debian 12's own nodejs is 18).
my $node_version = '';
eval { IPC::Run::run([ 'node', '--version' ], '<', \undef, '>', \$node_version, '2>', \my $node_error) };
push @missing, 'node 20 or later is needed on PATH, found ' . ($node_version =~ s/\s+//gr || 'none')
  unless $node_version =~ /^v(\d+)\./ && $1 >= 20;
my @packages = grep { !-f "$sdk_dir/node_modules/$_/package.json" }
  qw(@segment/analytics-node @rudderstack/rudder-sdk-node @segment/analytics-next playwright-core);
push @missing, "the npm packages of test/sdk are not installed (missing: @packages): run "
  . '(cd test/sdk && npm ci --no-audit --no-fund) before the tests'
  if @packages;
push @missing, "$chromium is missing: run apt-get install -y chromium" unless -x $chromium;
if (@missing)
{
    fail("SDK test prerequisite: $_") for @missing;
    done_testing();
    exit;
}

my ($node, $port) = start_webhook_node('sdk_clients');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my %key;
my %source_id;
for my $source (qw(analytics_node rudder browser browser_batching))
{
    $key{$source} = sql("SELECT segment_create_source('$source')");
    $source_id{$source} = sql("SELECT id FROM segment_sources WHERE name = '$source'");
}

# Sources created after the worker started are known to it within about a second; an empty batch stores nothing.
for my $source (sort keys %key)
{
    ok( wait_until(10, sub {
                my $r = post_webhook($port, '{"batch":[]}', key => $key{$source}, key_in => 'basic',
                    path => '/v1/batch', quiet => 1);
                $r && $r->{status} != 401;
            }),
        "the worker knows the write key of source $source");
}
my $rejected_before = sql('SELECT coalesce(max(id), 0) FROM segment_rejected');

# Runs one script of test/sdk; true when it exited 0. Its report (a JSON line on stdout) is returned decoded.
sub run_sdk_script
{
    my ($name, $script, @arguments) = @_;
    my ($stdout, $stderr) = ('', '');
    my $started = time;
    my $success = eval {
        IPC::Run::run([ 'node', "$sdk_dir/$script", @arguments ],
            '<', \undef, '>', \$stdout, '2>', \$stderr, IPC::Run::timeout(90));
    };
    my $error = $@;
    ok($success, "$name: the SDK delivered without reporting an error")
      or diag("node $script exited with status " . ($? >> 8) . ($error ? " ($error)" : '')
          . "\n--- stdout\n$stdout\n--- stderr\n$stderr");
    note("$name took " . (time - $started) . " s; report: $stdout");
    my ($report_line) = grep { /^\{/ } split /\n/, $stdout;
    my $report = eval { JSON::PP->new->decode($report_line // '') } // {};
    return $report;
}

# One row per stored event of a source, as "column|column|…" lines in a fixed order.
sub rows
{
    my ($source, $columns, $where) = @_;
    return sql("SELECT $columns FROM segment_events WHERE source_id = $source_id{$source}"
          . ($where ? " AND ($where)" : '') . ' ORDER BY type, id');
}

# --- @segment/analytics-node ---------------------------------------------------------------------------------
my $bulk = 2000;
my $report = run_sdk_script('analytics-node', 'analytics_node.mjs', $port, $key{analytics_node}, $bulk);
is_deeply($report->{paths}, ['/v1/batch'], 'analytics-node posts to /v1/batch');
is( rows('analytics_node', 'type, count(*) OVER (PARTITION BY type)', q{event IS DISTINCT FROM 'Node Bulk Event'}),
    join("\n", map { "$_|1" } qw(alias group identify page screen track)),
    'analytics-node: each of the six calls is stored once');
is( rows('analytics_node',
        q{type, coalesce(user_id, '-'), coalesce(event, name, group_id, previous_id, '-'), coalesce(category, '-'),
          coalesce(payload ->> 'traits', payload ->> 'properties', '-')},
        q{event IS DISTINCT FROM 'Node Bulk Event'}),
    join("\n",
        'alias|node-user-renamed|node-user|-|-',
        'group|node-user|node-group|-|{"name": "Node Group"}',
        'identify|node-user|-|-|{"plan": "pro", "email": "node@example.com"}',
        'page|node-user|Node Page|Docs|{"path": "/docs", "title": "Docs", "category": "Docs"}',
        'screen|node-user|Node Screen|-|{"variation": "blue"}',
        'track|node-user|Node Order Completed|-|{"revenue": 9.99, "currency": "EUR"}'),
    'analytics-node: the six calls carry their fields');
is( sql(qq{SELECT count(*), count(DISTINCT (payload #>> '{properties,sequence}')::int),
               min((payload #>> '{properties,sequence}')::int), max((payload #>> '{properties,sequence}')::int)
           FROM segment_events WHERE source_id = $source_id{analytics_node} AND event = 'Node Bulk Event'}),
    "$bulk|$bulk|0|" . ($bulk - 1),
    "analytics-node: all $bulk queued events are stored exactly once");
is( sql(qq{SELECT string_agg(DISTINCT payload #>> '{context,library,name}', ','),
               bool_and(message_id = payload ->> 'messageId'),
               bool_and("timestamp" = (payload ->> 'timestamp')::timestamptz),
               bool_and(NOT payload ? 'writeKey')
           FROM segment_events WHERE source_id = $source_id{analytics_node}}),
    '@segment/analytics-node|t|t|t',
    "analytics-node: the SDK's library name, messageIds and timestamps are kept; its writeKey is not stored");

# --- @rudderstack/rudder-sdk-node ------------------------------------------------------------------------------
run_sdk_script('rudder-sdk-node', 'rudder_node.mjs', $port, $key{rudder});
is( rows('rudder',
        q{type, coalesce(user_id, '-'), coalesce(event, name, group_id, previous_id, '-'), coalesce(category, '-'),
          coalesce(payload ->> 'traits', payload ->> 'properties', '-')}),
    join("\n",
        'alias|rudder-user-renamed|rudder-user|-|-',
        'group|rudder-user|rudder-group|-|{"name": "Rudder Group"}',
        'identify|rudder-user|-|-|{"plan": "team", "email": "rudder@example.com"}',
        'page|rudder-user|Rudder Page|Docs|{"path": "/rudder"}',
        'screen|rudder-user|Rudder Screen|-|{"variation": "green"}',
        'track|rudder-user|Rudder Order Completed|-|{"revenue": 19.5}'),
    'rudder-sdk-node: each of the six calls is stored once with its fields');
# RudderStack's SDK names itself analytics-node too, sends originalTimestamp and sentAt (no timestamp): the
# stored timestamp is the clock-skew-corrected one, close to the arrival.
is( sql(qq{SELECT string_agg(DISTINCT payload #>> '{context,library,name}', ','),
               string_agg(DISTINCT payload ->> 'channel', ','),
               bool_and(message_id = payload ->> 'messageId'),
               bool_and(original_timestamp IS NOT NULL AND sent_at IS NOT NULL),
               bool_and(abs(extract(epoch FROM "timestamp" - received_at)) < 60)
           FROM segment_events WHERE source_id = $source_id{rudder}}),
    'analytics-node|server|t|t|t',
    'rudder-sdk-node: library, channel, messageIds and timestamps');

# --- analytics.js in headless Chromium ----------------------------------------------------------------------
my $page_port = PostgreSQL::Test::Cluster::get_free_port();
{
    # A short directory directly in the system's temp dir: Chromium puts a Unix socket in its profile, and a
    # socket path longer than 107 bytes (easy under a deep test directory) makes it abort at start.
    local $ENV{TMPDIR} = File::Temp::tempdir('sdk-chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $report = run_sdk_script('analytics.js', 'browser.mjs', $port, $key{browser}, $key{browser_batching}, $page_port);
}
is( join(',', sort map { "$_->{method} $_->{path} $_->{status}" } @{ $report->{pages}{standard}{deliveries} // [] }),
    'POST /v1/a 200,POST /v1/g 200,POST /v1/i 200,POST /v1/p 200,POST /v1/t 200',
    'analytics.js, default dispatcher: one POST per call to the one-letter paths, each answered 200');
my @batching = @{ $report->{pages}{batching}{deliveries} // [] };
ok(@batching >= 2 && !grep({ "$_->{method} $_->{path} $_->{status}" ne 'POST /v1/b 200' } @batching),
    'analytics.js, batching strategy: batches POSTed to /v1/b, answered 200')
  or diag(explain(\@batching));

for my $page (qw(standard batching))
{
    my $source = $page eq 'standard' ? 'browser' : 'browser_batching';
    # page() fills its properties from the page it runs on.
    my $page_properties = qq({"url": "http://127.0.0.1:$page_port/$page", "name": "Browser Page", "path": "/$page", )
      . qq("title": "SDK test $page", "search": "", "section": "sdk", "category": "Docs", "referrer": ""});
    is( rows($source,
            q{type, coalesce(user_id, '-'), coalesce(event, name, group_id, previous_id, '-'), coalesce(category, '-'),
              coalesce(payload ->> 'traits', payload ->> 'properties', '-')}),
        join("\n",
            'alias|browser-user|browser-visitor|-|-',
            'group|browser-user|browser-group|-|{"name": "Browser Group"}',
            'identify|browser-user|-|-|{"plan": "free", "email": "browser@example.com"}',
            "page|-|Browser Page|Docs|$page_properties",
            'track|browser-user|Browser Button Clicked|-|{"price": 4.5, "button": "buy"}'),
        "analytics.js ($page): each call is stored once with its fields");
    is( sql(qq{SELECT string_agg(DISTINCT payload #>> '{context,library,name}', ','),
                   string_agg(DISTINCT payload #>> '{context,page,url}', ','),
                   string_agg(DISTINCT payload #>> '{context,page,path}', ','),
                   string_agg(DISTINCT payload #>> '{context,ip}', ','),
                   count(DISTINCT anonymous_id),
                   bool_and(message_id = payload ->> 'messageId' AND message_id LIKE 'ajs-%'),
                   bool_and(NOT payload ? 'writeKey')
               FROM segment_events WHERE source_id = $source_id{$source}}),
        "analytics.js|http://127.0.0.1:$page_port/$page|/$page|127.0.0.1|1|t|t",
        "analytics.js ($page): library, context.page, context.ip from the connection, one anonymousId, "
          . 'messageIds kept, writeKey not stored');
    is( sql(qq{SELECT string_agg(DISTINCT payload #>> '{context,userAgent}', ',')
               FROM segment_events WHERE source_id = $source_id{$source}}),
        $report->{userAgent} || 'the browser reported no userAgent',
        "analytics.js ($page): context.userAgent is the browser's");
}
like($report->{userAgent} // '', qr{^Mozilla/5\.0 .*Chrome/}, 'the browser is Chromium');

# --- Nothing went to the dead letter -------------------------------------------------------------------------
is(sql("SELECT count(*) FROM segment_rejected WHERE id > $rejected_before"),
    '0', 'no message sent by an SDK was rejected')
  or diag(sql("SELECT reason, detail, payload FROM segment_rejected WHERE id > $rejected_before LIMIT 5"));

$node->stop;
done_testing();
