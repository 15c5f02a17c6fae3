# Rotation without downtime, over HTTP: after segment_rotate_secret() and segment_rotate_write_key(), the new
# secret or key is accepted at once (the worker reloads segment_sources on the change) and the previous one
# keeps being accepted until its grace ends; then it is refused (401) without anything touching the table again
# (the worker drops it on its own, within a second of the end). A second rotation drops the older previous
# value; a grace of 0 ends the previous one at once; a source that had no secret needs signatures at once.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('rotation');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $key_1 = sql(q{SELECT segment_create_source('rotating', 'secret-1')});
my $unsigned_key = sql(q{SELECT segment_create_source('unsigned')});
my $next_id = 0;
my @accepted;    # messageIds answered 200 with accepted = 1

# POST one new track message with a write key and an optional secret; returns the response.
sub send_track
{
    my ($key, $secret, %options) = @_;
    my $message_id = 'rotation-' . ++$next_id;
    my $body = encode_json_compact(track_message($message_id));
    my $response = post_webhook($port, $body, key => $key, (defined $secret ? (secret => $secret) : ()), %options);
    push @accepted, $message_id
      if $response && $response->{status} == 200 && ((decode_json_body($response) // {})->{accepted} // 0) == 1;
    return $response;
}

sub status_is
{
    my ($response, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = is($response && $response->{status}, $status, "$name: $status");
    $ok &&= is(error_code($response), $code, "$name: code $code") if $status != 200;
    diag(explain($response)) unless $ok;
    return $ok;
}

# Send until the answer has $status (at most $seconds); returns whether it came.
sub becomes
{
    my ($seconds, $status, $key, $secret) = @_;
    return wait_until($seconds, sub {
        my $response = send_track($key, $secret, quiet => 1);
        $response && $response->{status} == $status;
    });
}

ok(becomes(10, 200, $key_1, 'secret-1'), 'the worker knows the source');

# --- Shared secret ---------------------------------------------------------------------------------------------
sql(q{SELECT segment_rotate_secret('rotating', 'secret-2', '1 hour')});
ok(becomes(10, 200, $key_1, 'secret-2'), 'the new secret is accepted once the worker reloads (at once)');
status_is(send_track($key_1, 'secret-1'), 200, '', 'the previous secret is still accepted during the grace');
status_is(send_track($key_1, 'secret-2'), 200, '', 'and the new one');
status_is(send_track($key_1, 'secret-0'), 401, 'invalid_signature', 'another secret is refused');
status_is(send_track($key_1, undef), 401, 'invalid_signature', 'no signature is refused');

# A second rotation with a short grace: secret-1 is dropped at once, secret-2 lasts two seconds.
sql(q{SELECT segment_rotate_secret('rotating', 'secret-3', '2 seconds')});
ok(becomes(10, 200, $key_1, 'secret-3'), 'the third secret is accepted at once');
status_is(send_track($key_1, 'secret-1'), 401, 'invalid_signature',
    'the first secret stopped with the second rotation');
ok(becomes(30, 401, $key_1, 'secret-2'), 'the second secret is refused once its grace has ended');
status_is(send_track($key_1, 'secret-2'), 401, 'invalid_signature', 'and stays refused');
status_is(send_track($key_1, 'secret-3'), 200, '', 'the current secret is still accepted');

# A grace of 0: the previous secret stops at once.
sql(q{SELECT segment_rotate_secret('rotating', 'secret-4', '0')});
ok(becomes(10, 200, $key_1, 'secret-4'), 'rotated with no grace: the new secret is accepted');
status_is(send_track($key_1, 'secret-3'), 401, 'invalid_signature', 'and the previous one is refused at once');

# A source without a secret: unsigned requests are accepted until it gets one, then refused at once.
status_is(send_track($unsigned_key, undef), 200, '', 'a source without a secret accepts an unsigned request');
status_is(send_track($unsigned_key, 'first-secret'), 200, '',
    'and ignores a signature (senders can sign before the secret is set)');
sql(q{SELECT segment_rotate_secret('unsigned', 'first-secret')});
ok(becomes(10, 401, $unsigned_key, undef), 'once it has a secret, an unsigned request is refused');
status_is(send_track($unsigned_key, 'first-secret'), 200, '', 'and a signed one accepted');

# --- Write key -------------------------------------------------------------------------------------------------
my $key_2 = sql(q{SELECT segment_rotate_write_key('rotating', '1 hour')});
isnt($key_2, $key_1, 'segment_rotate_write_key() returns a new key');
ok(becomes(10, 200, $key_2, 'secret-4'), 'the new key is accepted once the worker reloads (at once)');
status_is(send_track($key_1, 'secret-4'), 200, '', 'the previous key is still accepted during the grace');
status_is(send_track($key_1, 'secret-4', key_in => 'bearer'), 200, '', 'in every form (Bearer)');
status_is(send_track($key_1, 'secret-4', key_in => 'basic'), 200, '', 'in every form (Basic)');
my $in_body = encode_json_compact(track_message('rotation-in-body', writeKey => $key_1));
status_is(post_webhook($port, $in_body, key_in => 'none', secret => 'secret-4'),
    200, '', 'in every form (in the body)');
push @accepted, 'rotation-in-body';
status_is(send_track($key_1, 'secret-3'), 401, 'invalid_signature',
    'the previous key still needs a valid signature');

my $key_3 = sql(q{SELECT segment_rotate_write_key('rotating', '2 seconds')});
ok(becomes(10, 200, $key_3, 'secret-4'), 'the third key is accepted at once');
status_is(send_track($key_1, 'secret-4'), 401, 'invalid_write_key', 'the first key stopped with the second rotation');
ok(becomes(30, 401, $key_2, 'secret-4'), 'the second key is refused once its grace has ended');
status_is(send_track($key_2, 'secret-4'), 401, 'invalid_write_key', 'and stays refused');
status_is(send_track($key_3, 'secret-4'), 200, '', 'the current key is still accepted');

my $key_4 = sql(q{SELECT segment_rotate_write_key('rotating', '0')});
ok(becomes(10, 200, $key_4, 'secret-4'), 'rotated with no grace: the new key is accepted');
status_is(send_track($key_3, 'secret-4'), 401, 'invalid_write_key', 'and the previous one is refused at once');

# --- What was accepted was stored, for the right source ----------------------------------------------------------
is( sql(q{SELECT string_agg(e.message_id, ',' ORDER BY e.message_id COLLATE "C") FROM segment_events e}),
    join(',', sort @accepted), 'exactly the accepted messages are stored');
is( sql(q{SELECT count(*) FROM segment_events e JOIN segment_sources s ON s.id = e.source_id
          WHERE s.name = 'rotating' AND e.message_id <> 'rotation-in-body'}) + 0
      + sql(q{SELECT count(*) FROM segment_events e JOIN segment_sources s ON s.id = e.source_id
              WHERE s.name = 'unsigned'}),
    scalar(@accepted) - 1, 'each under its own source');
is(sql(q{SELECT count(*) FROM segment_rejected}), '0', 'nothing refused was dead-lettered');
unlike(slurp_file($node->logfile), qr/terminated by signal|reinitializing/, 'no crash');

done_testing();
