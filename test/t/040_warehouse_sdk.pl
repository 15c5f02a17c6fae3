# Warehouse relations fed by the official SDKs: what @segment/analytics-node and analytics.js
# (@segment/analytics-next, in headless Chromium) send appears, within seconds and with no call to
# segment_warehouse_sync(), as columns of the views of the source's warehouse schema, with the types their values
# imply. The background worker discovers the columns by itself: the time from the SDK's acknowledged flush to the
# last expected column being visible is measured and must stay under 10 s (the goal is 5 s).
#   - analytics-node (schema web_shop, the snake_case of the source name "Web Shop"): the six calls; a track
#     "Order Completed" with a number, a string, an array, a nested object, a boolean and an ISO-8601 date as
#     properties; identify traits (nested too) in identifies and users; group, page, screen, alias.
#   - analytics.js on a page opened with UTM parameters (schema storefront, given to segment_create_source): the
#     campaign context, the page URL and the page call's own properties in storefront.pages, and a track.
#   - Later, a new event name becomes a new view and new properties and traits new columns, while every column
#     seen before keeps its name, type and position.
#
# Needs test/sdk/node_modules (`cd test/sdk && npm ci`) and Chromium (`apt-get install chromium`): without
# them this test fails and says which install step is missing.
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
use Time::HiRes qw(time usleep);

my $sdk_dir = File::Spec->catdir(dirname($FindBin::RealBin), 'sdk');
my $chromium = '/usr/bin/chromium';

# How long the discovery of a column may take after the SDK's flush was acknowledged (the goal is 5 s).
my $discovery_bound = 10;

# --- What the scripts need: fail (not skip) with the missing install step -------------------------------------
my @missing;
my $node_version = '';
eval { IPC::Run::run([ 'node', '--version' ], '<', \undef, '>', \$node_version, '2>', \my $node_error) };
push @missing, 'node 20 or later is needed on PATH, found ' . ($node_version =~ s/\s+//gr || 'none')
  unless $node_version =~ /^v(\d+)\./ && $1 >= 20;
my @packages = grep { !-f "$sdk_dir/node_modules/$_/package.json" }
  qw(@segment/analytics-node @segment/analytics-next playwright-core);
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
my $node_sdk_version = JSON::PP->new->decode(
    slurp_file("$sdk_dir/node_modules/\@segment/analytics-node/package.json"))->{version};

my ($node, $port) = start_webhook_node('warehouse_sdk');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# The output of a query, or the error text when it failed (a missing view or column fails that check only).
sub query
{
    my ($sql) = @_;
    my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql);
    return $ret == 0 ? $stdout : "query failed: $stderr";
}

# "column:data_type" of the named columns of a relation, by column name; "column:-" for a missing one.
sub column_types
{
    my ($schema, $relation, @columns) = @_;
    my %type = map { split /\|/ } split /\n/,
      sql(qq{SELECT column_name, data_type FROM information_schema.columns
             WHERE table_schema = '$schema' AND table_name = '$relation'});
    return join(',', map { "$_:" . ($type{$_} // '-') } sort @columns);
}

# Every column of a schema as "relation.column:data_type\@position" lines.
sub schema_columns
{
    my ($schema) = @_;
    return split /\n/,
      sql(qq{SELECT table_name || '.' || column_name || ':' || data_type || '\@' || ordinal_position
             FROM information_schema.columns WHERE table_schema = '$schema'
             ORDER BY table_name, ordinal_position});
}

# Waits until every "relation.column" of @expected is a column in $schema, polling until $discovery_bound
# seconds after $since (epoch seconds: when the SDK's flush was acknowledged). Returns the seconds it took
# from $since, or undef when some column was still missing at the bound (they are listed).
sub wait_for_columns
{
    my ($what, $schema, $since, @expected) = @_;
    my $values = join(', ', map { my ($r, $c) = split /\./; "('$r', '$c')" } @expected);
    my $count_sql = qq{SELECT count(*) FROM information_schema.columns
                       WHERE table_schema = '$schema' AND (table_name, column_name) IN ($values)};
    my $deadline = $since + $discovery_bound;
    my $seen_at;
    while (1)
    {
        if (sql($count_sql) == @expected)
        {
            $seen_at = time;
            last;
        }
        last if time >= $deadline;
        usleep(50_000);
    }
    my $latency = defined $seen_at ? $seen_at - $since : undef;
    if (defined $latency && $latency < $discovery_bound)
    {
        pass("$what: the " . @expected . " expected columns of $schema are visible within $discovery_bound s");
        note(sprintf('%s: columns visible %.2f s after the flush was acknowledged (goal 5 s)', $what, $latency));
        return $latency;
    }
    fail("$what: the " . @expected . " expected columns of $schema are visible within $discovery_bound s");
    my %present = map { $_ => 1 } split /\n/,
      sql(qq{SELECT table_name || '.' || column_name FROM information_schema.columns
             WHERE table_schema = '$schema'});
    diag("$what: still missing: " . join(', ', grep { !$present{$_} } @expected)
          . (defined $latency ? sprintf(' (all there after %.2f s)', $latency) : ''));
    # Where the discovery stands, for the diagnosis only.
    diag("$what: examined_to|max(segment_events.id)|gaps|pending relations: "
          . query(q{SELECT (SELECT examined_to FROM segment_warehouse_progress), (SELECT max(id) FROM segment_events),
                           (SELECT count(*) FROM segment_warehouse_gaps),
                           (SELECT count(*) FROM segment_warehouse_relations WHERE pending)}));
    return undef;
}

# Runs one script of test/sdk; its report (the JSON line it prints) is returned decoded.
sub run_sdk_script
{
    my ($name, $script, @arguments) = @_;
    my ($stdout, $stderr) = ('', '');
    my $success = eval {
        IPC::Run::run([ 'node', "$sdk_dir/$script", @arguments ],
            '<', \undef, '>', \$stdout, '2>', \$stderr, IPC::Run::timeout(90));
    };
    my $error = $@;
    ok($success, "$name: the SDK delivered without reporting an error")
      or diag("node $script exited with status " . ($? >> 8) . ($error ? " ($error)" : '')
          . "\n--- stdout\n$stdout\n--- stderr\n$stderr");
    note("$name report: $stdout");
    my ($report_line) = grep { /^\{/ } split /\n/, $stdout;
    my $report = eval { JSON::PP->new->decode($report_line // '') } // {};
    return $report;
}

# When the SDK's flush was acknowledged (epoch seconds), from the script's report; now when it did not say.
sub acknowledged_at
{
    my ($report) = @_;
    return defined $report->{acknowledgedAt} ? $report->{acknowledgedAt} / 1000 : time;
}

# --- The sources: their schemas and base views exist before any event ----------------------------------------
my %key;
$key{web_shop} = sql(q{SELECT segment_create_source('Web Shop')});
$key{storefront} = sql(q{SELECT segment_create_source('Storefront JS', NULL, 'storefront')});
is(sql(q{SELECT string_agg(name || ':' || warehouse_schema, ',' ORDER BY name) FROM segment_sources}),
    'Storefront JS:storefront,Web Shop:web_shop',
    'warehouse_schema: the snake_case of the name by default, or the one given');

my @base_views = qw(aliases groups identifies pages screens tracks users);
my @fixed_columns = qw(id received_at sent_at timestamp original_timestamp user_id anonymous_id uuid_ts);
for my $schema (qw(web_shop storefront))
{
    is( sql(qq{SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.views
               WHERE table_schema = '$schema'}),
        join(',', @base_views),
        "segment_create_source made schema $schema with the base views");
}
for my $view (grep { $_ ne 'users' } @base_views)
{
    is( sql(qq{SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns
               WHERE table_schema = 'web_shop' AND table_name = '$view' AND ordinal_position <= 8}),
        join(',', @fixed_columns),
        "web_shop.$view starts with the fixed columns");
}
is(column_types('web_shop', 'users', qw(id received_at uuid_ts)),
    'id:text,received_at:timestamp with time zone,uuid_ts:timestamp with time zone',
    'web_shop.users has id, received_at and uuid_ts');

# Sources created after the worker started are known to it within about a second.
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
my @latencies;

# --- @segment/analytics-node: the six calls ------------------------------------------------------------------
my $report = run_sdk_script('analytics-node', 'warehouse_node.mjs', $port, $key{web_shop}, 'first');
my $latency = wait_for_columns('analytics-node', 'web_shop', acknowledged_at($report),
    qw(order_completed.revenue order_completed.order_id order_completed.currency order_completed.gift_wrap
      order_completed.products order_completed.shipping_method order_completed.shipping_cost
      order_completed.shipping_eta order_completed.context_library_name order_completed.event_text
      tracks.context_library_name tracks.context_library_version
      identifies.email identifies.plan identifies.address_city identifies.address_postal_code
      users.email users.plan users.address_city users.address_postal_code
      groups.name groups.employees pages.plan_shown pages.context_library_name screens.step
      aliases.previous_id aliases.context_library_name));
push @latencies, $latency;

is( query(q{SELECT revenue, order_id, shipping_method, shipping_cost, products::jsonb = '[
                {"product_id": "p-1", "sku": "SKU-1", "price": 5, "quantity": 1},
                {"product_id": "p-2", "sku": "SKU-2", "price": 7.5, "quantity": 1}]'::jsonb,
              currency, gift_wrap, shipping_eta = '2025-06-03T12:00:00Z', event, event_text
            FROM web_shop.order_completed}),
    '12.5|order-1001|ups|4|t|EUR|f|t|order_completed|Order Completed',
    'web_shop.order_completed: the properties, flattened, with their values (products as the JSON of the array)');
is( column_types('web_shop', 'order_completed',
        qw(revenue order_id shipping_method shipping_cost products currency gift_wrap shipping_eta)),
    'currency:text,gift_wrap:boolean,order_id:text,products:text,revenue:double precision,'
      . 'shipping_cost:bigint,shipping_eta:timestamp with time zone,shipping_method:text',
    'web_shop.order_completed: the types the values imply');
is( query(q{SELECT pg_typeof(revenue), pg_typeof(order_id), pg_typeof(shipping_method), pg_typeof(shipping_cost),
                   pg_typeof(products)
            FROM web_shop.order_completed}),
    'double precision|text|text|bigint|text',
    'web_shop.order_completed: pg_typeof agrees');
is( query(qq{SELECT o.id = '$report->{messageIds}{order_completed}', o.user_id, o.anonymous_id IS NULL,
                    o.received_at = e.received_at, o."timestamp" = e."timestamp", o.sent_at IS NOT NULL,
                    o.uuid_ts IS NOT NULL, o.context_library_name
             FROM web_shop.order_completed o JOIN segment_events e ON e.message_id = o.id}),
    't|wh-user-1|t|t|t|t|t|@segment/analytics-node',
    'web_shop.order_completed: id is the messageId, the fixed columns come from the stored event');
is( query(q{SELECT event, event_text, user_id, context_library_name, context_library_version FROM web_shop.tracks}),
    "order_completed|Order Completed|wh-user-1|\@segment/analytics-node|$node_sdk_version",
    'web_shop.tracks: the event and the library from the context');
is( query(q{SELECT user_id, email, plan, address_city, address_postal_code FROM web_shop.identifies}),
    'wh-user-1|ada@example.com|free|Berlin|10115',
    'web_shop.identifies: the traits, flattened');
is( query(q{SELECT id, email, plan, address_city, received_at IS NOT NULL, uuid_ts IS NOT NULL FROM web_shop.users}),
    'wh-user-1|ada@example.com|free|Berlin|t|t',
    'web_shop.users: one row per userId with its traits');
is( query(q{SELECT user_id, group_id, name, employees, pg_typeof(employees) FROM web_shop.groups}),
    'wh-user-1|wh-group-1|Acme|12|bigint',
    'web_shop.groups: group_id and the group traits');
is( query(q{SELECT user_id, name, category, url, path, title, search, plan_shown FROM web_shop.pages}),
    'wh-user-1|Pricing|Docs|https://shop.example/pricing?ref=nav|/pricing|Pricing|?ref=nav|pro',
    'web_shop.pages: name, category, the page fields and the other properties');
is( query(q{SELECT user_id, name, step, pg_typeof(step) FROM web_shop.screens}),
    'wh-user-1|Checkout|2|bigint',
    'web_shop.screens: name and the properties');
is( query(q{SELECT user_id, previous_id FROM web_shop.aliases}),
    'wh-user-1|wh-visitor-1',
    'web_shop.aliases: previous_id');

# --- analytics.js in headless Chromium, on a page opened with UTM parameters --------------------------------
my $page_port = PostgreSQL::Test::Cluster::get_free_port();
{
    # A short directory directly in the system's temp dir: Chromium puts a Unix socket in its profile, and a
    # socket path longer than 107 bytes makes it abort at start.
    local $ENV{TMPDIR} = File::Temp::tempdir('sdk-chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $report = run_sdk_script('analytics.js', 'warehouse_browser.mjs', $port, $key{storefront}, $page_port);
}
my $page_url = "http://127.0.0.1:$page_port/shop"
  . '?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale&utm_term=shoes&utm_content=banner';
is($report->{pageUrl}, $page_url, 'analytics.js ran on the page with the UTM parameters');
$latency = wait_for_columns('analytics.js', 'storefront', acknowledged_at($report),
    qw(pages.context_campaign_source pages.context_campaign_medium pages.context_campaign_name
      pages.context_campaign_term pages.context_campaign_content pages.context_page_url pages.context_page_path
      pages.context_user_agent pages.context_library_name pages.section pages.items_shown
      tracks.context_campaign_name product_viewed.sku product_viewed.price product_viewed.context_campaign_name));
push @latencies, $latency;

is( query(q{SELECT context_campaign_source, context_campaign_medium, context_campaign_name, context_campaign_term,
                   context_campaign_content, url, path FROM storefront.pages}),
    "newsletter|email|spring_sale|shoes|banner|$page_url|/shop",
    'storefront.pages: the UTM parameters as context_campaign_* (utm_campaign as the name), url and path');
is( query(q{SELECT name, category, title, search, section, items_shown, pg_typeof(items_shown), user_id IS NULL,
                   anonymous_id IS NOT NULL
            FROM storefront.pages}),
    'Spring Sale|Shop|Spring Sale|?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale&utm_term=shoes'
      . '&utm_content=banner|shoes|12|bigint|t|t',
    "storefront.pages: the page call's name, category and its own properties; an anonymous visitor");
is( query(q{SELECT context_page_url, context_page_path, context_library_name, context_user_agent FROM storefront.pages}),
    "$page_url|/shop|analytics.js|" . ($report->{userAgent} || 'the browser reported no userAgent'),
    'storefront.pages: the page and browser context (context.userAgent as context_user_agent)');
is( column_types('storefront', 'pages',
        qw(context_campaign_source context_campaign_name url items_shown section context_user_agent)),
    'context_campaign_name:text,context_campaign_source:text,context_user_agent:text,items_shown:bigint,'
      . 'section:text,url:text',
    'storefront.pages: the types');
is( query(q{SELECT sku, price, pg_typeof(price), context_campaign_name, context_campaign_source, context_page_path,
                   event, event_text
            FROM storefront.product_viewed}),
    'SKU-9|19.99|double precision|spring_sale|newsletter|/shop|product_viewed|Product Viewed',
    'storefront.product_viewed: the track from the same page, with the campaign context');
is( query(q{SELECT event, context_campaign_name FROM storefront.tracks}),
    'product_viewed|spring_sale',
    'storefront.tracks: the track with the campaign context');

# --- Later: a new event, new properties and traits; nothing seen before is lost ---------------------------------
my @columns_before = schema_columns('web_shop');
$report = run_sdk_script('analytics-node, later', 'warehouse_node.mjs', $port, $key{web_shop}, 'later');
$latency = wait_for_columns('analytics-node, later', 'web_shop', acknowledged_at($report),
    qw(coupon_applied.coupon_code coupon_applied.discount coupon_applied.context_library_name order_completed.tax
      identifies.company_size users.company_size));
push @latencies, $latency;

is( query(q{SELECT event, event_text, coupon_code, discount, pg_typeof(discount), user_id
            FROM web_shop.coupon_applied}),
    'coupon_applied|Coupon Applied|SPRING10|2.5|double precision|wh-user-1',
    'web_shop.coupon_applied: the new event is a new view with its properties');
is( query(q{SELECT order_id, revenue, coalesce(tax::text, '-'), coalesce(shipping_method, '-')
            FROM web_shop.order_completed ORDER BY order_id}),
    "order-1001|12.5|-|ups\norder-1002|20|1.5|-",
    'web_shop.order_completed: a new property is a new column; both orders are there');
my %after = map { $_ => 1 } schema_columns('web_shop');
my @lost = grep { !$after{$_} } @columns_before;
ok(@columns_before && !@lost,
    'web_shop: every column seen before keeps its name, type and position (' . @columns_before . ' columns)')
  or diag('changed or lost: ' . join(', ', @lost));
is( query(q{SELECT string_agg(event, ',' ORDER BY event) FROM web_shop.tracks}),
    'coupon_applied,order_completed,order_completed',
    'web_shop.tracks: every track');
is( query(q{SELECT count(*), string_agg(plan, ',' ORDER BY "timestamp") FROM web_shop.identifies}),
    '2|free,pro',
    'web_shop.identifies: both identifies');
is( query(q{SELECT id, plan, company_size, email, address_city FROM web_shop.users}),
    'wh-user-1|pro|40|ada@example.com|Berlin',
    'web_shop.users: still one row for the user, with the latest traits');
is( query(q{SELECT count(*), count(DISTINCT schema_name), min(schema_name)
            FROM segment_warehouse_schema('Web Shop')
            WHERE (relation, column_name) IN (('order_completed', 'revenue'), ('coupon_applied', 'coupon_code'),
                                              ('users', 'company_size'), ('pages', 'plan_shown'))}),
    '4|1|web_shop',
    'segment_warehouse_schema lists the discovered columns of the source');

# --- Nothing went to the dead letter -------------------------------------------------------------------------
is(sql("SELECT count(*) FROM segment_rejected WHERE id > $rejected_before"),
    '0', 'no message sent by an SDK was rejected')
  or diag(sql("SELECT reason, detail, payload FROM segment_rejected WHERE id > $rejected_before LIMIT 5"));

note('discovery latencies (s): ' . join(', ', map { defined $_ ? sprintf('%.2f', $_) : 'over the bound' } @latencies));

$node->stop;
done_testing();
