# When the database cannot take a batch (disk full, a lock that does not come), every request of the batch is
# answered 503 database_unavailable with Retry-After, nothing is lost, the worker keeps serving and the same
# request succeeds once the cause is gone. When the database refuses one message, only that message goes to the
# dead letter (refused_by_database) and the rest is stored. Settings change on reload (SIGHUP).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('webhook_failures', conf => "lock_timeout = 1000\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $key = sql(q{SELECT segment_create_source('failures')});
my %acked;
my $next_id = 0;

sub answer { my ($response) = @_; return decode_json_body($response) // {}; }
sub status_of { my ($response) = @_; return $response ? $response->{status} : 'no answer'; }

# POST a body, remembering the messageIds it carries when the answer is 200.
sub post_and_record
{
    my ($messages, %options) = @_;
    my $response = post_webhook($port, encode_json_compact($messages), key => $key, %options);
    if ($response && $response->{status} == 200)
    {
        $acked{ $_->{messageId} } = 1 for ref $messages eq 'ARRAY' ? @$messages : ($messages);
    }
    return $response;
}

ok(wait_until(10, sub { my $r = post_and_record(track_message('warm-up'), quiet => 1); $r && $r->{status} == 200 }),
    'the worker knows the source');

sub is_unavailable
{
    my ($response, $retry_after, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($response && $response->{status}, 503, "$name: 503") or diag(explain($response));
    is(error_code($response), 'database_unavailable', "$name: code database_unavailable");
    is($response && $response->{headers}{'retry-after'}, $retry_after, "$name: Retry-After $retry_after");
}

# Send several requests at once on their own connections, then read every answer.
sub post_concurrently
{
    my (@bodies) = @_;
    my @connections;
    for my $body (@bodies)
    {
        my $connection = http_connect($port, timeout => 15);
        $connection->send(
            build_request($port, 'POST', "/v1/webhook?writeKey=$key",
                headers => [ [ 'Content-Type', 'application/json' ] ],
                body => encode_json_compact($body)));
        push @connections, $connection;
    }
    my @responses = map { $_->read_response } @connections;
    $_->close for @connections;
    return @responses;
}

my $rejected_before = sql('SELECT count(*) FROM segment_rejected');

# --- A batch that cannot commit: disk full ---------------------------------------------------------------------
sql(q{
    CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING ERRCODE = 'disk_full', MESSAGE = 'test: could not extend file, no space left';
    END $$;
    CREATE TRIGGER test_disk_full BEFORE INSERT ON segment_events FOR EACH ROW EXECUTE FUNCTION test_disk_full();
});
my @full_batch_1 = (track_message('full-1'), track_message('full-2'));
my @full_batch_2 = (track_message('full-3'));
my @responses = post_concurrently(\@full_batch_1, \@full_batch_2);
is_unavailable($responses[0], 5, 'disk full, first request');
is_unavailable($responses[1], 5, 'disk full, second request');
# The worker keeps answering (whether /health reports the failed commit is its own business).
my $health = http_request($port, 'GET', '/health');
ok($health && ($health->{status} == 200 || $health->{status} == 503),
    'the worker keeps answering after a failed batch');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id LIKE 'full-%'}), '0',
    'nothing stored from the failed batch');
is(sql('SELECT count(*) FROM segment_rejected'), $rejected_before, 'nothing dead-lettered for a failed batch');

sql('DROP TRIGGER test_disk_full ON segment_events');
my $response = post_and_record(\@full_batch_1);
is($response && $response->{status}, 200, 'disk no longer full: the same request succeeds');
is(answer($response)->{accepted}, 2, 'disk no longer full: both messages stored');
$response = post_and_record(\@full_batch_2);
is(answer($response)->{accepted}, 1, 'disk no longer full: the other request succeeds too');
$health = http_request($port, 'GET', '/health');
is($health && $health->{status}, 200, '/health answers 200 once batches commit again');

# --- Reload: new limits and Retry-After without a restart -------------------------------------------------------
sub body_of_size
{
    my ($message_id, $size) = @_;
    my $empty = encode_json_compact(track_message($message_id, properties => { padding => '' }));
    return track_message($message_id, properties => { padding => 'x' x ($size - length $empty) });
}
is(status_of(post_and_record(body_of_size('reload-1', 3000))), 200, 'a 3000-byte body before the reload');
$node->append_conf('postgresql.conf',
    "segment_webhook.max_request_size = 2000\nsegment_webhook.retry_after = 9\n");
$node->reload;
my $reload_attempt = 1;
ok( wait_until(10, sub {
            my $r = post_and_record(body_of_size('reload-' . ++$reload_attempt, 3000), quiet => 1);
            $r && $r->{status} == 413;
        }),
    'after the reload, a 3000-byte body is over max_request_size');
is(status_of(post_and_record(body_of_size('reload-small', 1500))), 200, 'a 1500-byte body still fits');

# --- A batch that cannot commit: a lock that does not come in time ----------------------------------------------
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE segment_events IN ACCESS EXCLUSIVE MODE');
my @locked_batch = (track_message('locked-1'), track_message('locked-2'));
$response = post_and_record(\@locked_batch);
is_unavailable($response, 9, 'table locked (lock_timeout)');
$response = http_request($port, 'GET', '/nope');
is($response && $response->{status}, 404, 'the worker keeps answering while the table is locked');
$locker->query_safe('COMMIT');
$locker->quit;
$response = post_and_record(\@locked_batch);
is($response && $response->{status}, 200, 'lock released: the same request succeeds');
is(answer($response)->{accepted}, 2, 'lock released: both messages stored');
is(sql('SELECT count(*) FROM segment_rejected'), $rejected_before, 'nothing dead-lettered while locked');
$health = http_request($port, 'GET', '/health');
is($health && $health->{status}, 200, '/health after the lock is gone');

# --- One message the database refuses: dead-lettered, its neighbours stored ------------------------------------
sql(q{
    CREATE FUNCTION test_refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.event = 'Poison' THEN
            RAISE EXCEPTION 'test trigger refuses event % of message %', NEW.event, NEW.message_id;
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER test_refuse_poison BEFORE INSERT ON segment_events
        FOR EACH ROW EXECUTE FUNCTION test_refuse_poison();
});
$response = post_and_record([ track_message('poison-ok-1'), track_message('poison-1', event => 'Poison'),
    track_message('poison-ok-2') ]);
delete $acked{'poison-1'};
is($response && $response->{status}, 200, 'a batch with one refused message: 200');
is_deeply([ @{ answer($response) }{qw(accepted duplicates rejected)} ], [ 2, 0, 1 ],
    'a batch with one refused message: accepted 2, rejected 1');
is(sql(q{SELECT string_agg(message_id, ',' ORDER BY message_id) FROM segment_events WHERE message_id LIKE 'poison%'}),
    'poison-ok-1,poison-ok-2', 'the neighbours of the refused message are stored');
is( sql(q{SELECT reason, detail LIKE '%test trigger refuses event Poison of message poison-1%', payload ->> 'event'
    FROM segment_rejected WHERE message_id = 'poison-1'}),
    'refused_by_database|t|Poison',
    'the refused message is dead-lettered with the database\'s message');

# Requests committed together: one carrying a refused message does not harm the other.
@responses = post_concurrently([ track_message('poison-ok-3') ], [ track_message('poison-2', event => 'Poison') ]);
is_deeply([ map { $_ ? $_->{status} : 'none' } @responses ], [ 200, 200 ],
    'two requests, one refused message: both 200');
is_deeply(
    [ map { my $a = answer($_); ($a->{accepted} // '-') . '/' . ($a->{rejected} // '-') } @responses ],
    [ '1/0', '0/1' ],
    'two requests, one refused message: each answer counts its own messages');
$acked{'poison-ok-3'} = 1;
is(sql(q{SELECT reason FROM segment_rejected WHERE message_id = 'poison-2'}), 'refused_by_database',
    'the second refused message is dead-lettered');
sql('DROP TRIGGER test_refuse_poison ON segment_events');

# --- Nothing acknowledged is missing ---------------------------------------------------------------------------
my %stored = map { $_ => 1 } split /\n/, sql('SELECT message_id FROM segment_events');
my @missing = grep { !$stored{$_} } sort keys %acked;
is_deeply(\@missing, [], 'every acknowledged message is stored');

$node->stop;
done_testing();
