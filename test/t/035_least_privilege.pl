# Least privilege. With default settings the worker runs its SQL, and any trigger a user adds to segment_events,
# as the role segment_webhook_ingest: no superuser, no login, and exactly the privileges the README lists. A
# trigger reading a table that role may not read fails the batch: 503 storage_misconfigured, the error logged
# once however many requests fail, nothing stored; once the trigger is gone the same worker stores events again by
# itself. None of this restarts the server: a session opened at the start answers at the end. With
# segment_webhook.role naming a superuser, the worker runs as that role and warns about it at every start.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my ($node, $port) = start_webhook_node('least_privilege');
my $session = $node->background_psql('postgres');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $bootstrap_user = sql('SELECT current_user');
my $key = sql(q{SELECT segment_create_source('least')});
my $worker_pid = (worker_pids($node))[0];
ok($worker_pid, 'the worker runs');

sub last_answer { my ($response) = @_; return $response ? "$response->{status} $response->{body}" : 'none'; }

# Keep posting the message until it is answered $status (a trigger reaches the worker's next batch).
sub eventually_status
{
    my ($target_port, $write_key, $status, $message_id, $what) = @_;
    my $response;
    my $ok = wait_until(20, sub {
        $response = post_webhook($target_port, encode_json_compact(track_message($message_id)),
            key => $write_key, quiet => 1);
        return $response && $response->{status} == $status;
    });
    ok($ok, "$what: answered $status") or diag('last answer: ' . last_answer($response));
    return $response;
}

# A trigger (executable by PUBLIC, as every function is by default) that writes who runs it into the event.
my $record_user = q{
    CREATE FUNCTION record_ingest_user() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.event := current_user || '/' || (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
        RETURN NEW;
    END
    $$;
    CREATE TRIGGER record_ingest_user BEFORE INSERT ON segment_events
        FOR EACH ROW EXECUTE FUNCTION record_ingest_user();
};

# --- Default settings: the SQL and the triggers run as segment_webhook_ingest ------------------------------------
sql($record_user);
eventually_status($port, $key, 200, 'who-1', 'an event through the trigger');
is(sql(q{SELECT event FROM segment_events WHERE message_id = 'who-1'}), 'segment_webhook_ingest/false',
    'the trigger runs as segment_webhook_ingest, not a superuser');

# --- A trigger reading a table the ingest role may not read -------------------------------------------------------
sql(q{
    CREATE TABLE secret_data (value text);
    INSERT INTO secret_data VALUES ('do not read');
    CREATE FUNCTION read_secret_data() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM count(*) FROM secret_data;
        RETURN NEW;
    END
    $$;
    CREATE TRIGGER read_secret_data BEFORE INSERT ON segment_events
        FOR EACH ROW EXECUTE FUNCTION read_secret_data();
});
my $offset = log_offset($node);
my $rejected_before = sql('SELECT count(*) FROM segment_rejected');
my $response = eventually_status($port, $key, 503, 'secret-1', 'a trigger reading secret_data');
is(error_code($response), 'storage_misconfigured', 'the code is storage_misconfigured');
like($response && $response->{headers}{'retry-after'}, qr/^\d+$/, 'with Retry-After');
for my $attempt (2 .. 5)
{
    $response = post_webhook($port, encode_json_compact(track_message("secret-$attempt")), key => $key);
    is($response && $response->{status}, 503, "request $attempt with the trigger: answered 503");
    is(error_code($response), 'storage_misconfigured', "request $attempt with the trigger: storage_misconfigured");
}
my $batch = encode_json_compact([ map { track_message("secret-batch-$_") } 1 .. 3 ]);
$response = post_webhook($port, $batch, key => $key);
is($response && $response->{status}, 503, 'a batch of three with the trigger: answered 503');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id LIKE 'secret-%'}), '0', 'nothing is stored');
is(sql('SELECT count(*) FROM segment_rejected'), $rejected_before, 'nothing is dead-lettered');
my $denied_lines = () = slurp_file($node->logfile, $offset) =~ /permission denied for table secret_data/g;
is($denied_lines, 1, 'the permission error is logged once for all the failed requests');
like(slurp_file($node->logfile, $offset),
    qr/WARNING:  segment_webhook: worker 0: [^\n]*permission denied for table secret_data/,
    'as a WARNING of the worker');

$offset = log_offset($node);
sql('DROP TRIGGER read_secret_data ON segment_events');
eventually_status($port, $key, 200, 'secret-1', 'after dropping the trigger');
$response = post_webhook($port, $batch, key => $key);
is($response && $response->{status}, 200, 'the batch of three, retried: answered 200');
is((decode_json_body($response) // {})->{accepted}, 3, 'and stored');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id LIKE 'secret-%'}), '4', 'the retried events are stored');
is(sql(q{SELECT event FROM segment_events WHERE message_id = 'secret-1'}), 'segment_webhook_ingest/false',
    'still as segment_webhook_ingest');
ok(defined wait_for_log_within($node, qr/segment_webhook: worker 0 stores events again/, $offset, 10),
    'the log says the worker stores events again');
is((worker_pids($node))[0], $worker_pid, 'the same worker: it resumed by itself, without a restart');

# --- The ingest role's privileges are exactly those listed ------------------------------------------------------
my @privileges = (
    [ 'segment_sources', 'SELECT', 't' ],
    [ 'segment_events', 'INSERT', 't' ],
    [ 'segment_rejected', 'INSERT', 't' ],
    [ 'segment_rejected', 'SELECT', 'f' ],
    [ 'segment_events', 'SELECT', 'f' ],
    [ 'segment_events', 'UPDATE', 'f' ],
    [ 'segment_events', 'DELETE', 'f' ],
    [ 'segment_events', 'TRUNCATE', 'f' ],
    [ 'segment_sources', 'UPDATE', 'f' ],
    [ 'segment_rejected', 'DELETE', 'f' ],
    [ 'segment_suppressions', 'SELECT', 't' ],
    [ 'segment_suppressions', 'INSERT', 'f' ],
    [ 'segment_deletions', 'SELECT', 'f' ],
    [ 'segment_deletions', 'DELETE', 'f' ],
    [ 'secret_data', 'SELECT', 'f' ],
);
for my $privilege (@privileges)
{
    my ($table, $mode, $expected) = @$privilege;
    is(sql(qq{SELECT has_table_privilege('segment_webhook_ingest', '$table', '$mode')}), $expected,
        "segment_webhook_ingest " . ($expected eq 't' ? 'has' : 'has no') . " $mode on $table");
}
is( sql(q{SELECT has_column_privilege('segment_webhook_ingest', 'segment_events', 'message_id', 'SELECT')
               AND has_column_privilege('segment_webhook_ingest', 'segment_events', 'source_id', 'SELECT')
               AND NOT has_column_privilege('segment_webhook_ingest', 'segment_events', 'payload', 'SELECT')}),
    't', 'segment_webhook_ingest reads only (source_id, message_id) of segment_events');
is( sql(q{SELECT has_schema_privilege('segment_webhook_ingest', 'public', 'USAGE')
               AND NOT has_schema_privilege('segment_webhook_ingest', 'public', 'CREATE')}),
    't', 'segment_webhook_ingest uses the schema and creates nothing in it');
# Every grant to the role in the database, on tables and on columns: nothing more than the list.
is( sql(q{SELECT string_agg(c.relname || ' ' || a.privilege_type, ', ' ORDER BY c.relname, a.privilege_type)
          FROM pg_class c, aclexplode(c.relacl) a
          WHERE a.grantee = 'segment_webhook_ingest'::regrole}),
    'segment_event_keys INSERT, segment_events INSERT, segment_events_id_seq USAGE, segment_rejected INSERT, '
      . 'segment_sources SELECT, segment_suppressions SELECT',
    'the table privileges of segment_webhook_ingest are exactly those listed');
is( sql(q{SELECT string_agg(c.relname || '.' || t.attname || ' ' || a.privilege_type, ', '
                            ORDER BY c.relname, t.attname)
          FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid, aclexplode(t.attacl) a
          WHERE a.grantee = 'segment_webhook_ingest'::regrole}),
    'segment_deletions.source_id INSERT, segment_deletions.user_id INSERT, segment_event_keys.event_id SELECT, '
      . 'segment_event_keys.message_id SELECT, segment_event_keys.source_id SELECT, segment_events.message_id SELECT, '
      . 'segment_events.source_id SELECT',
    'the column privileges of segment_webhook_ingest are exactly those listed');
is( sql(q{SELECT rolsuper::text || ' ' || rolcanlogin::text || ' ' || rolcreaterole::text || ' ' || rolcreatedb::text
          FROM pg_roles WHERE rolname = 'segment_webhook_ingest'}),
    'false false false false', 'segment_webhook_ingest is no superuser, cannot log in, create roles or databases');
is(sql(q{SELECT count(*) FROM pg_auth_members WHERE member = 'segment_webhook_ingest'::regrole}), '0',
    'segment_webhook_ingest is a member of no role');

# --- segment_webhook.role naming a superuser: a warning at every start -----------------------------------------
# On a node of its own: the first one must never restart.
my $superuser_warning = qr/WARNING:  segment_webhook: worker 0 runs the ingest SQL as superuser "\Q$bootstrap_user\E"/;
my ($super_node, $super_port) = start_webhook_node('superuser_role',
    conf => "segment_webhook.role = '$bootstrap_user'\n");
my $warnings = () = slurp_file($super_node->logfile) =~ /$superuser_warning/g;
is($warnings, 1, 'segment_webhook.role a superuser: the worker warns at its start');
my $super_key = $super_node->safe_psql('postgres', q{SELECT segment_create_source('least')});
$super_node->safe_psql('postgres', $record_user);
eventually_status($super_port, $super_key, 200, 'super-1', 'segment_webhook.role a superuser: an event');
is($super_node->safe_psql('postgres', q{SELECT event FROM segment_events WHERE message_id = 'super-1'}),
    "$bootstrap_user/true", 'segment_webhook.role a superuser: the trigger runs as that role');

$offset = log_offset($super_node);
$super_node->restart;
ok( defined wait_for_log_within($super_node, qr/segment_webhook: worker 0 listening on 127\.0\.0\.1:$super_port\b/,
        $offset, 30),
    'segment_webhook.role a superuser: the worker listens after a restart');
$warnings = () = slurp_file($super_node->logfile) =~ /$superuser_warning/g;
is($warnings, 2, 'segment_webhook.role a superuser: the warning again at the next start');
eventually_status($super_port, $super_key, 200, 'super-2',
    'segment_webhook.role a superuser: an event after the restart');
is($super_node->safe_psql('postgres', q{SELECT event FROM segment_events WHERE message_id = 'super-2'}),
    "$bootstrap_user/true", 'segment_webhook.role a superuser: stored as that role after the restart');
$super_node->stop;

# --- The first server was never restarted ------------------------------------------------------------------------
my $alive = eval { $session->query_safe('SELECT 1') };
is($alive, '1', 'the session opened at the start still answers');
eval { $session->quit };
unlike(slurp_file($node->logfile), qr/terminated by signal|reinitializing/, 'the server log shows no crash');
is((worker_pids($node))[0], $worker_pid, 'the worker of the start is still running');

$node->stop;
done_testing();
