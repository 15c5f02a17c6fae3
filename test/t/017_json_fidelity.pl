# The worker parses bodies with its own JSON-to-jsonb builder: every stored payload must equal what Postgres'
# own jsonb parser makes of the same text (key order, duplicate keys, escapes, Unicode, numbers), and what
# Postgres cannot store must be dead-lettered, message by message.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('json_fidelity');
my $key = $node->safe_psql('postgres', q{SELECT segment_create_source('fidelity')});

my @bodies = (
    # duplicate keys: the last wins, at the top and nested
    q({"type":"track","event":"A","event":"B","userId":"u","messageId":"dup","properties":{"k":1,"k":2,"a":[1,{"z":1,"z":"last"}]}}),
    # escapes and Unicode, escaped and raw
    q({"type":"track","event":"\u00e9\ud83d\ude00 é😀","userId":"u","messageId":"unicode","properties":{"s":"q\"b\\\\s\/f\b\f\n\r\t","e":"","ctl":"\u001f"}}),
    # numbers of every form
    q({"type":"track","event":"N","userId":"u","messageId":"numbers","properties":{"a":0,"b":-0,"c":1e3,"d":1E-7,"e":123456789012345678901234567890,"f":3.14159265358979323846264338327950288,"g":-1.5e+300,"h":10,"i":0.1,"j":-42}}),
    # key order (shorter keys first), empty containers, literals, whitespace everywhere
    qq( \n{ "type" : "track" , "event":"Order","userId":"u","messageId":"order",\n\t"properties":{"ccc":3,"a":1,"bb":2,"":0,"obj":{},"arr":[],"t":true,"f":false,"n":null}}\r\n ),
    # nesting
    '{"type":"track","event":"Deep","userId":"u","messageId":"deep","properties":' . ('{"x":[' x 40) . '1' . (']}' x 40) . '}',
    # numeric ids become text columns but stay numbers in the payload
    q({"type":"identify","userId":12345,"anonymousId":9007199254740993,"messageId":"numeric-ids","traits":{"n":1.50}}),
);

for my $body (@bodies)
{
    my $response = post_webhook($port, $body, key => $key);
    is($response && $response->{status}, 200, 'stored: ' . substr($body, 0, 60));
}
my $compared = 0;
for my $body (@bodies)
{
    my ($id) = $body =~ /"messageId":"([^"]+)"/;
    my $same = $node->safe_psql('postgres',
        qq{SELECT payload = \$body\$$body\$body\$::jsonb FROM segment_events WHERE message_id = '$id'});
    is($same, 't', "payload of $id equals Postgres' own parse of the body");
    $compared++;
}
is($compared, scalar @bodies, 'every body compared');
is($node->safe_psql('postgres', q{SELECT user_id || ',' || anonymous_id FROM segment_events WHERE message_id = 'numeric-ids'}),
    '12345,9007199254740993', 'numeric ids keep their digits');

# What jsonb cannot hold costs only its message: answered 200, dead-lettered with its own bytes and a reason (the
# issue of a body that jsonb_in refuses as a whole is told apart from a body that is not JSON at all).
for my $case (
    [ 'a number beyond numeric', q({"type":"track","event":"E","userId":"u","messageId":"huge","properties":{"x":1e1000000}}), 'unstorable_value' ],
    [ '\u0000', q({"type":"track","event":"E\u0000","userId":"u","messageId":"nul"}), 'nul_character' ],
    [ 'a lone surrogate', q({"type":"track","event":"\ud800","userId":"u","messageId":"surrogate"}), 'invalid_unicode' ])
{
    my ($what, $body, $reason) = @$case;
    my $response = post_webhook($port, $body, key => $key);
    is($response && $response->{status}, 200, "$what: 200");
    is((decode_json_body($response) // {})->{rejected}, 1, "$what: rejected 1");
    is($node->safe_psql('postgres', qq{SELECT reason FROM segment_rejected WHERE convert_from(raw, 'UTF8') = \$b\$$body\$b\$}),
        $reason, "$what: dead-lettered as $reason with its bytes");
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM segment_events WHERE message_id IN ('huge', 'nul', 'surrogate')}),
    '0', 'none of them is stored as an event');

$node->stop;
done_testing();
