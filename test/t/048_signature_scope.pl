# What a signature covers: segment_events.signature_verified is true only for events whose own bytes a verified
# X-Signature covered (a single message, a whole-body signature, or element 0 of a batch signed over its first
# element, as Segment's Actions webhook signs), false for the other elements of such a batch, for sources without
# a secret and for segment_ingest() / segment_replay(). segment_sources.require_full_signature refuses a
# first-element signature (401 invalid_signature) and still accepts a whole-body one. The flag is written the
# same by every write path: the direct heap insert, the INSERT a user trigger forces, and the rule path.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use IO::Compress::Gzip qw(gzip $GzipError);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('signature_scope');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $secret = 'scope-secret';
my %key = (
    signed => sql(qq{SELECT segment_create_source('signed', '$secret')}),
    strict => sql(qq{SELECT segment_create_source('strict', '$secret')}),
    plain => sql(q{SELECT segment_create_source('plain')}));
sql(q{UPDATE segment_sources SET require_full_signature = true WHERE name = 'strict'});

# messageId => signature_verified, as stored ('' when not stored).
sub verified
{
    my (@ids) = @_;
    my $list = join(',', map { "'$_'" } @ids);
    my %flag = map { split /\|/ } split /\n/,
      sql("SELECT message_id || '|' || signature_verified FROM segment_events WHERE message_id IN ($list)");
    return join(',', map { $flag{$_} // '' } @ids);
}

# A batch of $count track messages "$prefix-0" .. as a compact JSON array, and its first element's bytes.
sub batch
{
    my ($prefix, $count) = @_;
    my @elements = map { encode_json_compact(track_message("$prefix-$_")) } 0 .. $count - 1;
    return ('[' . join(',', @elements) . ']', $elements[0], map { "$prefix-$_" } 0 .. $count - 1);
}

sub status_is
{
    my ($response, $status, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = is($response && $response->{status}, $status, "$name: $status");
    diag(explain($response)) unless $ok;
    return $ok;
}

ok( wait_until(10, sub {
            my $response = post_webhook($port, encode_json_compact(track_message('warm-up')),
                key => $key{plain}, quiet => 1);
            $response && $response->{status} == 200;
        }),
    'the worker knows the sources');

# Every write path: the direct heap insert (a plain table), INSERT ... ON CONFLICT (a user trigger forces it),
# and the probe-then-INSERT of a table with rules.
my @paths = (
    [ 'direct insert', '', '' ],
    [   'INSERT (a trigger)',
        q{CREATE FUNCTION public.keep() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
          CREATE TRIGGER keep BEFORE INSERT ON segment_events FOR EACH ROW EXECUTE FUNCTION public.keep()},
        q{DROP TRIGGER keep ON segment_events; DROP FUNCTION public.keep()} ],
    [   'rules',
        q{CREATE TABLE public.audit (message_id text);
          CREATE RULE audit_events AS ON INSERT TO segment_events DO ALSO INSERT INTO public.audit VALUES (NEW.message_id)},
        q{DROP RULE audit_events ON segment_events; DROP TABLE public.audit} ]);
my $n = 0;
for my $path (@paths)
{
    my ($name, $setup, $teardown) = @$path;
    sql($setup) if $setup;
    ++$n;

    my ($body, $first, @ids) = batch("whole-$n", 3);
    status_is(post_webhook($port, $body, key => $key{signed}, secret => $secret), 200,
        "$name: a batch signed over the whole body");
    is(verified(@ids), 'true,true,true', "$name: every element of a whole-body signed batch is verified");

    ($body, $first, @ids) = batch("first-$n", 3);
    status_is(post_webhook($port, $body, key => $key{signed}, signature => sign_body($secret, $first)), 200,
        "$name: a batch signed over its first element");
    is(verified(@ids), 'true,false,false', "$name: only element 0 of a first-element signed batch is verified");

    my $single = encode_json_compact(track_message("single-$n"));
    status_is(post_webhook($port, $single, key => $key{signed}, secret => $secret), 200,
        "$name: a single signed message");
    is(verified("single-$n"), 'true', "$name: a single signed message is verified");

    ($body, $first, @ids) = batch("plain-$n", 2);
    status_is(post_webhook($port, $body, key => $key{plain}, secret => 'any-secret'), 200,
        "$name: a batch to a source without a secret (its X-Signature ignored)");
    is(verified(@ids), 'false,false', "$name: events of a source without a secret are not verified");

    if ($name eq 'rules')
    {
        is(sql(qq{SELECT count(*) FROM public.audit WHERE message_id LIKE '%-$n-%' OR message_id = 'single-$n'}),
            '9', 'rules: the rule ran for every row (the rule path was taken)');
    }
    sql($teardown) if $teardown;
}

# --- Other shapes ----------------------------------------------------------------------------------------------
my $envelope = encode_json_compact({ batch => [ track_message('envelope-0'), track_message('envelope-1') ] });
status_is(post_webhook($port, $envelope, key => $key{signed}, secret => $secret, path => '/v1/batch'), 200,
    'a {"batch":[...]} envelope signed over the whole body');
is(verified('envelope-0', 'envelope-1'), 'true,true', 'every message of a whole-body signed envelope is verified');

my ($plain_batch, undef, @gzip_ids) = batch('gzip', 2);
gzip(\$plain_batch => \my $compressed) or die $GzipError;
status_is(post_webhook($port, $compressed, key => $key{signed}, secret => $secret,
        headers => [ [ 'Content-Encoding', 'gzip' ] ]),
    200, 'a gzip body signed over the bytes sent');
is(verified(@gzip_ids), 'true,true', 'its messages are verified');

# A poisoned first element is dead-lettered: the signature over it vouches for none of the rest.
my $poisoned_first = '{"type":"track","event":"P\u0000","userId":"u","messageId":"poison-0"}';
my $poison_body = "[$poisoned_first," . encode_json_compact(track_message('poison-1')) . ']';
status_is(post_webhook($port, $poison_body, key => $key{signed}, signature => sign_body($secret, $poisoned_first)),
    200, 'a first-element signed batch whose first element cannot be stored');
is(verified('poison-0', 'poison-1'), ',false', 'the element that follows it is not verified');
my $healthy_body = '[' . encode_json_compact(track_message('poison-ok-0')) . ",$poisoned_first]";
$healthy_body =~ s/poison-0/poison-2/;
my ($healthy_first) = $healthy_body =~ /^\[(\{.*?\}),/;
status_is(post_webhook($port, $healthy_body, key => $key{signed}, signature => sign_body($secret, $healthy_first)),
    200, 'a first-element signed batch whose later element cannot be stored');
is(verified('poison-ok-0'), 'true', 'its first element is still verified');

# --- Through SQL: never verified ---------------------------------------------------------------------------------
is(sql(q{SELECT segment_ingest('signed', '[{"type":"track","event":"E","userId":"u","messageId":"sql-0"}]')}), '1',
    'segment_ingest() stores an event');
is(verified('sql-0'), 'false', 'an event from segment_ingest() is not verified');
sql(q{SELECT segment_ingest('signed', '{"type":"track","userId":"u","messageId":"replayed"}')});
is( sql(q{SELECT segment_replay(id, payload || '{"event":"Fixed"}') FROM segment_rejected
          WHERE message_id = 'replayed'}), '1', 'segment_replay() stores a fixed dead letter');
is(verified('replayed'), 'false', 'an event from segment_replay() is not verified');

# --- require_full_signature -------------------------------------------------------------------------------------
my ($strict_body, $strict_first, @strict_ids) = batch('strict', 2);
my $response = post_webhook($port, $strict_body, key => $key{strict}, signature => sign_body($secret, $strict_first));
status_is($response, 401, 'require_full_signature: a first-element signature');
is(error_code($response), 'invalid_signature', 'require_full_signature: code invalid_signature');
like((decode_json_body($response) // {})->{error}{message} // '', qr/whole body/,
    'require_full_signature: the message says a signature over the whole body is required');
is(verified(@strict_ids), ',', 'require_full_signature: nothing of the refused batch is stored');
status_is(post_webhook($port, $strict_body, key => $key{strict}, secret => $secret), 200,
    'require_full_signature: a whole-body signature');
is(verified(@strict_ids), 'true,true', 'require_full_signature: every element is verified');
my $strict_single = encode_json_compact(track_message('strict-single'));
status_is(post_webhook($port, $strict_single, key => $key{strict}, secret => $secret), 200,
    'require_full_signature: a single signed message');

# Turned off, the same first-element signature is accepted again (the worker reloads on the change).
sql(q{UPDATE segment_sources SET require_full_signature = false WHERE name = 'strict'});
my ($relaxed_body, $relaxed_first, @relaxed_ids) = batch('relaxed', 2);
ok( wait_until(10, sub {
            my $answer = post_webhook($port, $relaxed_body, key => $key{strict},
                signature => sign_body($secret, $relaxed_first), quiet => 1);
            $answer && $answer->{status} == 200;
        }),
    'require_full_signature turned off: a first-element signature is accepted');
is(verified(@relaxed_ids), 'true,false', 'and only its element 0 is verified');

is(sql(q{SELECT count(*) FROM segment_events WHERE signature_verified AND source_id =
         (SELECT id FROM segment_sources WHERE name = 'plain')}), '0',
    'no event of the source without a secret is verified');
unlike(slurp_file($node->logfile), qr/terminated by signal|reinitializing/, 'no crash');

done_testing();
