# Poison is isolated per message. A message holding a value Postgres cannot store (a string with \u0000, a lone
# UTF-16 surrogate, bytes that are not UTF-8, a number numeric cannot hold, a messageId too long for the unique
# index) is dead-lettered on its own, with its own raw bytes and a reason code; its neighbours are stored and the
# answer is 200 with the counts. Only a body that is not JSON at all is a 400. Before, one such value turned the
# whole body into 400 invalid_json: in an Actions batch of 1,000 events the 999 good ones were lost (Segment does
# not retry a 400).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Digest::MD5 qw(md5_hex);

my ($node, $port) = start_webhook_node('poison');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $key = sql(q{SELECT segment_create_source('poison')});

# Each kind: the text that replaces the placeholder string "POISON" (JSON source bytes), and the reason code.
my @kinds = (
    [ 'nul', '"bad\\u0000value"', 'nul_character' ],
    [ 'lone_high_surrogate', '"bad\\ud800value"', 'invalid_unicode' ],
    [ 'lone_low_surrogate', '"bad\\udc00value"', 'invalid_unicode' ],
    [ 'invalid_utf8', "\"bad\xff\xfevalue\"", 'invalid_utf8' ],
    [ 'huge_number', '1e1000000', 'unstorable_value' ],
);

# The bytes of one message, poisoned or not; poisoned ones hide the value deep inside properties.
sub message_bytes
{
    my ($id, $poison) = @_;
    my $bytes = encode_json_compact(track_message($id,
        properties => { order => { items => [ { sku => 'A-1', note => 'POISON' } ], total => 12.5 } }));
    $bytes =~ s/"POISON"/$poison/ if defined $poison;
    return $bytes;
}

# A JSON array of $count messages, the one at $poisoned_at poisoned. Returns (body, poisoned message's bytes).
sub poisoned_batch
{
    my ($prefix, $count, $poisoned_at, $poison) = @_;
    my @messages = map { message_bytes("$prefix-$_", $_ == $poisoned_at ? $poison : undef) } 0 .. $count - 1;
    return ('[' . join(',', @messages) . ']', $messages[$poisoned_at]);
}

sub counts { my ($response) = @_; my $b = decode_json_body($response) // {}; return "$b->{accepted}/$b->{duplicates}/$b->{rejected}"; }

for my $kind (@kinds)
{
    my ($name, $poison, $reason) = @$kind;
    for my $position ([ start => 0 ], [ middle => 500 ], [ end => 999 ])
    {
        my ($where, $index) = @$position;
        my $prefix = "$name-$where";
        my ($body, $bad) = poisoned_batch($prefix, 1000, $index, $poison);
        my $response = post_webhook($port, $body, key => $key);
        is($response && $response->{status}, 200, "$prefix: a batch of 1,000 with one poisoned is answered 200");
        is(counts($response), '999/0/1', "$prefix: 999 accepted, 1 rejected");
        is(sql("SELECT count(*) FROM segment_events WHERE message_id LIKE '$prefix-%'"), '999',
            "$prefix: the 999 neighbours are stored");
        is(sql("SELECT count(*) FROM segment_events WHERE message_id = '$prefix-$index'"), '0',
            "$prefix: the poisoned one is not");
        my $row = sql("SELECT reason || '|' || md5(raw) FROM segment_rejected
                       WHERE raw IS NOT NULL AND position(convert_to('\"$prefix-$index\"', 'UTF8') IN raw) > 0");
        is($row, "$reason|" . md5_hex($bad), "$prefix: dead-lettered alone, reason $reason, its own bytes");
    }
}

# A number beyond a double's range but within numeric's is valid JSON that Postgres stores: never refused.
{
    my $body = '[' . message_bytes('big-number-0', '1e400') . ',' . message_bytes('big-number-1') . ']';
    my $response = post_webhook($port, $body, key => $key);
    is(counts($response), '2/0/0', 'a number of 1e400 is stored with its neighbours');
    is(sql(q{SELECT payload #>> '{properties,order,items,0,note}' = '1' || repeat('0', 400)
             FROM segment_events WHERE message_id = 'big-number-0'}), 't', 'with its exact value');
}

# A messageId too long for the unique index: its own reason, neighbours stored.
{
    my @messages = map { encode_json_compact(track_message("long-id-$_")) } 0 .. 99;
    $messages[50] = encode_json_compact(track_message('x' x 5000));
    my $response = post_webhook($port, '[' . join(',', @messages) . ']', key => $key);
    is(counts($response), '99/0/1', 'a messageId of 5,000 characters: 99 accepted, 1 rejected');
    is(sql(q{SELECT reason FROM segment_rejected WHERE length(message_id) = 5000 OR
             (message_id IS NULL AND length(raw) > 5000) ORDER BY id DESC LIMIT 1}),
        'invalid_message_id', 'with reason invalid_message_id');
}

# Actions batching: an envelope {"batch":[…]} with a poisoned element, signed by a source with a secret.
{
    my $secret = 'poison-secret';
    my $signed_key = sql(qq{SELECT segment_create_source('poison-signed', '$secret')});
    my ($array) = poisoned_batch('envelope', 20, 7, '"bad\\u0000value"');
    my $body = '{"batch":' . $array . ',"context":{"library":{"name":"analytics-node"}},"sentAt":"2024-05-01T10:00:01Z"}';
    my $response = post_webhook($port, $body, key => $signed_key, secret => $secret);
    is(counts($response), '19/0/1', 'envelope: 19 accepted, 1 rejected');
    is(sql(q{SELECT count(*) FROM segment_events WHERE message_id LIKE 'envelope-%'
             AND payload -> 'context' -> 'library' ->> 'name' = 'analytics-node'}),
        '19', 'envelope: the neighbours got the envelope context');
}

# One message alone, poisoned: dead-lettered, answered 200.
{
    my $bad = message_bytes('single-poisoned', '"bad\\ud800value"');
    my $response = post_webhook($port, $bad, key => $key, path => '/v1/track');
    is($response && $response->{status}, 200, 'a single poisoned message is answered 200');
    is(counts($response), '0/0/1', 'and counted as rejected');
}

# Newline-delimited JSON with the write key in the body and a poisoned line.
{
    my @lines = map { message_bytes("ndjson-$_", $_ == 2 ? '"bad\\u0000value"' : undef) } 0 .. 4;
    s/^\{/{"writeKey":"$key",/ for @lines;
    my $response = post_webhook($port, join("\n", @lines) . "\n", key_in => 'none', path => '/v1/batch');
    is($response && $response->{status}, 200, 'NDJSON with the key in the body and a poisoned line: 200');
    is(counts($response), '4/0/1', 'NDJSON: 4 accepted, 1 rejected');
}

# A body that is not JSON at all is still a 400, and kept.
{
    my $response = post_webhook($port, '[{"type":"track",', key => $key);
    is($response && $response->{status}, 400, 'a body that is not JSON is answered 400');
    is(error_code($response), 'invalid_json', 'with code invalid_json');
}

# The README's replay of a poisoned message, once fixed.
{
    my $id = sql(q{SELECT id FROM segment_rejected WHERE reason = 'nul_character' AND
                   position(convert_to('"nul-middle-500"', 'UTF8') IN raw) > 0});
    is(sql(qq{SELECT segment_replay(id, replace(convert_from(raw, 'UTF8'), '\\u0000', '')::jsonb)
              FROM segment_rejected WHERE id = $id}), '1', 'a fixed poisoned message is replayed');
    is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'nul-middle-500'}), '1', 'and stored');
}

done_testing();
