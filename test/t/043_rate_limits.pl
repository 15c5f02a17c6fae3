# Per-source rate limits (segment_sources.max_events_per_second), with two workers sharing one budget: over the
# limit a request gets 429 rate_limited with Retry-After and nothing of it is stored; what was answered 200 stays
# within the limit plus one second's burst (from the stored rows' received_at, loosely: an outcome, not a timing
# benchmark); analytics-node, which honours Retry-After, ends with every event stored; NULL is unlimited; a new
# limit applies within about a second.
#
# The analytics-node part needs test/sdk/node_modules (`cd test/sdk && npm ci`), as 020_sdk_clients.pl does.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Time::HiRes qw(time usleep);

my ($node, $port) = start_webhook_node('rate_limits', workers => 2, conf => "segment_webhook.workers = 2\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }

my %key;
my %id;
for my $source (qw(limited unlimited sdk))
{
    $key{$source} = sql("SELECT segment_create_source('$source')");
    $id{$source} = sql("SELECT id FROM segment_sources WHERE name = '$source'");
}
my $limit = 20;
sql("UPDATE segment_sources SET max_events_per_second = $limit WHERE name = 'limited'");
sql("UPDATE segment_sources SET max_events_per_second = 50 WHERE name = 'sdk'");

# A /v1/batch request of $count track calls with fresh messageIds, on a new connection (so that the kernel spreads
# the requests over both workers). Returns the response and the messageIds sent.
my $sequence = 0;
sub send_batch
{
    my ($source, $count, %options) = @_;
    my @ids = map { "$source-" . ++$sequence } 1 .. $count;
    my $body = encode_json_compact({ batch => [ map { track_message($_) } @ids ] });
    my $response = post_webhook($port, $body, key => $key{$source}, key_in => 'basic', path => '/v1/batch',
        %options);
    return ($response, @ids);
}

# Every worker must know the sources and their limits before the burst.
ok( wait_until(10, sub {
            my ($r) = send_batch('limited', 1, quiet => 1);
            $r && ($r->{status} == 200 || $r->{status} == 429);
        }),
    'the workers know the limited source');
usleep(1_200_000);    # the probe's event has flowed back: the bucket is full again

# --- (1) and (3): a burst at two workers, one budget ---------------------------------------------------------
my ($errors_before, $limited_before) =
  split /\|/, sql('SELECT sum(request_errors), sum(rate_limited) FROM segment_webhook_stats');
my %limited_by_worker_before =
  map { split /:/ } split /\n/, sql(q{SELECT worker || ':' || rate_limited FROM segment_webhook_stats});
my $per_request = 4;
my (%statuses, @accepted_ids, @refused_ids, %bad_refusals);
my $started = time;
while (time - $started < 4)
{
    my ($response, @ids) = send_batch('limited', $per_request, quiet => 1);
    my $status = $response ? $response->{status} : 0;
    $statuses{$status}++;
    if ($status == 200)
    {
        push @accepted_ids, @ids;
    }
    elsif ($status == 429)
    {
        push @refused_ids, @ids;
        my $retry_after = $response->{headers}{'retry-after'} // '';
        $bad_refusals{"Retry-After '$retry_after'"}++ unless $retry_after =~ /^[1-9]\d*$/;
        $bad_refusals{'error code ' . error_code($response)}++ unless error_code($response) eq 'rate_limited';
        my $body = decode_json_body($response);
        $bad_refusals{'body ' . $response->{body}}++
          unless ref $body eq 'HASH' && defined $body->{success} && !$body->{success}
          && length($body->{error}{message} // '') > 0;
    }
}
note('burst answers: ' . join(', ', map { "$_: $statuses{$_}" } sort keys %statuses));
is_deeply([ sort { $a <=> $b } keys %statuses ], [ 200, 429 ], 'the burst is answered 200 and 429, nothing else');
is_deeply(\%bad_refusals, {}, 'every 429 has Retry-After (whole seconds, at least 1) and the rate_limited JSON body');

my $in_list = sub { return join(',', map { "'$_'" } @_) || "''"; };
is(sql("SELECT count(*) FROM segment_events WHERE message_id IN (" . $in_list->(@refused_ids) . ')'),
    0, 'nothing of a request answered 429 is stored');
is(sql("SELECT count(*) FROM segment_events WHERE message_id IN (" . $in_list->(@accepted_ids) . ')'),
    scalar @accepted_ids, 'every event answered 200 is stored');

# The events answered 200 within the time they span: at most one second's budget (the bucket is full at the
# start) plus the limit times that time. Loose by one second's budget and a request, for a worker descheduled
# between reading a request and charging it. With a budget per worker instead, twice as much would pass.
my ($stored, $span) = split /\|/, sql(qq{
    SELECT count(*), extract(epoch FROM max(received_at) - min(received_at))
    FROM segment_events WHERE source_id = $id{limited} AND message_id IN (} . $in_list->(@accepted_ids) . ')');
my $allowed = $limit + $limit * $span;
note("stored $stored events in $span s; the limit allows $allowed");
cmp_ok($stored, '<=', $allowed + $limit + $per_request,
    'the events answered 200 stay within the limit plus one second\'s burst');
cmp_ok($stored, '>=', $limit, 'the source got at least its first second\'s budget');

my %limited_by_worker =
  map { split /:/ } split /\n/, sql(q{SELECT worker || ':' || rate_limited FROM segment_webhook_stats});
note('429 answers by worker: ' . join(', ', map { "$_: $limited_by_worker{$_}" } sort keys %limited_by_worker));
is(scalar(grep { $limited_by_worker{$_} > ($limited_by_worker_before{$_} // 0) } keys %limited_by_worker),
    2, 'both workers refused requests of the burst: the budget above is theirs together');
my ($errors_after, $limited_after) =
  split /\|/, sql('SELECT sum(request_errors), sum(rate_limited) FROM segment_webhook_stats');
is($limited_after - $limited_before, $statuses{429} // 0, 'segment_webhook_stats.rate_limited counts the 429 answers');
is($errors_after - $errors_before, 0, 'a 429 is not counted as a request error');

# A request larger than one second's budget is not refused forever: it passes once the bucket is full, and the
# requests after it wait until the debt is paid.
ok(wait_until(10, sub { my ($r) = send_batch('limited', 5 * $limit, quiet => 1); $r && $r->{status} == 200 }),
    'a request of five seconds\' budget is admitted once the bucket is full');
my ($after_big) = send_batch('limited', 1);
is($after_big->{status}, 429, 'the next request waits while the bucket is in debt');
cmp_ok($after_big->{headers}{'retry-after'} // 0, '>=', 3, 'its Retry-After counts the debt (about four seconds)');
{
    # While not even one event fits, a request is refused from its head: only the head of a 10 MB request is sent.
    my $connection = http_connect($port, timeout => 5);
    $connection->send(build_request($port, 'POST', '/v1/batch',
        headers => [ [ 'Content-Type', 'application/json' ], [ 'Authorization', basic_auth($key{limited}) ] ],
        content_length => 10_000_000));
    my $response = $connection->read_response(timeout => 5);
    is($response && $response->{status}, 429, 'a source in debt is answered 429 before the body is sent');
    is(error_code($response), 'rate_limited', 'from the head: rate_limited');
    $connection->close;
}

# --- (4): NULL is unlimited; a new limit applies within about a second ---------------------------------------
my $unlimited_ok = 1;
for (1 .. 10)
{
    my ($r) = send_batch('unlimited', 50);
    $unlimited_ok &&= $r && $r->{status} == 200;
}
ok($unlimited_ok, 'a source without a limit is never refused (500 events at once)');
is(sql("SELECT count(*) FROM segment_events WHERE source_id = $id{unlimited}"), 500, 'all of them are stored');

sql("UPDATE segment_sources SET max_events_per_second = 5 WHERE name = 'unlimited'");
my $changed_at = time;
ok(wait_until(10, sub { my ($r) = send_batch('unlimited', 10, quiet => 1); $r && $r->{status} == 429 }),
    'a new limit is applied');
note(sprintf('the new limit refused a request %.1f s after the UPDATE', time - $changed_at));
sql("UPDATE segment_sources SET max_events_per_second = NULL WHERE name = 'unlimited'");
ok( wait_until(10, sub {
            for (1 .. 3) { my ($r) = send_batch('unlimited', 10, quiet => 1); return 0 unless $r && $r->{status} == 200; }
            return 1;
        }),
    'a limit set back to NULL is lifted');

# --- (2): analytics-node honours Retry-After and ends with everything stored ---------------------------------
my $sdk_dir = File::Spec->catdir(dirname($FindBin::RealBin), 'sdk');
if (!-f "$sdk_dir/node_modules/\@segment/analytics-node/package.json")
{
    fail('analytics-node is not installed: run (cd test/sdk && npm ci --no-audit --no-fund) before the tests');
}
else
{
    my $events = 300;
    my ($stdout, $stderr) = ('', '');
    my $success = eval {
        IPC::Run::run([ 'node', "$sdk_dir/analytics_node_rate_limited.mjs", $port, $key{sdk}, $events, 20 ],
            '<', \undef, '>', \$stdout, '2>', \$stderr, IPC::Run::timeout(120));
    };
    ok($success, 'analytics-node delivered every event without reporting an error')
      or diag("exit status " . ($? >> 8) . ($@ ? " ($@)" : '') . "\n--- stdout\n$stdout\n--- stderr\n$stderr");
    note("analytics-node report: $stdout");
    my ($line) = grep { /^\{/ } split /\n/, $stdout;
    my $report = eval { JSON::PP->new->decode($line // '') } // {};
    cmp_ok($report->{statuses}{429} // 0, '>', 0, 'analytics-node was answered 429 on the way');
    is( sql(qq{SELECT count(*), count(DISTINCT (payload #>> '{properties,sequence}')::int)
               FROM segment_events WHERE source_id = $id{sdk}}),
        "$events|$events", 'analytics-node: every event is stored once');
}

$node->stop;
done_testing();
