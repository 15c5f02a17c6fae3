# Upgrades in place. An installation of version 0.1, written to over HTTP and by segment_ingest() while the
# worker of the new library runs (as the bootstrap superuser, said once in the log), keeps every source, event,
# dead letter and sequence position through ALTER EXTENSION segment_webhook UPDATE; the same worker (no restart)
# goes on ingesting at once, now as the role segment_webhook_ingest, and a 0.1 dead letter can be replayed.
# For every install script older than the default version, in the default schema and in another one, a database
# created at that version and updated has the same schema as a database created at the default version: the same
# pg_dump --schema-only, and the same --binary-upgrade dump (the one pg_upgrade uses, which lists every member
# object of the extension with its privileges and comments; OIDs masked). Finally the server started in
# binary-upgrade mode (postgres -b, as pg_upgrade does) starts no worker and opens no HTTP port.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;
use Time::HiRes qw(time usleep);

my ($node, $port) = start_webhook_node('upgrade', create_extension => 0);
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $bootstrap_user = sql('SELECT current_user');
my $listening = qr/segment_webhook: worker 0 listening on 127\.0\.0\.1:$port\b/;

# --- Version 0.1, written to while the worker runs -------------------------------------------------------------
my $offset = log_offset($node);
sql(q{CREATE EXTENSION segment_webhook VERSION '0.1'});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'segment_webhook'}), '0.1', 'version 0.1 installed');
is(sql(q{SELECT count(*) FROM pg_roles WHERE rolname = 'segment_webhook_ingest'}), '0',
    'version 0.1 creates no ingest role');
ok(defined wait_for_log_within($node, qr/segment_webhook: extension found, ingesting/, $offset, 30),
    'the worker finds the 0.1 extension');
my $worker_pid = (worker_pids($node))[0];
ok($worker_pid, 'the worker runs');

my $plain_key = sql(q{SELECT segment_create_source('plain')});
my $secret = 'upgrade-shared-secret';
my $signed_key = sql(qq{SELECT segment_create_source('signed', '$secret')});

# Who runs the worker's SQL: a trigger writes it into the event name.
sql(q{
    CREATE FUNCTION record_ingest_user() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.event := current_user || '/' || (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
        RETURN NEW;
    END
    $$;
    CREATE TRIGGER record_ingest_user BEFORE INSERT ON segment_events
        FOR EACH ROW WHEN (NEW.event = 'who') EXECUTE FUNCTION record_ingest_user();
});

my $response;
ok( wait_until(15, sub {
            $response = post_webhook($port, encode_json_compact(track_message('v1-plain-1')),
                key => $plain_key, quiet => 1);
            $response && $response->{status} == 200;
        }),
    '0.1: an event over HTTP is answered 200')
  or diag('last answer: ' . ($response ? "$response->{status} $response->{body}" : 'none'));
my $batch = encode_json_compact([ map { track_message("v1-signed-$_") } 1 .. 3 ]);
$response = post_webhook($port, $batch, key => $signed_key, secret => $secret);
is($response && $response->{status}, 200, '0.1: a signed batch is answered 200');
is((decode_json_body($response) // {})->{accepted}, 3, '0.1: the signed batch is stored');
$response = post_webhook($port, encode_json_compact(track_message('v1-who', event => 'who')), key => $plain_key);
is($response && $response->{status}, 200, '0.1: an event through the trigger is answered 200');
is(sql(q{SELECT event FROM segment_events WHERE message_id = 'v1-who'}), "$bootstrap_user/true",
    '0.1: the worker ingests as the bootstrap superuser');

# Dead letters: a message without type over HTTP, an unknown type through segment_ingest().
my $untyped = { event => 'No Type', userId => 'user-1', messageId => 'v1-untyped' };
$response = post_webhook($port, encode_json_compact($untyped), key => $plain_key);
is($response && $response->{status}, 200, '0.1: a message without type is answered 200');
is((decode_json_body($response) // {})->{rejected}, 1, '0.1: and dead-lettered');
is( sql(q{SELECT segment_ingest('plain', '[{"type":"track","event":"S","userId":"u","messageId":"v1-sql-1"},
                                            {"type":"track","event":"S","userId":"u","messageId":"v1-sql-2"},
                                            {"type":"bogus","userId":"u","messageId":"v1-bogus"}]')}),
    '2', '0.1: segment_ingest() stores two events');
is(sql('SELECT count(*) FROM segment_rejected'), '2', '0.1: two dead letters');

my $role_warning =
  qr/WARNING:  segment_webhook: role "segment_webhook_ingest" does not exist; ingesting as the bootstrap superuser/;
my $role_warnings = () = slurp_file($node->logfile) =~ /$role_warning/g;
is($role_warnings, 1, '0.1: the worker says once that it ingests as the bootstrap superuser');

# Everything 0.1 holds, to compare after the update.
sub snapshot
{
    my %snapshot;
    for my $table (qw(segment_sources segment_events segment_rejected))
    {
        # (Without the columns 0.4 and 0.5 add to segment_events and segment_sources, which the rows gain
        # through the update.)
        $snapshot{$table} = sql(
            "SELECT count(*) || ' ' || md5(coalesce(string_agg((to_jsonb(t) - 'signature_verified' - 'retention')::text, E'\\n'"
              . " ORDER BY t.id), '')) FROM $table t");
        $snapshot{"${table}_id_seq"} = sql("SELECT last_value || ' ' || is_called FROM ${table}_id_seq");
    }
    return \%snapshot;
}
my $before = snapshot();
like($before->{segment_events}, qr/^7 /, 'seven events before the update');
like($before->{segment_sources}, qr/^2 /, 'two sources before the update');

# --- ALTER EXTENSION UPDATE with the worker running -------------------------------------------------------------
$offset = log_offset($node);
sql(q{ALTER EXTENSION segment_webhook UPDATE TO '0.2'});
my $default_version = sql(q{SELECT default_version FROM pg_available_extensions WHERE name = 'segment_webhook'});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'segment_webhook'}), '0.2', 'updated to 0.2');
is_deeply(snapshot(), $before, 'every source, event and dead letter and every sequence position is unchanged');
is(sql(q{SELECT rolsuper::text || rolcanlogin::text FROM pg_roles WHERE rolname = 'segment_webhook_ingest'}),
    'falsefalse', 'the update creates the ingest role, no superuser, no login');
ok(sql(q{SELECT to_regprocedure('segment_replay(bigint,jsonb)') IS NOT NULL}) eq 't',
    'the update adds segment_replay()');

ok( wait_until(15, sub {
            $response = post_webhook($port, encode_json_compact(track_message('v2-who', event => 'who')),
                key => $plain_key, quiet => 1);
            $response && $response->{status} == 200;
        }),
    'after the update the worker answers 200')
  or diag('last answer: ' . ($response ? "$response->{status} $response->{body}" : 'none'));
is(sql(q{SELECT event FROM segment_events WHERE message_id = 'v2-who'}), 'segment_webhook_ingest/false',
    'after the update the worker ingests as segment_webhook_ingest');
$response = post_webhook($port, encode_json_compact([ track_message('v2-signed-1') ]),
    key => $signed_key, secret => $secret);
is($response && $response->{status}, 200, 'after the update a signed request is answered 200');
is((worker_pids($node))[0], $worker_pid, 'the worker was not restarted');
unlike(slurp_file($node->logfile, $offset), qr/terminated by signal|reinitializing/, 'no crash during the update');
$role_warnings = () = slurp_file($node->logfile) =~ /$role_warning/g;
is($role_warnings, 1, 'the missing-role warning is not repeated');

# A 0.1 dead letter replayed, fixed, with the function 0.2 adds.
my $untyped_id = sql(q{SELECT id FROM segment_rejected WHERE message_id = 'v1-untyped'});
is( sql(qq{SELECT segment_replay($untyped_id,
        '{"type":"track","event":"No Type","userId":"user-1","messageId":"v1-untyped"}')}),
    '1', 'a 0.1 dead letter is replayed');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'v1-untyped'}), '1', 'the replayed event is stored');
is(sql(qq{SELECT count(*) FROM segment_rejected WHERE id = $untyped_id}), '0', 'and its dead letter is gone');

# --- 0.2 → 0.3 with the worker running: the warehouse relations of the events already stored -----------------
$before = snapshot();
$offset = log_offset($node);
sql(q{ALTER EXTENSION segment_webhook UPDATE TO '0.3'});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'segment_webhook'}), '0.3', 'updated to 0.3');
my $after = snapshot();
for my $kept (qw(segment_events segment_rejected segment_events_id_seq segment_rejected_id_seq segment_sources_id_seq))
{
    is($after->{$kept}, $before->{$kept}, "0.3: $kept is unchanged");
}
is( sql(q{SELECT string_agg(name || '=' || warehouse_schema, ',' ORDER BY id) FROM segment_sources}),
    'plain=plain,signed=signed', '0.3: every source has its warehouse schema, named after it');
my $stored_plain = sql(q{SELECT count(*) FROM segment_events e JOIN segment_sources s ON s.id = e.source_id
                         WHERE s.name = 'plain' AND e.type = 'track'});
ok($stored_plain > 0, "0.3: source plain has $stored_plain track events stored before the update");
ok( wait_until(15, sub {
            sql(q{SELECT to_regclass('plain.tracks') IS NOT NULL}) eq 't'
              && sql('SELECT count(*) FROM plain.tracks') == $stored_plain;
        }),
    '0.3: the worker builds plain.tracks, holding the events stored before the update');
my $stored_test_events = sql(q{SELECT count(*) FROM segment_events e JOIN segment_sources s ON s.id = e.source_id
                               WHERE s.name = 'plain' AND e.event = 'Test Event'});
ok( wait_until(15, sub {
            sql(q{SELECT to_regclass('plain.test_event') IS NOT NULL}) eq 't'
              && sql(q{SELECT count(*) FROM plain.test_event WHERE event = 'test_event' AND user_id = 'user-1'})
              == $stored_test_events;
        }),
    "0.3: and plain.test_event, a relation for an event stored before the update ($stored_test_events rows)");
$response = post_webhook($port,
    encode_json_compact(track_message('v3-new', event => 'Upgraded Event', properties => { fresh_column => 7 })),
    key => $plain_key);
is($response && $response->{status}, 200, '0.3: an event with a new property is answered 200');
ok( wait_until(15, sub {
            sql(q{SELECT to_regclass('plain.upgraded_event') IS NOT NULL}) eq 't'
              && sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'plain.upgraded_event'::regclass
                       AND attname = 'fresh_column'}) eq '1';
        }),
    '0.3: its relation and column appear');
is(sql(q{SELECT fresh_column FROM plain.upgraded_event WHERE id = 'v3-new'}), '7', '0.3: with its value');
is((worker_pids($node))[0], $worker_pid, '0.3: the worker was not restarted');
unlike(slurp_file($node->logfile, $offset), qr/terminated by signal|reinitializing/, 'no crash during the update to 0.3');

# --- 0.3 → 0.4 with the worker running --------------------------------------------------------------------------
$before = snapshot();
$offset = log_offset($node);
sql(q{ALTER EXTENSION segment_webhook UPDATE TO '0.4'});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'segment_webhook'}), '0.4', 'updated to 0.4');
$after = snapshot();
for my $kept (qw(segment_events segment_rejected segment_events_id_seq segment_rejected_id_seq segment_sources_id_seq))
{
    is($after->{$kept}, $before->{$kept}, "0.4: $kept is unchanged");
}
is( sql(q{SELECT string_agg(format('%s:%s:%s:%s', name, require_full_signature, max_events_per_second IS NULL,
                                   honor_deletions), ',' ORDER BY id) FROM segment_sources}),
    'plain:f:t:f,signed:f:t:f', '0.4: the new source settings start at their defaults');
is(sql(q{SELECT count(*) FROM segment_events WHERE signature_verified}), '0',
    '0.4: the events stored before 0.4 read signature_verified = false');
$response = post_webhook($port, encode_json_compact([ track_message('v4-signed-1') ]),
    key => $signed_key, secret => $secret);
is($response && $response->{status}, 200, '0.4: a signed request is answered 200');
is(sql(q{SELECT signature_verified FROM segment_events WHERE message_id = 'v4-signed-1'}), 't',
    '0.4: the same worker (no restart) records that its event was signed');
is(sql(q{SELECT count(*) FROM plain.tracks WHERE id = 'v3-new'}), '1', '0.4: the warehouse relations are kept');
is((worker_pids($node))[0], $worker_pid, '0.4: the worker was not restarted');
unlike(slurp_file($node->logfile, $offset), qr/terminated by signal|reinitializing/, 'no crash during the update to 0.4');

# --- 0.4 → 0.5 with the worker running: segment_events becomes partitioned ------------------------------------
$before = snapshot();
my $stored_before = sql('SELECT count(*) FROM segment_events');
$offset = log_offset($node);
my ($update_out, $update_err);
$node->psql('postgres', q{ALTER EXTENSION segment_webhook UPDATE TO '0.5'}, stdout => \$update_out,
    stderr => \$update_err, on_error_die => 1);
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'segment_webhook'}), '0.5', 'updated to 0.5');
like($update_err, qr/WARNING:  segment_webhook: trigger record_ingest_user on segment_events stays on the partition segment_events_default/,
    '0.5: the update names the trigger of the user that stays on the 0.4 table');
$after = snapshot();
for my $kept (qw(segment_events segment_rejected segment_events_id_seq segment_rejected_id_seq segment_sources_id_seq))
{
    is($after->{$kept}, $before->{$kept}, "0.5: $kept is unchanged");
}
is(sql(q{SELECT relkind FROM pg_class WHERE oid = 'segment_events'::regclass}), 'p', '0.5: segment_events is partitioned');
is(sql(q{SELECT count(*) FROM ONLY segment_events_default}), $stored_before,
    '0.5: every event stored before the update is in the default partition (the 0.4 table, not rewritten)');
is(sql(q{SELECT count(*) FROM segment_event_keys k JOIN segment_events e ON e.id = k.event_id AND e.message_id = k.message_id}),
    $stored_before, '0.5: the keys of the events within the dedup window were recorded');
# A message stored before the update is a duplicate after it: nothing new is stored.
$response = post_webhook($port, encode_json_compact(track_message('v4-signed-1')), key => $signed_key, secret => $secret);
is($response && $response->{status}, 200, '0.5: a message stored before the update, sent again, is answered 200');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'v4-signed-1'}), '1', '0.5: and is not stored twice');
$response = post_webhook($port, encode_json_compact(track_message('v5-new', event => 'After Partitioning')), key => $plain_key);
is($response && $response->{status}, 200, '0.5: a new event is answered 200 by the same worker');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'v5-new'}), '1', '0.5: and stored');
is((worker_pids($node))[0], $worker_pid, '0.5: the worker was not restarted');
# The warehouse worker builds the warehouse views again over the partitioned table, and its maintenance bounds
# the default partition (it holds rows: tomorrow, or the day after), validates the bound, and makes the day
# partitions.
ok( wait_until(20, sub { sql(q{SELECT count(*) FROM plain.tracks WHERE id = 'v5-new'}) eq '1' }),
    '0.5: the warehouse relations show the events stored after the update');
ok( wait_until(30, sub { sql(q{SELECT count(*) FROM segment_event_partitions()}) >= 6 }),
    '0.5: the worker makes the day partitions');
is( sql(q{SELECT (SELECT min(from_time) FROM segment_event_partitions())
                 = today + CASE WHEN now() < today + interval '12 hours' THEN interval '1 day' ELSE interval '2 days' END
          FROM (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') d(today)}),
    't', '0.5: from tomorrow (after noon UTC: the day after), the default partition holding rows');
is(sql(q{SELECT convalidated FROM pg_constraint WHERE conname = 'segment_events_default_before'}), 't',
    '0.5: after validating its bound');
unlike(slurp_file($node->logfile, $offset), qr/terminated by signal|reinitializing/, 'no crash during the update to 0.5');

# --- 0.5 → 0.6 with the worker running: the warehouse views rebuilt, closed day partitions reordered ----------
# A closed day holding events (a partition made by hand, as for an import), and what the views show before.
sql(q{CREATE TABLE segment_events_p20200301 PARTITION OF segment_events
          FOR VALUES FROM ('2020-03-01 00:00+00') TO ('2020-03-02 00:00+00');
      INSERT INTO segment_events (source_id, message_id, type, event, name, user_id, "timestamp", received_at, payload)
      SELECT s.id, 'v5-old-' || g, CASE WHEN g % 2 = 0 THEN 'track' ELSE 'page' END,
             CASE WHEN g % 2 = 0 THEN 'Imported' END, CASE WHEN g % 2 = 1 THEN 'Home' END, 'user-1',
             '2020-03-01 00:00+00'::timestamptz + g * interval '1 minute',
             '2020-03-01 00:00+00'::timestamptz + g * interval '1 minute',
             jsonb_build_object('properties', jsonb_build_object('url', 'https://example.com/' || g, 'rank', g))
      FROM segment_sources s, generate_series(1, 40) g WHERE s.name = 'plain'});
ok( wait_until(20, sub { sql(q{SELECT count(*) FROM plain.pages WHERE id LIKE 'v5-old-%'}) eq '20'
                           && sql(q{SELECT to_regclass('plain.imported') IS NOT NULL}) eq 't' }),
    '0.5: the warehouse relations show the imported day');
sub views
{
    my %views;
    for my $relation (qw(tracks pages imported))
    {
        $views{"$relation columns"} = sql(qq{SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', '
                                                 ORDER BY attnum) FROM pg_attribute
                                             WHERE attrelid = 'plain.$relation'::regclass AND attnum > 0});
        $views{"$relation rows"} = sql(qq{SELECT count(*) || ' ' || md5(string_agg(v::text, E'\n' ORDER BY id))
                                          FROM plain.$relation v});
    }
    return \%views;
}
my $views_before = views();
$before = snapshot();
$offset = log_offset($node);
sql(q{ALTER EXTENSION segment_webhook UPDATE});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'segment_webhook'}), '0.6', 'updated to 0.6');
is($default_version, '0.6', '0.6 is the default version');
is_deeply(snapshot(), $before, '0.6: every source, event and dead letter and every sequence position is unchanged');
# The warehouse worker makes the views again: their values read from the payload now come from a LEFT JOIN
# LATERAL subquery; the same columns, the same rows.
ok( wait_until(20, sub {
            sql(q{SELECT count(*) FROM segment_warehouse_relations WHERE pending}) eq '0'
              && sql(q{SELECT pg_get_viewdef('plain.pages') LIKE '%LEFT JOIN LATERAL%'}) eq 't' }),
    '0.6: the worker builds the warehouse views again');
is_deeply(views(), $views_before, '0.6: with the same columns and rows');
$response = post_webhook($port, encode_json_compact(track_message('v6-new', event => 'Imported')), key => $plain_key);
is($response && $response->{status}, 200, '0.6: a new event is answered 200 by the same worker');
ok(wait_until(20, sub { sql(q{SELECT count(*) FROM plain.imported WHERE id = 'v6-new'}) eq '1' }),
    '0.6: and shows in its relation');
# The closed day is reordered (by the reorder worker after the hourly maintenance; called here), keeping its rows.
$views_before = views();
my $day_before = sql(q{SELECT md5(string_agg(e::text, E'\n' ORDER BY id)) FROM segment_events_p20200301 e});
is(sql('SELECT segment_reorder_next()'), 'segment_events_p20200301', '0.6: segment_reorder_next() reorders a closed day partition');
is(sql(q{SELECT count(*) FROM pg_constraint WHERE conrelid = 'segment_events_p20200301'::regclass
         AND conname = 'segment_events_reordered'}), '1', '0.6: that day partition');
is(sql(q{SELECT md5(string_agg(e::text, E'\n' ORDER BY id)) FROM segment_events_p20200301 e}), $day_before,
    '0.6: with the same rows');
is( sql(q{SELECT string_agg(type, ',' ORDER BY ctid) FROM (SELECT DISTINCT ON (type) type, ctid FROM segment_events_p20200301
                                                        ORDER BY type, ctid) t}),
    'page,track', '0.6: now stored by type');
is_deeply(views(), $views_before, '0.6: the views read the same rows after it');
is((worker_pids($node))[0], $worker_pid, '0.6: the worker was not restarted');
unlike(slurp_file($node->logfile, $offset), qr/terminated by signal|reinitializing/, 'no crash during the update to 0.6');

# --- Every upgrade path ends where a fresh installation starts --------------------------------------------------
# Versions are those of this tree's install scripts (segment_webhook--V.sql; upgrade scripts name two versions).
sub version_parts { return map { $_ + 0 } split /\./, $_[0]; }
sub version_compare
{
    my @a = version_parts($_[0]);
    my @b = version_parts($_[1]);
    while (@a || @b)
    {
        my $cmp = (shift(@a) // 0) <=> (shift(@b) // 0);
        return $cmp if $cmp;
    }
    return 0;
}
my $sql_dir = "$FindBin::RealBin/../../sql";
my ($control_version) =
  slurp_file("$FindBin::RealBin/../../segment_webhook.control") =~ /^default_version\s*=\s*'([^']+)'/m;
is($default_version, $control_version, "the installed default version is this tree's ($control_version)");
opendir(my $dir, $sql_dir) or die "cannot read $sql_dir: $!";
my @older_versions = sort { version_compare($a, $b) } grep { version_compare($_, $control_version) < 0 }
  map { /^segment_webhook--([^-]+)\.sql$/ ? ($1) : () } readdir $dir;
closedir $dir;
ok(scalar @older_versions, 'older install scripts: ' . join(', ', @older_versions));

sub pg_dump_schema
{
    my ($database, @options) = @_;
    my ($stdout, $stderr);
    my $ok = IPC::Run::run(
        [ $node->installed_command('pg_dump'), '--schema-only', @options, '-d', $node->connstr($database) ],
        '<', \undef, '>', \$stdout, '2>', \$stderr);
    diag("pg_dump of $database failed: $stderr") unless $ok;
    return undef unless $ok;
    # pg_dump fences its output with a random key (\restrict KEY ... \unrestrict KEY) since 15.14.
    return join "\n", grep { !/^\\(un)?restrict / } split /\n/, $stdout;
}

# The --binary-upgrade dump, with what differs between any two databases masked: object ids, transaction ids
# and WAL positions (in the binary_upgrade_* calls, and quoted as in "SET relfrozenxid = '754'", "oid = '16695'").
sub binary_upgrade_dump
{
    my $dump = pg_dump_schema($_[0], '--binary-upgrade') // return undef;
    return join "\n", map {
        my $line = s{'\d+'}{'N'}gr;
        $line =~ /binary_upgrade_/ ? $line =~ s{[0-9A-F]+/[0-9A-F]+}{LSN}gr =~ s/\d+/N/gr : $line
    } split /\n/, $dump;
}

sub same_text
{
    my ($got, $expected, $name) = @_;
    if (defined $got && defined $expected && $got eq $expected)
    {
        pass($name);
        return;
    }
    fail($name);
    return unless defined $got && defined $expected;
    my $work_dir = PostgreSQL::Test::Utils::tempdir();
    append_to_file("$work_dir/fresh.sql", $expected);
    append_to_file("$work_dir/updated.sql", $got);
    IPC::Run::run([ 'diff', '-u', "$work_dir/fresh.sql", "$work_dir/updated.sql" ], '>', \my $diff);
    diag($diff);
}

for my $schema ('public', 'seg')
{
    my $fresh = "fresh_$schema";
    my $create_schema = $schema eq 'public' ? '' : "CREATE SCHEMA $schema;";
    sql("CREATE DATABASE $fresh");
    $node->safe_psql($fresh, "$create_schema CREATE EXTENSION segment_webhook SCHEMA $schema");
    is($node->safe_psql($fresh, q{SELECT extversion FROM pg_extension WHERE extname = 'segment_webhook'}),
        $control_version, "fresh installation in schema $schema is at $control_version");
    my $fresh_dump = pg_dump_schema($fresh);
    my $fresh_binary_dump = binary_upgrade_dump($fresh);
    for my $version (@older_versions)
    {
        my $updated = "updated_from_" . ($version =~ s/\W/_/gr) . "_$schema";
        sql("CREATE DATABASE $updated");
        $node->safe_psql($updated,
            "$create_schema CREATE EXTENSION segment_webhook SCHEMA $schema VERSION '$version';"
              . ' ALTER EXTENSION segment_webhook UPDATE');
        is($node->safe_psql($updated, q{SELECT extversion FROM pg_extension WHERE extname = 'segment_webhook'}),
            $control_version, "$version updated in schema $schema is at $control_version");
        same_text(pg_dump_schema($updated), $fresh_dump,
            "schema $schema: pg_dump --schema-only after $version → $control_version is a fresh installation's");
        same_text(binary_upgrade_dump($updated), $fresh_binary_dump,
            "schema $schema: every object of $version → $control_version is a fresh installation's");
    }
}

# --- Binary-upgrade mode: no worker, no HTTP port -------------------------------------------------------------
$node->stop;
$offset = log_offset($node);
my ($pg_ctl_out, $pg_ctl_err);
my $started = IPC::Run::run(
    [ $node->installed_command('pg_ctl'), '-w', '-D', $node->data_dir, '-l', $node->logfile, '-o', '-b', 'start' ],
    '<', \undef, '>', \$pg_ctl_out, '2>', \$pg_ctl_err);
ok($started, 'the server starts in binary-upgrade mode') or diag("$pg_ctl_out\n$pg_ctl_err");
SKIP:
{
    skip 'the server did not start in binary-upgrade mode', 4 unless $started;
    is(sql('SHOW is_superuser'), 'on', 'a superuser connects in binary-upgrade mode');
    # Something absent is only seen over time: watch for three seconds.
    my ($workers_seen, $port_open) = (0, 0);
    my $deadline = time + 3;
    while (time < $deadline)
    {
        $workers_seen ||= sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segment_webhook worker'});
        my $connection = http_connect($port, connect_timeout => 1);
        if ($connection)
        {
            $port_open = 1;
            $connection->close;
        }
        usleep(200_000);
    }
    is($workers_seen, 0, 'binary-upgrade mode: no segment_webhook worker in pg_stat_activity');
    ok(!$port_open, 'binary-upgrade mode: the HTTP port refuses connections');
    unlike(slurp_file($node->logfile, $offset), qr/segment_webhook: worker \d+ listening on/,
        'binary-upgrade mode: no worker listens');
    my ($stop_out, $stop_err);
    ok( IPC::Run::run([ $node->installed_command('pg_ctl'), '-w', '-D', $node->data_dir, '-m', 'fast', 'stop' ],
            '<', \undef, '>', \$stop_out, '2>', \$stop_err),
        'the binary-upgrade server stops')
      or diag("$stop_out\n$stop_err");
}

# Started normally again, the worker is back and ingests.
$offset = log_offset($node);
$node->start;
ok(defined wait_for_log_within($node, $listening, $offset, 30), 'started normally, the worker listens again');
ok( wait_until(15, sub {
            $response = post_webhook($port, encode_json_compact(track_message('after-binary-upgrade')),
                key => $plain_key, quiet => 1);
            $response && $response->{status} == 200;
        }),
    'and ingests again')
  or diag('last answer: ' . ($response ? "$response->{status} $response->{body}" : 'none'));
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'after-binary-upgrade'}), '1', 'the event is stored');

$node->stop;
done_testing();
