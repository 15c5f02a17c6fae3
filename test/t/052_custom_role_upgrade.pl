# Workers running as a role of the user's (segment_webhook.role) keep ingesting through ALTER EXTENSION UPDATE to
# 0.4: the update grants that role what 0.4's ingest path reads (segment_suppressions, segment_deletions,
# segment_message_conflicts), as it grants them to segment_webhook_ingest; and through the update to 0.5, which
# grants it the keys and the id sequence of the partitioned table (to every role that could insert events).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('custom_role_upgrade', create_extension => 0);
sub sql { return $node->safe_psql('postgres', $_[0]); }
sql(q{CREATE ROLE app_ingest LOGIN});
sql(q{CREATE EXTENSION segment_webhook VERSION '0.3'});
$node->append_conf('postgresql.conf', "segment_webhook.role = 'app_ingest'\n");
$node->restart;
# The grants the README asks of a custom role at 0.3.
sql(q{GRANT USAGE ON SCHEMA public TO app_ingest;
      GRANT SELECT ON segment_sources TO app_ingest;
      GRANT INSERT ON segment_events, segment_rejected TO app_ingest;
      GRANT SELECT (source_id, message_id) ON segment_events TO app_ingest});
my $key = sql(q{SELECT segment_create_source('custom')});

sub stored_with_200
{
    my ($message_id, $name) = @_;
    my $response;
    ok( wait_until(15, sub {
                $response = post_webhook($port, encode_json_compact(track_message($message_id)), key => $key, quiet => 1);
                $response && $response->{status} == 200;
            }),
        $name) or diag(explain($response));
    is(sql(qq{SELECT count(*) FROM segment_events WHERE message_id = '$message_id'}), '1', "$name: stored");
}

stored_with_200('at-0.3', 'at 0.3, the custom role ingests');
sql(q{ALTER EXTENSION segment_webhook UPDATE TO '0.4'});
is( sql(q{SELECT has_table_privilege('app_ingest', 'segment_suppressions', 'SELECT')
             AND has_column_privilege('app_ingest', 'segment_deletions', 'user_id', 'INSERT')
             AND has_function_privilege('app_ingest', 'segment_message_conflicts(integer[], text[], jsonb[])', 'EXECUTE')}),
    't', 'the custom role holds the new grants');
stored_with_200('at-0.4', 'at 0.4, the custom role still ingests');
post_webhook($port, encode_json_compact(track_message('at-0.4', properties => { changed => 1 })), key => $key);
is(sql(q{SELECT count(*) FROM segment_rejected WHERE reason = 'message_id_conflict'}), '1',
    'and compares duplicates with what is stored');
sql(q{ALTER EXTENSION segment_webhook UPDATE TO '0.5'});
is( sql(q{SELECT has_table_privilege('app_ingest', 'segment_event_keys', 'INSERT')
             AND has_column_privilege('app_ingest', 'segment_event_keys', 'event_id', 'SELECT')
             AND has_sequence_privilege('app_ingest', 'segment_events_id_seq', 'USAGE')
             AND has_table_privilege('app_ingest', 'segment_events', 'INSERT')
             AND NOT has_table_privilege('app_ingest', 'segment_events_default', 'INSERT')}),
    't', '0.5: the custom role holds the grants of the partitioned table, none on the old table itself');
stored_with_200('at-0.5', 'at 0.5, the custom role still ingests');
post_webhook($port, encode_json_compact(track_message('at-0.4')), key => $key);
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'at-0.4'}), '1',
    'at 0.5, a message stored at 0.4 and sent again is still a duplicate');
done_testing();
