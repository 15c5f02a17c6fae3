# The live tail: after each committed batch, one NOTIFY on channel segment_events per source of the batch, with
# that source's counts and the highest id it stored ({"source", "accepted", "duplicates", "rejected", "last_id"}),
# sent by the worker (as the ingest role) inside the batch's transaction: a LISTENing session hears of a batch
# when its rows are visible, and never of a batch that failed. segment_ingest() notifies at its caller's COMMIT.
# segment_recent() then shows what was notified.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

# A long lock_timeout: requests sent while a batch waits for a lock share the next batch.
my ($node, $port) = start_webhook_node('live_tail', conf => "segment_webhook.lock_timeout = '60s'\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub answer { my ($response) = @_; return decode_json_body($response) // {}; }

my $web_key = sql(q{SELECT segment_create_source('web')});
my $app_key = sql(q{SELECT segment_create_source('app')});
my $long_name = 'long-' . ('é' x 1500);    # 3005 bytes in UTF-8
my $long_key = sql(qq{SELECT segment_create_source('$long_name')});
ok(wait_until(10, sub { my $r = post_webhook($port, encode_json_compact(track_message('warm-up')), key => $web_key,
            quiet => 1); $r && $r->{status} == 200 }),
    'the worker knows the sources');

# The listener: a psql session that has run LISTEN. psql prints the notifications it received with the output of
# the next command; each is decoded and kept with the pid of the backend that sent it.
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN segment_events');
my @heard;
sub listen_once
{
    my $output = $listener->query_safe('SELECT 1');
    while ($output =~ /Asynchronous notification "segment_events" with payload "(.*)" received from server process with PID (\d+)\./g)
    {
        push @heard, { payload => JSON::PP->new->decode($1), text => $1, pid => $2 };
    }
}
# Everything heard until `count` notifications have arrived (at most 10 s), then forgotten.
sub hear
{
    my ($count) = @_;
    wait_until(10, sub { listen_once(); @heard >= $count });
    my @got = @heard;
    @heard = ();
    return @got;
}
sub batches { return sql('SELECT sum(batches_committed) FROM segment_webhook_stats'); }
sub last_id_of
{
    my ($source) = @_;
    return sql(qq{SELECT max(e.id) FROM segment_events e JOIN segment_sources s ON s.id = e.source_id
                  WHERE s.name = '$source'});
}

hear(1);    # the warm-up's
my ($worker_pid) = worker_pids($node);

# --- One request: new events, a duplicate, an invalid message ----------------------------------------------------
my $response = post_webhook($port,
    encode_json_compact([ track_message('w-1'), track_message('w-2'), track_message('warm-up'),
        track_message('w-bad', event => undef) ]),
    key => $web_key);
is_deeply(answer($response), { success => JSON::PP::true, accepted => 2, duplicates => 1, rejected => 1 },
    'one request: 2 stored, 1 duplicate, 1 rejected');
my @got = hear(1);
is(scalar @got, 1, 'one request: one notification');
is_deeply($got[0]{payload},
    { source => 'web', accepted => 2, duplicates => 1, rejected => 1, last_id => last_id_of('web') + 0 },
    'one request: its counts, and the id of the last event stored');
is($got[0]{pid}, $worker_pid, 'sent by the worker (its ingest role may NOTIFY)');
like($got[0]{text}, qr/^\{"source":"web","accepted":2,"duplicates":1,"rejected":1,"last_id":\d+\}$/,
    'the payload is compact JSON in the documented key order');
# segment_recent shows what was notified
is( sql(q{SELECT string_agg(kind || ':' || coalesce(message_id, '') || ':' || coalesce(reason, ''), ',')
          FROM segment_recent('web', 3)}),
    'rejected:w-bad:missing_event,event:w-2:,event:w-1:,event:warm-up:',
    'segment_recent: the dead letter and the latest events of web, newest first');

# --- One batch of several requests and two sources: one notification per source -----------------------------------
# The first request's batch waits for a lock; the requests sent meanwhile make the next batch, together.
my @connections = map { http_connect($port, timeout => 60) } 1 .. 5;
ok(wait_until(10, sub { sql('SELECT sum(open_connections) FROM segment_webhook_stats') >= 5 }),
    'five connections open');
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE segment_events IN SHARE MODE');
my $batches_before = batches();
my @bodies = (
    [ $web_key, encode_json_compact([ track_message('w-3'), track_message('w-4') ]) ],
    [ $web_key, encode_json_compact([ track_message('w-5'), track_message('w-6') ]) ],
    [ $app_key, encode_json_compact(track_message('a-1')) ],
    [ $web_key, encode_json_compact([ track_message('w-7'), track_message('w-1') ]) ],
    [ $app_key, '{"type":"track",' ]);
sub send_body
{
    my ($n) = @_;
    my ($key, $body) = @{ $bodies[$n] };
    $connections[$n]->send(build_request($port, 'POST', "/v1/webhook?writeKey=$key",
            headers => [ [ 'Content-Type', 'application/json' ] ], body => $body));
}
send_body(0);
ok( wait_until(10, sub {
            sql(q{SELECT count(*) FROM pg_stat_activity
                  WHERE backend_type = 'segment_webhook worker' AND wait_event_type = 'Lock'}) == 1 }),
    'the first batch waits for the lock');
send_body($_) for 1 .. 4;
sleep 1;    # the bodies are in the worker's socket buffers, read together once it is free again
$locker->query_safe('COMMIT');
my @responses = map { $_->read_response } @connections;
$_->close for @connections;
$locker->quit;
is_deeply([ map { $_ && $_->{status} } @responses ], [ 200, 200, 200, 200, 400 ],
    'five requests: four stored, one not JSON (400, dead-lettered)');
is(batches() - $batches_before, 2, 'in two batches: the first request, then the four others together');
@got = hear(3);
is(scalar @got, 3, 'three notifications: one for the first batch, one per source of the second');
is_deeply($got[0]{payload}, { source => 'web', accepted => 2, duplicates => 0, rejected => 0,
        last_id => sql(q{SELECT id FROM segment_events WHERE message_id = 'w-4'}) + 0 },
    'the first batch: web, 2 stored');
my @second = sort { $a->{payload}{source} cmp $b->{payload}{source} } @got[ 1 .. 2 ];
is_deeply($second[0]{payload},
    { source => 'app', accepted => 1, duplicates => 0, rejected => 1, last_id => last_id_of('app') + 0 },
    'the second batch, app: 1 stored, the invalid body rejected');
is_deeply($second[1]{payload},
    { source => 'web', accepted => 3, duplicates => 1, rejected => 0, last_id => last_id_of('web') + 0 },
    'the second batch, web: the counts of its two requests together');

# --- Nothing stored: last_id is null ------------------------------------------------------------------------------
$response = post_webhook($port, encode_json_compact([ track_message('w-1'), track_message('w-bad-2', event => undef) ]),
    key => $web_key);
is($response && $response->{status}, 200, 'a request of a duplicate and an invalid message');
@got = hear(1);
is_deeply($got[0]{payload}, { source => 'web', accepted => 0, duplicates => 1, rejected => 1, last_id => undef },
    'nothing stored: last_id null');

# --- A batch that fails: no notification --------------------------------------------------------------------------
sql(q{
    CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING ERRCODE = 'disk_full', MESSAGE = 'test: could not extend file, no space left';
    END $$;
    CREATE TRIGGER test_disk_full BEFORE INSERT ON segment_events FOR EACH ROW EXECUTE FUNCTION test_disk_full();
});
$response = post_webhook($port, encode_json_compact([ track_message('failed-1'), track_message('failed-bad', event => undef) ]),
    key => $web_key);
is($response && $response->{status}, 503, 'a batch that cannot be stored: 503');
sql('DROP TRIGGER test_disk_full ON segment_events');
$response = post_webhook($port, encode_json_compact(track_message('after-failure')), key => $app_key);
is($response && $response->{status}, 200, 'the next batch is stored');
# Notifications arrive in commit order: one of the failed batch would come before this one.
@got = hear(1);
listen_once();
push @got, @heard;
@heard = ();
is_deeply([ map { $_->{payload} } @got ],
    [ { source => 'app', accepted => 1, duplicates => 0, rejected => 0, last_id => last_id_of('app') + 0 } ],
    'the failed batch was never notified; the next one was');

# --- The INSERT path (direct_insert = off): the ids only when the ingest role may read them ---------------------
sql(q{ALTER SYSTEM SET segment_webhook.direct_insert = off});
sql('SELECT pg_reload_conf()');
# Once the worker has reloaded, it writes through INSERT, which does not learn the ids: last_id is null.
my $insert_path = 0;
ok( wait_until(20, sub {
            ++$insert_path;
            my $r = post_webhook($port, encode_json_compact(track_message("i-$insert_path")), key => $web_key);
            return 0 unless answer($r)->{accepted};
            my @notified = hear(1);
            return @notified && $notified[0]{payload}{accepted} == 1 && !defined $notified[0]{payload}{last_id};
        }),
    'direct_insert = off: segment_webhook_ingest cannot read segment_events.id, so last_id is null');
sql(q{GRANT SELECT (id) ON segment_events TO segment_webhook_ingest});
$response = post_webhook($port, encode_json_compact([ track_message('j-2'), track_message('j-1') ]), key => $web_key);
is(answer($response)->{accepted}, 2, 'direct_insert = off, SELECT (id) granted: stored');
@got = hear(1);
is_deeply($got[0]{payload},
    { source => 'web', accepted => 2, duplicates => 0, rejected => 0, last_id => last_id_of('web') + 0 },
    'direct_insert = off, SELECT (id) granted: the last id');
sql(q{REVOKE SELECT (id) ON segment_events FROM segment_webhook_ingest});
sql(q{ALTER SYSTEM RESET segment_webhook.direct_insert});
sql('SELECT pg_reload_conf()');

# --- A source name too long for a notification is cut at a character boundary ----------------------------------
$response = post_webhook($port, encode_json_compact(track_message('l-1')), key => $long_key);
is($response && $response->{status}, 200, 'a source with a 3005-byte name');
@got = hear(1);
is($got[0]{payload}{source}, 'long-' . ('é' x 509),
    'its name is cut to at most 1024 bytes, on a whole character (5 + 2 x 509 = 1023)');
cmp_ok(length($got[0]{text}), '<', 8000, 'the payload stays under Postgres\' 8000 bytes');

# --- A deletion notification a source honours counts as accepted, as in the answer ------------------------------
sql(q{UPDATE segment_sources SET honor_deletions = true WHERE name = 'app'});
my $deletion_notice;
ok( wait_until(15, sub {
            my $r = post_webhook($port,
                encode_json_compact({ type => 'delete', userId => 'nobody', timestamp => '2024-05-01T10:00:00.000Z' }),
                key => $app_key, quiet => 1);
            my @notified = hear(1);
            # (until the worker has seen honor_deletions, the notification is dead-lettered)
            return 0 unless $r && $r->{status} == 200 && answer($r)->{accepted} == 1 && @notified;
            $deletion_notice = $notified[-1]{payload};
            return 1;
        }),
    'a deletion notification is accepted (recorded)');
is_deeply($deletion_notice, { source => 'app', accepted => 1, duplicates => 0, rejected => 0, last_id => undef },
    'its notification counts it as accepted, with no event stored');

# --- segment_ingest() notifies at its caller's COMMIT, not on ROLLBACK -----------------------------------------
sql(q{BEGIN; SELECT segment_ingest('app', '{"type":"track","event":"E","userId":"u","messageId":"rolled-back"}'); ROLLBACK;});
# (a-1 again as it was sent: a retry, so a duplicate)
my $retry = encode_json_compact(track_message('a-1'));
sql(qq{SELECT segment_ingest('app', '[{"type":"track","event":"E","userId":"u","messageId":"sql-1"},
      {"type":"track","userId":"u","messageId":"sql-bad"}, $retry]')});
@got = hear(1);
listen_once();
push @got, @heard;
@heard = ();
is_deeply([ map { $_->{payload} } @got ],
    [ { source => 'app', accepted => 1, duplicates => 1, rejected => 1, last_id => last_id_of('app') + 0 } ],
    'segment_ingest: one notification for the committed call, none for the rolled back one');
# ... unless the session turned notify off
sql(q{SET segment_webhook.notify = off;
      SELECT segment_ingest('app', '{"type":"track","event":"E","userId":"u","messageId":"sql-quiet"}');});
$response = post_webhook($port, encode_json_compact(track_message('a-2')), key => $app_key);
@got = hear(1);
listen_once();
push @got, @heard;
@heard = ();
is_deeply([ map { $_->{payload}{accepted} } @got ], [1], 'segment_webhook.notify = off in a session: nothing from it');

# --- notify = off for the worker ---------------------------------------------------------------------------------
sql(q{ALTER SYSTEM SET segment_webhook.notify = off});
sql('SELECT pg_reload_conf()');
# Once the worker has reloaded, its batch is not heard: the next notification is the marker sent after it by a
# session that turned notify on for itself.
my $quiet = 0;
ok( wait_until(20, sub {
            ++$quiet;
            my $r = post_webhook($port, encode_json_compact(track_message("quiet-$quiet")), key => $app_key);
            return 0 unless $r && $r->{status} == 200;
            sql(qq{SET segment_webhook.notify = on;
                   SELECT segment_ingest('web', '{"type":"track","event":"E","userId":"u","messageId":"marker-$quiet"}')});
            my @first = hear(1);
            return @first && $first[0]{payload}{source} eq 'web';
        }),
    'notify = off: once reloaded, the worker notifies nothing');
is(sql(qq{SELECT count(*) FROM segment_events WHERE message_id = 'quiet-$quiet'}), '1', 'notify = off: the batch was stored');

$listener->quit;
done_testing();
