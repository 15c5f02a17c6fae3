# Native TLS on the ingest port (segment_webhook.ssl_cert_file and ssl_key_file). A CA and server certificates
# (SAN IP:127.0.0.1 and DNS:localhost) are made here with the openssl command. With both settings in
# postgresql.conf at the start, the port speaks HTTPS only: curl --cacert posts a signed event and it is stored;
# a plain HTTP request gets 400 https_required and the worker serves on; TLS 1.1 is refused, TLS 1.2 and 1.3 are
# accepted with ALPN http/1.1 (a client offering only h2 is refused) and a TLS 1.2 session is resumed; stalled
# handshakes (nothing sent, half a ClientHello) delay no other client and are closed by read_timeout; a
# certificate rotated on disk is served to the next connection after pg_reload_conf() (relative paths name
# files in the data directory); a broken certificate or a key file readable by others on reload keeps the old
# certificate and is logged once; analytics-node delivers over HTTPS with NODE_EXTRA_CA_CERTS. A second node
# started with a key file of mode 0644 logs why, refuses handshakes and answers plain HTTP 400, and serves
# HTTPS as soon as a reload finds the key fixed; a reload that leaves one of the two settings alone keeps HTTPS.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Spec;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SegmentWebhookTest;
use Test::More;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $sdk_dir = File::Spec->catdir(dirname($FindBin::RealBin), 'sdk');

# Runs a command; returns (exit status, stdout and stderr together). Never hangs: 60 s at most.
sub run_tool
{
    my (@command) = @_;
    my $output = '';
    my $stdin = '';
    my $ok = eval {
        IPC::Run::run(\@command, '<', \$stdin, '>&', \$output, IPC::Run::timeout(60));
        1;
    };
    return ($ok ? $? >> 8 : 255, $output . ($@ // ''));
}

sub openssl
{
    my ($status, $output) = run_tool('openssl', @_);
    die "openssl @_ failed: $output" if $status != 0;
    return $output;
}

# A CA, and server certificates signed by it with the given serial numbers.
openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', "$dir/ca.key", '-out', "$dir/ca.crt", '-subj', '/CN=segment_webhook test CA', '-days', '2');
open(my $extensions, '>', "$dir/server.ext") or die;
print $extensions "subjectAltName = IP:127.0.0.1, DNS:localhost\n";
close $extensions;
sub make_server_certificate
{
    my ($name, $serial) = @_;
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout',
        "$dir/$name.key", '-out', "$dir/$name.csr", '-subj', '/CN=localhost');
    openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/ca.crt", '-CAkey', "$dir/ca.key",
        '-set_serial', $serial, '-days', '2', '-extfile', "$dir/server.ext", '-out', "$dir/$name.crt");
    chmod 0600, "$dir/$name.key";
}
make_server_certificate('first', 1001);     # serial 03E9
make_server_certificate('second', 1002);    # 03EA
make_server_certificate('third', 1003);     # 03EB

my ($node, $port) = start_webhook_node('tls',
    conf => "segment_webhook.ssl_cert_file = '$dir/first.crt'\n"
      . "segment_webhook.ssl_key_file = '$dir/first.key'\n");
my $data = $node->data_dir;
sub sql { return $node->safe_psql('postgres', $_[0]); }
my @workers = worker_pids($node);

is( sql(q{SELECT string_agg(name || ' = ' || setting || ' from ' || source, ', ' ORDER BY name) FROM pg_settings
              WHERE name IN ('segment_webhook.ssl_cert_file', 'segment_webhook.ssl_key_file')}),
    "segment_webhook.ssl_cert_file = $dir/first.crt from configuration file, "
      . "segment_webhook.ssl_key_file = $dir/first.key from configuration file",
    'both settings apply from the start (031_settings_at_start.pl leaves them to this test)');
like(slurp_file($node->logfile), qr/listening on 127\.0\.0\.1:$port \(HTTPS only\)/,
    'the worker says the port speaks HTTPS only');
like(slurp_file($node->logfile), qr/serves TLS certificate subject CN = localhost, serial 03E9, valid until/,
    'the worker logs the certificate it serves');

my $secret = 'tls-shared-secret';
my $key = sql("SELECT segment_create_source('tls', '$secret')");

# --- curl with --cacert -----------------------------------------------------------------------------------------
# Posts a signed event over HTTPS; returns the HTTP status ('000' when the request failed) and curl's output.
sub curl_post
{
    my ($message_id, %options) = @_;
    my $body = encode_json_compact(track_message($message_id));
    my $host = $options{host} // '127.0.0.1';
    my ($status, $output) = run_tool('curl', '-sS', '--max-time', $options{max_time} // 10,
        '--cacert', "$dir/ca.crt", '-o', '/dev/null', '-w', '%{http_code} %{http_version}',
        '-H', 'Content-Type: application/json', '-H', 'X-Signature: ' . sign_body($secret, $body),
        '--data-binary', $body, "https://$host:$port/v1/webhook?writeKey=$key");
    return $output;
}
ok(wait_until(10, sub { curl_post('warm-up') =~ /^200 / }), 'the worker knows the new source over HTTPS');
is(curl_post('tls-1'), '200 1.1', 'curl --cacert: a signed event over HTTPS gets 200 (HTTP/1.1)');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'tls-1'}), '1', 'and the event is stored');
is(curl_post('tls-localhost', host => 'localhost'), '200 1.1',
    'the certificate is valid for DNS:localhost too');

# --- plain HTTP on the HTTPS port ------------------------------------------------------------------------------
my $response = post_webhook($port, encode_json_compact(track_message('plain-1')), key => $key, secret => $secret);
is($response && $response->{status}, 400, 'a plain HTTP request on the HTTPS port gets 400');
is(error_code($response), 'https_required', 'with code https_required');
like($response && $response->{headers}{connection}, qr/close/i, 'and the connection is closed');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'plain-1'}), '0', 'nothing is stored from it');
is(curl_post('tls-after-plain'), '200 1.1', 'the worker serves HTTPS afterwards');

# --- protocol versions, ALPN, resumption ----------------------------------------------------------------------
sub s_client
{
    my (@options) = @_;
    return run_tool('openssl', 's_client', '-connect', "127.0.0.1:$port", '-CAfile', "$dir/ca.crt",
        '-verify_return_error', @options);
}
my ($status, $output) = s_client('-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0');
isnt($status, 0, 'openssl s_client -tls1_1 fails');
like($output, qr/alert protocol version/, 'TLS 1.1 is refused by the server (protocol version alert)')
  or diag($output);
for my $version ('1_2', '1_3')
{
    ($status, $output) = s_client("-tls$version", '-alpn', 'h2,http/1.1');
    is($status, 0, "openssl s_client -tls$version succeeds") or diag($output);
    (my $shown = $version) =~ s/_/./;
    like($output, qr/^New, TLSv\Q$shown\E,/m, "TLS $shown is negotiated");
    like($output, qr/ALPN protocol: http\/1\.1/, "TLS $shown: ALPN http/1.1 is chosen among h2 and http/1.1");
    like($output, qr/Verify return code: 0 \(ok\)/, "TLS $shown: the certificate verifies against the CA");
    like($output, qr/Compression: NONE/, "TLS $shown: no compression");
}
($status, $output) = s_client('-alpn', 'h2');
isnt($status, 0, 'a client offering only h2 is refused');
like($output, qr/no application protocol/, 'with the no_application_protocol alert') or diag($output);
($status, $output) = s_client('-tls1_2', '-sess_out', "$dir/session.pem");
is($status, 0, 'a TLS 1.2 session is saved') or diag($output);
($status, $output) = s_client('-tls1_2', '-sess_in', "$dir/session.pem");
like($output, qr/^Reused, TLSv1\.2/m, 'and resumed by the next connection') or diag($output);

# --- stalled handshakes delay nobody, and read_timeout closes them --------------------------------------------
my $silent = http_connect($port, timeout => 30);
my $half_hello = http_connect($port, timeout => 30);
# The first 11 bytes of a ClientHello: a handshake record of 512 bytes, of which nothing more comes.
$half_hello->send("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
is(curl_post('tls-while-stalled', max_time => 8), '200 1.1',
    'a client is served while two others stall their handshakes');
is(sql(q{SELECT count(*) FROM segment_events WHERE message_id = 'tls-while-stalled'}), '1', 'its event is stored');
sql(q{ALTER SYSTEM SET segment_webhook.read_timeout = '1s'});
sql('SELECT pg_reload_conf()');
ok($silent->closed_by_server(15), 'read_timeout closes a connection that never starts its handshake');
ok($half_hello->closed_by_server(15), 'read_timeout closes a connection stalled in the middle of a ClientHello');
sql(q{ALTER SYSTEM RESET segment_webhook.read_timeout});
sql('SELECT pg_reload_conf()');

# --- rotation: a new certificate on disk, pg_reload_conf(), served to the next connection ----------------------
sub served_serial
{
    my ($chain_status, $chain) = s_client('-showcerts');
    my ($pem) = $chain =~ /(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)/s;
    return 'none' unless $pem;
    my $serial = '';
    IPC::Run::run([ 'openssl', 'x509', '-noout', '-serial' ], '<', \$pem, '>', \$serial, '2>', \my $ignored);
    return $serial =~ /serial=(\w+)/ ? $1 : 'none';
}
is(served_serial(), '03E9', 'the first certificate is served');

# Relative paths name files in the data directory.
copy("$dir/second.crt", "$data/tls.crt") or die;
copy("$dir/second.key", "$data/tls.key") or die;
chmod 0600, "$data/tls.key";
my $offset = log_offset($node);
sql(q{ALTER SYSTEM SET segment_webhook.ssl_cert_file = 'tls.crt'});
sql(q{ALTER SYSTEM SET segment_webhook.ssl_key_file = 'tls.key'});
sql('SELECT pg_reload_conf()');
ok(defined wait_for_log_within($node, qr/serves TLS certificate .*serial 03EA.* to new connections/, $offset, 20),
    'after pg_reload_conf() the worker logs the new certificate');
is(served_serial(), '03EA', 'the certificate named by relative paths in the data directory is served');

# Renewal in place, the way ACME clients do it: same file names, new contents.
copy("$dir/third.crt", "$data/tls.crt") or die;
copy("$dir/third.key", "$data/tls.key") or die;
$offset = log_offset($node);
sql('SELECT pg_reload_conf()');
ok(defined wait_for_log_within($node, qr/serial 03EB/, $offset, 20), 'a certificate renewed in place is loaded');
is(served_serial(), '03EB', 'and served to the next connection');
is(curl_post('tls-after-rotation'), '200 1.1', 'curl still posts over HTTPS after the rotations');

# --- a broken certificate on reload keeps the old one, and is logged once --------------------------------------
open(my $broken, '>', "$data/tls.crt") or die;
print $broken "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n";
close $broken;
$offset = log_offset($node);
sql('SELECT pg_reload_conf()');
ok(defined wait_for_log_within($node, qr/could not load a new TLS certificate: could not load server certificate file "tls\.crt"/,
        $offset, 20),
    'a broken certificate on reload is logged');
sql('SELECT pg_reload_conf()');
sql('SELECT pg_reload_conf()');
sleep 2;    # time for the worker to handle both reloads
my $log = slurp_file($node->logfile, $offset);
my $times = () = $log =~ /could not load a new TLS certificate/g;
is($times, 1, 'the same failure is logged once, not at every reload');
like($log, qr/New connections keep getting the certificate loaded before/, 'the log says the old one stays');
is(served_serial(), '03EB', 'the previous certificate is still served');
is(curl_post('tls-broken-reload'), '200 1.1', 'and events are still accepted');

# --- a key file readable by others is refused ------------------------------------------------------------------
copy("$dir/second.crt", "$data/tls.crt") or die;    # would be served if the key were accepted
copy("$dir/second.key", "$data/tls.key") or die;
chmod 0644, "$data/tls.key";
$offset = log_offset($node);
sql('SELECT pg_reload_conf()');
ok(defined wait_for_log_within($node, qr/private key file "tls\.key" has group or world access/, $offset, 20),
    'a key file of mode 0644 is refused with a clear message');
is(served_serial(), '03EB', 'and the previous certificate stays');
chmod 0600, "$data/tls.key";
$offset = log_offset($node);
sql('SELECT pg_reload_conf()');
ok(defined wait_for_log_within($node, qr/serial 03EA/, $offset, 20), 'once the key is 0600 the reload loads it');
is(served_serial(), '03EA', 'and it is served');

# --- turning TLS off by reload needs a restart of the worker ----------------------------------------------------
$offset = log_offset($node);
sql(q{ALTER SYSTEM SET segment_webhook.ssl_cert_file = ''});
sql(q{ALTER SYSTEM SET segment_webhook.ssl_key_file = ''});
sql('SELECT pg_reload_conf()');
ok(defined wait_for_log_within($node, qr/keeps speaking HTTPS only: turning TLS off takes effect at the next start/,
        $offset, 20),
    'emptying the TLS settings by reload logs that the port stays HTTPS until the worker restarts');
is(curl_post('tls-after-off'), '200 1.1', 'the port still speaks HTTPS');
sql(q{ALTER SYSTEM SET segment_webhook.ssl_cert_file = 'tls.crt'});
sql(q{ALTER SYSTEM SET segment_webhook.ssl_key_file = 'tls.key'});
sql('SELECT pg_reload_conf()');

# --- analytics-node over HTTPS (NODE_EXTRA_CA_CERTS) -----------------------------------------------------------
SKIP:
{
    skip 'test/sdk/node_modules is not installed (cd test/sdk && npm ci)', 2
      unless -f "$sdk_dir/node_modules/\@segment/analytics-node/package.json";
    my $node_key = sql(q{SELECT segment_create_source('tls_node')});
    ok(wait_until(10, sub {
                my ($s, $o) = run_tool('curl', '-sS', '--cacert', "$dir/ca.crt", '-o', '/dev/null', '-w',
                    '%{http_code}', '-u', "$node_key:", '-H', 'Content-Type: application/json', '--data-binary',
                    '{"batch":[]}', "https://127.0.0.1:$port/v1/batch");
                $o eq '200';
            }),
        'the worker knows the analytics-node source');
    local $ENV{NODE_EXTRA_CA_CERTS} = "$dir/ca.crt";
    local $ENV{SEGMENT_WEBHOOK_SCHEME} = 'https';
    my ($node_status, $node_output) =
      run_tool('node', "$sdk_dir/analytics_node.mjs", $port, $node_key, 200);
    is($node_status, 0, 'analytics-node delivers over HTTPS without an error') or diag($node_output);
    is( sql(q{SELECT count(*) FROM segment_events e JOIN segment_sources s ON s.id = e.source_id
              WHERE s.name = 'tls_node'}),
        '206', 'its six calls and 200 bulk events are stored');
}

# --- no crash, same worker ---------------------------------------------------------------------------------------
is_deeply([ worker_pids($node) ], \@workers, 'the worker that started is still the one serving');
$log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no process was terminated by a signal');
unlike($log, qr/reinitializing/, 'the server never reinitialized');
$node->stop;

# --- a key file of mode 0644 at the start -------------------------------------------------------------------------
chmod 0644, "$dir/first.key";
my ($second, $second_port) = start_webhook_node('tls_bad_key',
    conf => "segment_webhook.ssl_cert_file = '$dir/first.crt'\n"
      . "segment_webhook.ssl_key_file = '$dir/first.key'\n");
like(slurp_file($second->logfile),
    qr/could not load its TLS certificate: private key file ".*first\.key" has group or world access/,
    'at the start, a key file of mode 0644 is refused and logged');
my $bad_key = $second->safe_psql('postgres', "SELECT segment_create_source('tls', '$secret')");
$response = post_webhook($second_port, encode_json_compact(track_message('bad-key-plain')), key => $bad_key,
    secret => $secret);
is($response && $response->{status}, 400, 'without a certificate, plain HTTP still gets 400 https_required');
$port = $second_port;
($status, $output) = s_client('-tls1_3');
isnt($status, 0, 'and TLS handshakes are refused (no certificate)');
chmod 0600, "$dir/first.key";
$offset = log_offset($second);
$second->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(defined wait_for_log_within($second, qr/serves TLS certificate .*serial 03E9/, $offset, 20),
    'a reload loads the certificate once the key file is fixed');
$key = $bad_key;
ok(wait_until(10, sub { curl_post('bad-key-fixed') =~ /^200 / }), 'and the port serves HTTPS');

# One setting alone is a mistake, not a way to turn TLS off.
$offset = log_offset($second);
$second->safe_psql('postgres', q{ALTER SYSTEM SET segment_webhook.ssl_key_file = ''});
$second->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok( defined wait_for_log_within($second,
        qr/could not load a new TLS certificate: segment_webhook\.ssl_cert_file and segment_webhook\.ssl_key_file must both be set/,
        $offset, 20),
    'a reload that leaves only ssl_cert_file set says both are needed');
is(curl_post('one-setting'), '200 1.1', 'and the port keeps serving HTTPS with the certificate it had');
unlike(slurp_file($second->logfile), qr/terminated by signal|reinitializing/, 'no crash on the second node');
$second->stop;

done_testing();
