# Who may send: the write key in any of the forms Segment and its SDKs use, X-Signature when the source has a
# shared secret, and changes to segment_sources (new, disabled, re-enabled, rotated key or secret) taking effect
# without a restart. Nothing from a refused request is stored, not even as a dead letter.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('webhook_auth');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my %key = (
    plain => sql(q{SELECT segment_create_source('plain')}),
    signed => sql(q{SELECT segment_create_source('signed', 's3cret')}));
my %acked;    # source name => [messageIds answered 200]
my $next_id = 0;

# POST one new track message for $source (a name in %key) and remember it when it was accepted.
# Options: those of post_webhook (key defaults to the source's key), plus in_body (put the key in the message).
sub send_track
{
    my ($source, %options) = @_;
    my $message_id = 'auth-' . ++$next_id;
    my %extra = $options{in_body} ? (writeKey => $options{key} // $key{$source}) : ();
    delete $options{in_body};
    my $body = encode_json_compact(track_message($message_id, %extra));
    my $response = post_webhook($port, $body, key => $key{$source}, %options);
    if ($response && $response->{status} == 200)
    {
        my $answer = decode_json_body($response) // {};
        push @{ $acked{$source} }, $message_id if ($answer->{accepted} // 0) == 1;
    }
    return $response;
}

sub status_is
{
    my ($response, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = is($response && $response->{status}, $status, "$name: $status");
    if ($status != 200)
    {
        my $body = decode_json_body($response) // {};
        $ok &&= is(error_code($response), $code, "$name: code $code");
        $ok &&= ok( ref $body eq 'HASH'
              && defined $body->{success}
              && !$body->{success}
              && length($body->{error}{message} // ''),
            "$name: JSON error body with a message");
    }
    diag(explain($response)) unless $ok;
    return $ok;
}

# Send until the answer has the expected status (or $seconds pass); returns the last response.
sub poll_until_status
{
    my ($seconds, $status, $send) = @_;
    my $response;
    wait_until($seconds, sub { $response = $send->(quiet => 1); $response && $response->{status} == $status });
    return $response;
}

ok(poll_until_status(10, 200, sub { send_track('plain', @_) }),
    'the worker knows the sources created after it started');

# --- Every form of the write key -----------------------------------------------------------------------------
status_is(send_track('plain', key_in => 'query'), 200, '', '?writeKey=');
status_is(send_track('plain', key_in => 'query', path => '/v1/webhook?utm_source=segment'),
    200, '', '?writeKey= after another query parameter');
status_is(send_track('plain', key_in => 'basic'), 200, '', 'Authorization: Basic base64("KEY:")');
status_is(send_track('plain', key_in => 'bearer'), 200, '', 'Authorization: Bearer KEY');
status_is(send_track('plain', key_in => 'none', in_body => 1), 200, '', '"writeKey" in the message');
status_is(send_track('plain', key_in => 'none', in_body => 1, content_type => 'text/plain'),
    200, '', '"writeKey" in a text/plain message (analytics.js)');
my $envelope_id = 'auth-envelope';
my $envelope = encode_json_compact({ batch => [ track_message($envelope_id) ], writeKey => $key{plain} });
status_is(post_webhook($port, $envelope, key_in => 'none'), 200, '', '"writeKey" in a {"batch":[…]} envelope');
push @{ $acked{plain} }, $envelope_id;

# --- Missing, unknown write keys ---------------------------------------------------------------------------------
status_is(send_track('plain', key_in => 'none'), 401, 'invalid_write_key', 'no write key');
my $unknown = 'UnknownWriteKey0123456789abcdefg';
status_is(send_track('plain', key => $unknown), 401, 'invalid_write_key', 'unknown key in the query');
status_is(send_track('plain', key => $unknown, key_in => 'basic'), 401, 'invalid_write_key', 'unknown key, Basic');
status_is(send_track('plain', key => $unknown, key_in => 'bearer'), 401, 'invalid_write_key', 'unknown key, Bearer');
status_is(send_track('plain', key => $unknown, key_in => 'none', in_body => 1),
    401, 'invalid_write_key', 'unknown key in the body');
status_is(send_track('plain', key => '', key_in => 'query'), 401, 'invalid_write_key', 'empty ?writeKey=');
status_is(post_webhook($port, '{"type":"track",', key => $unknown),
    401, 'invalid_write_key', 'invalid JSON from an unknown sender is refused, not dead-lettered');

# --- X-Signature for a source with a shared secret --------------------------------------------------------------
status_is(send_track('signed', secret => 's3cret'), 200, '', 'signed over the whole body');
status_is(send_track('signed'), 401, 'invalid_signature', 'no X-Signature');
status_is(send_track('signed', signature => sign_body('s3cret', 'something else')),
    401, 'invalid_signature', 'signature of another body');
status_is(send_track('signed', secret => 'wrong-secret'), 401, 'invalid_signature', 'signature under another secret');
status_is(send_track('signed', signature => ''), 401, 'invalid_signature', 'empty X-Signature');
status_is(send_track('signed', signature => 'not hex at all'), 401, 'invalid_signature', 'X-Signature not hex');
status_is(send_track('plain', secret => 'any-secret'), 200, '', 'a source without a secret ignores X-Signature');

# The signature is over the bytes as sent: the same message re-serialized is not signed.
my $message = track_message('auth-pretty');
my $compact = encode_json_compact($message);
(my $spaced = $compact) =~ s/,/, /g;
status_is(post_webhook($port, $spaced, key => $key{signed}, signature => sign_body('s3cret', $compact)),
    401, 'invalid_signature', 'signature of a differently formatted body');

# Actions batches: the raw bytes of the first array element, exactly as they appear (spaces inside kept).
my $first = qq({ "type": "track", "event": "Spaced", "userId": "u", "messageId": "auth-array-1" });
my $second = qq({"type":"track","event":"Second","userId":"u","messageId":"auth-array-2"});
my $array_body = "[ $first ,\n  $second ]";
status_is(post_webhook($port, $array_body, key => $key{signed}, signature => sign_body('s3cret', $first)),
    200, '', 'array signed on the raw bytes of its first element');
push @{ $acked{signed} }, 'auth-array-1', 'auth-array-2';
my $array_body_2 = "[$first,$second]" =~ s/auth-array-/auth-array-b/gr;
my ($first_2) = $array_body_2 =~ /^\[(\{.*?\}),/;
status_is(post_webhook($port, $array_body_2, key => $key{signed},
        signature => sign_body('s3cret', encode_json_compact(JSON::PP->new->decode($first_2)))),
    401, 'invalid_signature', 'array signed on a re-serialized first element');
status_is(post_webhook($port, $array_body_2, key => $key{signed},
        signature => sign_body('s3cret', ($array_body_2 =~ /,(\{.*\})\]$/)[0])),
    401, 'invalid_signature', 'array signed on its second element');
status_is(post_webhook($port, '{"type":"track",', key => $key{signed}),
    401, 'invalid_signature', 'unsigned invalid JSON is refused, not dead-lettered');

# --- Nothing from a refused request was stored -----------------------------------------------------------------
sub stored_for
{
    my ($source) = @_;
    return sql(qq{SELECT string_agg(message_id, ',' ORDER BY message_id COLLATE "C") FROM segment_events
        WHERE source_id = (SELECT id FROM segment_sources WHERE name = '$source')});
}
sub acked_for { my ($source) = @_; return join(',', sort @{ $acked{$source} // [] }); }
is(stored_for('plain'), acked_for('plain'), 'plain source: exactly the accepted messages are stored');
is(stored_for('signed'), acked_for('signed'), 'signed source: exactly the accepted messages are stored');
is(sql('SELECT count(*) FROM segment_rejected'), '0', 'refused requests leave no dead letter');

# --- Source changes take effect without a restart -------------------------------------------------------------
$key{late} = sql(q{SELECT segment_create_source('late', 'late-secret')});
status_is(poll_until_status(10, 200, sub { send_track('late', secret => 'late-secret', @_) }),
    200, '', 'a source created while the worker runs');

sql(q{UPDATE segment_sources SET enabled = false WHERE name = 'plain'});
status_is(poll_until_status(10, 401, sub { send_track('plain', @_) }), 401, 'invalid_write_key', 'a disabled source');
status_is(send_track('plain', key_in => 'bearer'), 401, 'invalid_write_key', 'a disabled source, Bearer');
sql(q{UPDATE segment_sources SET enabled = true WHERE name = 'plain'});
status_is(poll_until_status(10, 200, sub { send_track('plain', @_) }), 200, '', 'the source re-enabled');

# Rotated shared secret: the new one works, the old one no longer does.
sql(q{UPDATE segment_sources SET shared_secret = 'rotated' WHERE name = 'signed'});
status_is(poll_until_status(10, 200, sub { send_track('signed', secret => 'rotated', @_) }),
    200, '', 'signed with the rotated secret');
status_is(send_track('signed', secret => 's3cret'), 401, 'invalid_signature', 'signed with the old secret');

# Rotated write key.
my $old_key = $key{signed};
$key{signed} = sql(q{UPDATE segment_sources SET write_key = segment_new_write_key() WHERE name = 'signed'
    RETURNING write_key});
status_is(poll_until_status(10, 200, sub { send_track('signed', secret => 'rotated', @_) }),
    200, '', 'the rotated write key');
status_is(send_track('signed', key => $old_key, secret => 'rotated'), 401, 'invalid_write_key', 'the old write key');

# A secret added to a source that had none: unsigned requests are now refused; removing it accepts them again.
sql(q{UPDATE segment_sources SET shared_secret = 'now-signed' WHERE name = 'plain'});
status_is(poll_until_status(10, 401, sub { send_track('plain', @_) }),
    401, 'invalid_signature', 'unsigned request after a secret was set');
status_is(send_track('plain', secret => 'now-signed'), 200, '', 'signed request after a secret was set');
sql(q{UPDATE segment_sources SET shared_secret = NULL WHERE name = 'plain'});
status_is(poll_until_status(10, 200, sub { send_track('plain', @_) }),
    200, '', 'unsigned request after the secret was removed');

is(stored_for('plain'), acked_for('plain'), 'plain source: still exactly the accepted messages');
is(stored_for('signed'), acked_for('signed'), 'signed source: still exactly the accepted messages');
is(stored_for('late'), acked_for('late'), 'late source: exactly the accepted messages');
is(sql('SELECT count(*) FROM segment_rejected'), '0', 'still no dead letter');

$node->stop;
done_testing();
