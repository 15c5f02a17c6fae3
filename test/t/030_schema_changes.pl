# Whatever SQL is run against the extension's objects while the worker runs, the server never restarts: the
# worker answers 503 with a clear code while it cannot write, logs the failure once, and resumes by itself when
# it can. Each step keeps a session opened before it and checks afterwards that the session is still alive and
# that the server log has no crash ("terminated by signal", "reinitializing"); the worker's pid must not change.
# The direct write path must also notice every change it does not handle (a rule, a trigger, a retyped column)
# and leave the batch to INSERT, which applies it.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('schema_changes',
    create_extension => 0,
    conf => "restart_after_crash = on\nsegment_webhook.retry_after = 1\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }

sql('CREATE SCHEMA seg; CREATE EXTENSION segment_webhook SCHEMA seg');
my $key = sql(q{SELECT seg.segment_create_source('ddl')});
my $worker_pid = (worker_pids($node))[0];
ok($worker_pid, 'the worker runs');

my $sent = 0;
# POST one new event; returns the response.
sub send_event
{
    my (%fields) = @_;
    $sent++;
    return post_webhook($port, encode_json_compact(track_message("ddl-$sent", %fields)), key => $key, quiet => 1);
}

# Keep posting until the answer has this status (a change reaches the worker within a second or two).
sub eventually_status
{
    my ($status, $what, %fields) = @_;
    my $response;
    my $ok = wait_until(20, sub {
        $response = send_event(%fields);
        return $response && $response->{status} == $status;
    });
    ok($ok, "$what: answered $status")
      or diag('last answer: ' . ($response ? "$response->{status} $response->{body}" : 'none'));
    return $response;
}

# Runs one step between a session opened before it and the crash checks after it.
sub step
{
    my ($name, $body) = @_;
    my $session = $node->background_psql('postgres');
    my $offset = log_offset($node);
    $body->();
    my $alive = eval { $session->query_safe('SELECT 1') };
    is($alive, '1', "$name: a session opened before it is still alive");
    eval { $session->quit };
    my $log = slurp_file($node->logfile, $offset);
    unlike($log, qr/terminated by signal|reinitializing|server process .* was terminated/,
        "$name: no server process crashed");
    is((worker_pids($node))[0], $worker_pid, "$name: the worker was not restarted");
}

eventually_status(200, 'before any change');

step('DROP SCHEMA ... CASCADE (the extension with it)', sub {
    sql('DROP SCHEMA seg CASCADE');
    my $response = eventually_status(503, 'schema dropped');
    is(error_code($response), 'extension_missing', 'schema dropped: code extension_missing');
    sql('CREATE SCHEMA seg; CREATE EXTENSION segment_webhook SCHEMA seg');
    $key = sql(q{SELECT seg.segment_create_source('ddl')});
    eventually_status(200, 'extension created again');
});

step('ALTER SCHEMA ... RENAME', sub {
    sql('ALTER SCHEMA seg RENAME TO seg_renamed');
    eventually_status(200, 'schema renamed');
    is(sql(q{SELECT count(*) > 0 FROM seg_renamed.segment_events}), 't', 'schema renamed: events stored there');
    sql('ALTER SCHEMA seg_renamed RENAME TO seg');
    eventually_status(200, 'schema renamed back');
});

step('DROP EXTENSION and CREATE EXTENSION', sub {
    sql('DROP EXTENSION segment_webhook CASCADE');
    my $response = eventually_status(503, 'extension dropped');
    is(error_code($response), 'extension_missing', 'extension dropped: code extension_missing');
    sql('CREATE EXTENSION segment_webhook SCHEMA seg');
    $key = sql(q{SELECT seg.segment_create_source('ddl')});
    eventually_status(200, 'extension created again');
});

step('ALTER TABLE segment_events RENAME', sub {
    sql('ALTER TABLE seg.segment_events RENAME TO events_elsewhere');
    my $response = eventually_status(503, 'table renamed');
    is(error_code($response), 'storage_misconfigured', 'table renamed: code storage_misconfigured');
    sql('ALTER TABLE seg.events_elsewhere RENAME TO segment_events');
    eventually_status(200, 'table renamed back');
});

step('DROP TABLE segment_events (refused: the extension owns it)', sub {
    my ($ret, $out, $err) = $node->psql('postgres', 'DROP TABLE seg.segment_events');
    isnt($ret, 0, 'DROP TABLE of an extension member is refused');
    eventually_status(200, 'after the refused DROP TABLE');
});

step('REVOKE INSERT from the ingest role', sub {
    sql('REVOKE INSERT ON seg.segment_events FROM segment_webhook_ingest');
    my $offset = log_offset($node);
    my $response = eventually_status(503, 'INSERT revoked');
    is(error_code($response), 'storage_misconfigured', 'INSERT revoked: code storage_misconfigured');
    send_event() for 1 .. 3;
    my $lines = () = slurp_file($node->logfile, $offset) =~ /permission denied for table segment_events/g;
    is($lines, 1, 'INSERT revoked: the failure is logged once while it lasts');
    sql('GRANT INSERT ON seg.segment_events TO segment_webhook_ingest');
    eventually_status(200, 'INSERT granted again');
    ok(defined wait_for_log_within($node, qr/stores events again/, $offset, 5), 'the recovery is logged');
});

step('REVOKE SELECT ON segment_sources', sub {
    sql('REVOKE SELECT ON seg.segment_sources FROM segment_webhook_ingest');
    # The worker keeps the sources it knows; writing still works.
    eventually_status(200, 'sources unreadable: known keys still ingest');
    sql('GRANT SELECT ON seg.segment_sources TO segment_webhook_ingest');
});

step('ADD COLUMN with a default', sub {
    sql(q{ALTER TABLE seg.segment_events ADD COLUMN tenant text DEFAULT 'acme'});
    eventually_status(200, 'extra column');
    is(sql(qq{SELECT tenant FROM seg.segment_events WHERE message_id = 'ddl-$sent'}), 'acme',
        'extra column: its default is applied (the INSERT path)');
    sql('ALTER TABLE seg.segment_events DROP COLUMN tenant');
    eventually_status(200, 'extra column dropped');
});

step('a trigger', sub {
    sql(q{CREATE FUNCTION public.shout() RETURNS trigger LANGUAGE plpgsql AS
          $$BEGIN NEW.event := upper(NEW.event); RETURN NEW; END$$;
          CREATE TRIGGER shout BEFORE INSERT ON seg.segment_events FOR EACH ROW EXECUTE FUNCTION public.shout()});
    eventually_status(200, 'trigger');
    is(sql(qq{SELECT event FROM seg.segment_events WHERE message_id = 'ddl-$sent'}), 'TEST EVENT',
        'trigger: it ran on the ingested row');
    sql('DROP TRIGGER shout ON seg.segment_events');
});

step('an index', sub {
    sql('CREATE INDEX events_by_user ON seg.segment_events (user_id, "timestamp")');
    eventually_status(200, 'extra index');
    is(sql(q{SET enable_seqscan = off; SELECT count(*) > 0 FROM seg.segment_events WHERE user_id = 'user-1'}),
        't', 'extra index: rows are found through it');
    sql('DROP INDEX seg.events_by_user');
});

step('a DO ALSO rule', sub {
    sql(q{CREATE TABLE public.audit (message_id text);
          CREATE RULE audit_events AS ON INSERT TO seg.segment_events
              DO ALSO INSERT INTO public.audit VALUES (NEW.message_id)});
    eventually_status(200, 'rule');
    is(sql(qq{SELECT count(*) FROM public.audit WHERE message_id = 'ddl-$sent'}), '1',
        'rule: it ran for the ingested row (the direct path did not bypass it)');
    sql('DROP RULE audit_events ON seg.segment_events');
});

# The extension's views depend on every column: a user who retypes one takes the views out of the extension and
# drops them first.
sql(join('', map { "ALTER EXTENSION segment_webhook DROP VIEW seg.$_; DROP VIEW seg.$_;" }
      qw(segment_tracks segment_pages segment_screens segment_identifies segment_groups segment_aliases
      segment_messages segment_users)));
# So do the warehouse views: the sources give them up (a pass still running finishes first: a pass of one's own
# waits for it), then they are dropped.
my $warehouse_schemas =
  sql(q{SELECT string_agg(quote_ident(warehouse_schema), ', ') FROM seg.segment_sources WHERE warehouse_schema IS NOT NULL});
sql('UPDATE seg.segment_sources SET warehouse_schema = NULL');
sql('SELECT seg.segment_warehouse_sync()');
sql("DROP SCHEMA $warehouse_schemas CASCADE") if $warehouse_schemas;

step('a column type change with a typmod', sub {
    sql('ALTER TABLE seg.segment_events ALTER COLUMN event TYPE varchar(12)');
    my $response = eventually_status(200, 'event is varchar(12)', event => 'Short');
    my $long = send_event(event => 'A much longer event name');
    is($long && $long->{status}, 200, 'varchar(12): a longer event is answered 200');
    is(decode_json_body($long)->{rejected}, 1, 'varchar(12): and dead-lettered, not stored beyond the typmod');
    is( sql(qq{SELECT reason FROM seg.segment_rejected WHERE message_id = 'ddl-$sent'}),
        'refused_by_database', 'varchar(12): with reason refused_by_database');
    sql('ALTER TABLE seg.segment_events ALTER COLUMN event TYPE text');
    eventually_status(200, 'event is text again');
});

step('a collation change', sub {
    sql('ALTER TABLE seg.segment_events ALTER COLUMN message_id TYPE text COLLATE "C"');
    eventually_status(200, 'message_id collates "C"');
    my $body = encode_json_compact([ track_message("ddl-$sent"), track_message('ddl-collation-new') ]);
    my $answer = decode_json_body(post_webhook($port, $body, key => $key)) // {};
    is("$answer->{accepted}/$answer->{duplicates}", '1/1', 'collation "C": dedup still exact');
    sql('ALTER TABLE seg.segment_events ALTER COLUMN message_id TYPE text COLLATE "default"');
});

step('a partitioned table in its place', sub {
    sql(q{ALTER TABLE seg.segment_events RENAME TO segment_events_plain;
          CREATE TABLE seg.segment_events (LIKE seg.segment_events_plain INCLUDING DEFAULTS)
              PARTITION BY RANGE (received_at);
          CREATE TABLE seg.segment_events_all PARTITION OF seg.segment_events
              FOR VALUES FROM (MINVALUE) TO (MAXVALUE)});
    # No unique index on (source_id, message_id) can exist there: the batch cannot be deduplicated.
    my $response = eventually_status(503, 'partitioned table');
    is(error_code($response), 'storage_misconfigured', 'partitioned table: code storage_misconfigured');
    sql(q{DROP TABLE seg.segment_events; ALTER TABLE seg.segment_events_plain RENAME TO segment_events});
    eventually_status(200, 'the extension table back');
});

step('DROP ROLE segment_webhook_ingest', sub {
    sql('DROP OWNED BY segment_webhook_ingest; DROP ROLE segment_webhook_ingest');
    # Never a fallback to the superuser the worker connected as.
    my $response = eventually_status(503, 'ingest role dropped');
    is(error_code($response), 'storage_misconfigured', 'ingest role dropped: code storage_misconfigured');
    sql(q{CREATE ROLE segment_webhook_ingest NOLOGIN;
          GRANT USAGE ON SCHEMA seg TO segment_webhook_ingest;
          GRANT SELECT ON seg.segment_sources TO segment_webhook_ingest;
          GRANT INSERT ON seg.segment_events, seg.segment_rejected TO segment_webhook_ingest;
          GRANT SELECT (source_id, message_id) ON seg.segment_events TO segment_webhook_ingest;
          GRANT SELECT ON seg.segment_suppressions TO segment_webhook_ingest;
          GRANT INSERT (source_id, user_id) ON seg.segment_deletions TO segment_webhook_ingest;
          GRANT INSERT, SELECT (source_id, message_id, event_id) ON seg.segment_event_keys TO segment_webhook_ingest;
          GRANT USAGE ON SEQUENCE seg.segment_events_id_seq TO segment_webhook_ingest});
    eventually_status(200, 'ingest role created again');
});

step('DROP COLUMN payload, then the extension re-created', sub {
    sql('ALTER TABLE seg.segment_events DROP COLUMN payload');
    my $response = eventually_status(503, 'payload dropped');
    is(error_code($response), 'storage_misconfigured', 'payload dropped: code storage_misconfigured');
    sql('DROP EXTENSION segment_webhook CASCADE; CREATE EXTENSION segment_webhook SCHEMA seg');
    $key = sql(q{SELECT seg.segment_create_source('ddl')});
    eventually_status(200, 'extension re-created');
});

done_testing();
