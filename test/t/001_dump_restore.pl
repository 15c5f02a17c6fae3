# pg_dump keeps what the extension stored: sources, events, dead letters, and the positions of their id
# sequences, so that a restored database goes on ingesting without id collisions.
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
    SELECT segment_ingest('web', '[{"type":"track","event":"A","userId":"u","messageId":"a"},
                                   {"type":"track","event":"B","userId":"u","messageId":"b"},
                                   {"type":"bogus","userId":"u"}]');
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

$node->stop;
done_testing();
