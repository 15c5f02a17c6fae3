# pg_dump keeps what the extension stored: sources, events, dead letters, and the positions of their id
# sequences, so that a restored database goes on ingesting without id collisions; and the warehouse views with
# their catalog and what was examined, with a view of the user's built on them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
# Not preloaded: the SQL functions must work after a plain CREATE EXTENSION.
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION segment_webhook;
    SELECT segment_create_source('web', 'secret');
    SELECT segment_ingest('web', '[{"type":"track","event":"A","userId":"u","messageId":"a","properties":{"price":2}},
                                   {"type":"track","event":"B","userId":"u","messageId":"b"},
                                   {"type":"bogus","userId":"u"}]');
    SELECT segment_warehouse_sync();
    CREATE VIEW public.expensive_a AS SELECT id, price FROM web.a WHERE price > 1;
});
my $key = $node->safe_psql('postgres', "SELECT write_key FROM segment_sources WHERE name = 'web'");

my $dump = $node->basedir . '/dump.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', $node->connstr('restored'), '-f', $dump ],
    'the dump restores');

is($node->safe_psql('restored', "SELECT write_key FROM segment_sources WHERE name = 'web'"),
    $key, 'the source and its write key survive');
is($node->safe_psql('restored', 'SELECT string_agg(message_id, \',\' ORDER BY id) FROM segment_events'),
    'a,b', 'the events survive');
is($node->safe_psql('restored', 'SELECT reason FROM segment_rejected'), 'unknown_type', 'the dead letter survives');

# New rows get new ids: no collision with restored ones, nothing dead-lettered for it.
is($node->safe_psql('restored', q{SELECT segment_ingest('web', '{"type":"track","event":"C","userId":"u","messageId":"c"}')}),
    '1', 'a new event is stored after the restore');
is($node->safe_psql('restored', 'SELECT count(DISTINCT id) FROM segment_events'), '3', 'ids stay unique');
is($node->safe_psql('restored', 'SELECT count(*) FROM segment_rejected'), '1', 'nothing new was dead-lettered');
ok($node->safe_psql('restored', q{SELECT segment_create_source('second') IS NOT NULL}) eq 't',
    'a new source gets a new id');

is($node->safe_psql('restored', 'SELECT id || \'/\' || price FROM public.expensive_a'), 'a/2',
    'the warehouse view and a view built on it survive');
my $catalog = q{SELECT string_agg(relation || '.' || column_name || ':' || column_type, ',' ORDER BY relation, position)
                FROM segment_warehouse_columns WHERE source_id = (SELECT id FROM segment_sources WHERE name = 'web')};
is($node->safe_psql('restored', $catalog), $node->safe_psql('postgres', $catalog), 'the warehouse catalog survives');
like($node->safe_psql('restored', $catalog), qr/\ba\.price:bigint\b/, 'with the discovered columns');
is($node->safe_psql('restored', 'SELECT segment_warehouse_sync()'), '1',
    'what was examined before the dump is not examined again');
is($node->safe_psql('restored', 'SELECT count(*) FROM web.c'), '1', 'the new event gets its relation');
is($node->safe_psql('restored', 'SELECT count(*) FROM second.tracks'), '0', 'the new source its schema');

$node->stop;
done_testing();
