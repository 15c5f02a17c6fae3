# Shared helpers for the TAP tests of the segment_webhook HTTP worker: a node with the library preloaded, a raw
# HTTP/1.1 client over loopback that reads complete responses (Content-Length, chunked or until close) with
# deadlines, Segment-style request signing, and bounded waits. Every wait here is bounded in time: a test that
# cannot reach the worker fails instead of hanging.
package SegmentWebhookTest;

use strict;
use warnings;

use Digest::SHA qw(hmac_sha1_hex);
use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(
  start_webhook_node wait_for_log_within worker_pids log_offset
  http_connect build_request http_request post_webhook sign_body basic_auth chunked_body
  encode_json_compact decode_json_body track_message error_code wait_until
);

# A client that writes to a socket the server has closed must get EPIPE, not die of SIGPIPE.
$SIG{PIPE} = 'IGNORE';

my $json = JSON::PP->new->canonical(1);

# JSON as JSON.stringify writes it: no whitespace, keys in a fixed order (so a body and its signature are stable).
sub encode_json_compact { return $json->encode($_[0]); }

# The decoded JSON body of a response, or undef when it is not JSON.
sub decode_json_body
{
    my ($response) = @_;
    return undef unless $response && defined $response->{body} && length $response->{body};
    my $decoded = eval { JSON::PP->new->decode($response->{body}) };
    return $decoded;
}

# The error code of a JSON error body ({"success":false,"error":{"code":…}}), or '' when there is none.
sub error_code
{
    my ($response) = @_;
    my $body = decode_json_body($response);
    return '' unless ref $body eq 'HASH' && ref $body->{error} eq 'HASH';
    return $body->{error}{code} // '';
}

# A minimal valid track call.
sub track_message
{
    my ($message_id, %fields) = @_;
    return {
        type => 'track',
        event => 'Test Event',
        userId => 'user-1',
        messageId => $message_id,
        timestamp => '2024-05-01T10:00:00.000Z',
        %fields
    };
}

sub sign_body { my ($secret, $bytes) = @_; return hmac_sha1_hex($bytes, $secret); }

sub basic_auth { my ($key) = @_; return 'Basic ' . encode_base64("$key:", ''); }

# A body in chunked transfer coding, one chunk per piece.
sub chunked_body
{
    my (@pieces) = @_;
    return join('', map { sprintf("%x\r\n%s\r\n", length $_, $_) } grep { length $_ } @pieces) . "0\r\n\r\n";
}

# Poll $condition (a code ref returning true when done) every 100 ms for at most $seconds; true if it succeeded.
sub wait_until
{
    my ($seconds, $condition) = @_;
    my $deadline = time + $seconds;
    while (1)
    {
        return 1 if $condition->();
        return 0 if time >= $deadline;
        usleep(100_000);
    }
}

sub log_offset { my ($node) = @_; return -s $node->logfile // 0; }

# Like $node->wait_for_log, but gives up after $seconds (returning undef) instead of croaking after minutes.
sub wait_for_log_within
{
    my ($node, $regexp, $offset, $seconds) = @_;
    $offset //= 0;
    my $deadline = time + ($seconds // 30);
    while (1)
    {
        my $log = slurp_file($node->logfile, $offset);
        return $offset + length($log) if $log =~ $regexp;
        return undef if time >= $deadline;
        usleep(100_000);
    }
}

# Process ids of the running segment_webhook workers, in ascending order.
sub worker_pids
{
    my ($node) = @_;
    my ($ret, $out) = $node->psql('postgres',
        q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'segment_webhook worker' ORDER BY pid});
    return () if $ret != 0;
    return grep { /^\d+$/ } split /\n/, $out;
}

# A node with the library preloaded and the worker on a free port. Options: conf (extra postgresql.conf text),
# create_extension (default 1), workers (how many "listening" lines to wait for, default 1).
# Returns ($node, $port). Fails the test file when no worker starts listening.
sub start_webhook_node
{
    my ($name, %options) = @_;
    my $port = PostgreSQL::Test::Cluster::get_free_port();
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;
    $node->append_conf('postgresql.conf',
        "shared_preload_libraries = 'segment_webhook'\n"
          . "segment_webhook.port = $port\n"
          . ($options{conf} // ''));
    $node->start;
    my $create = $options{create_extension} // 1;
    $node->safe_psql('postgres', 'CREATE EXTENSION segment_webhook') if $create;
    for my $worker (0 .. ($options{workers} // 1) - 1)
    {
        defined wait_for_log_within($node,
            qr/segment_webhook: worker $worker listening on 127\.0\.0\.1:$port\b/, 0, 30)
          or die("segment_webhook worker $worker never listened on port $port; see " . $node->logfile);
    }
    if ($create)
    {
        defined wait_for_log_within($node, qr/segment_webhook: extension found, ingesting/, 0, 30)
          or die('segment_webhook worker never started ingesting; see ' . $node->logfile);
    }
    return ($node, $port);
}

# ---------------------------------------------------------------------------------------------------------------
# The raw HTTP client. A connection keeps its own read buffer, so pipelined answers are read one after the other.

package SegmentWebhookTest::Connection;

use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use IO::Select;
use Time::HiRes qw(time);

sub new
{
    my ($class, $port, %options) = @_;
    my $socket = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto => 'tcp',
        Timeout => $options{connect_timeout} // 5);
    return undef unless $socket;
    binmode $socket;
    $socket->autoflush(1);
    return bless {
        socket => $socket,
        port => $port,
        buffer => '',
        eof => 0,
        error => '',
        timeout => $options{timeout} // 15,
    }, $class;
}

sub socket { return $_[0]{socket}; }
sub error { return $_[0]{error}; }

# Write all bytes (within the connection's timeout). False when the peer closed or reset the connection.
sub send
{
    my ($self, $bytes) = @_;
    my $deadline = time + $self->{timeout};
    my $select = IO::Select->new($self->{socket});
    my $offset = 0;
    while ($offset < length $bytes)
    {
        my $left = $deadline - time;
        if ($left <= 0) { $self->{error} = 'timed out writing'; return 0; }
        next unless $select->can_write($left);
        my $written = syswrite($self->{socket}, $bytes, length($bytes) - $offset, $offset);
        if (!defined $written)
        {
            next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
            $self->{error} = "write failed: $!";
            return 0;
        }
        $offset += $written;
    }
    return 1;
}

# Read more bytes into the buffer, waiting until $deadline. False on timeout or end of stream.
sub _fill
{
    my ($self, $deadline) = @_;
    return 0 if $self->{eof};
    my $select = IO::Select->new($self->{socket});
    while (1)
    {
        my $left = $deadline - time;
        if ($left <= 0) { $self->{error} = 'timed out reading'; return 0; }
        next unless $select->can_read($left);
        my $read = sysread($self->{socket}, my $chunk, 65536);
        if (!defined $read)
        {
            next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
            $self->{error} = "read failed: $!";
            $self->{eof} = 1;
            return 0;
        }
        if ($read == 0)
        {
            $self->{error} = 'connection closed';
            $self->{eof} = 1;
            return 0;
        }
        $self->{buffer} .= $chunk;
        return 1;
    }
}

# Read one complete response: { status, reason, version, headers => {lowercase name => value}, body, raw }.
# Interim 1xx answers are returned as responses of their own. Undef (and ->error set) when no complete
# response arrived within $timeout seconds or the connection ended first.
sub read_response
{
    my ($self, %options) = @_;
    my $deadline = time + ($options{timeout} // $self->{timeout});
    my $header_end;
    until (($header_end = index($self->{buffer}, "\r\n\r\n")) >= 0)
    {
        return undef unless $self->_fill($deadline);
    }
    my $head = substr($self->{buffer}, 0, $header_end);
    my @lines = split /\r\n/, $head;
    my $status_line = shift @lines;
    unless ($status_line =~ m{^(HTTP/\d\.\d) (\d{3})(?: (.*))?$})
    {
        $self->{error} = "malformed status line: $status_line";
        return undef;
    }
    my %response = (version => $1, status => $2 + 0, reason => $3 // '', headers => {}, header_lines => []);
    for my $line (@lines)
    {
        my ($name, $value) = $line =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{ $response{header_lines} }, [ $name, $value ];
        my $key = lc $name;
        $response{headers}{$key} =
          exists $response{headers}{$key} ? "$response{headers}{$key}, $value" : $value;
    }
    my $body_start = $header_end + 4;
    my $headers = $response{headers};

    if ($response{status} < 200 || $response{status} == 204 || $response{status} == 304)
    {
        $response{body} = '';
        $response{raw} = substr($self->{buffer}, 0, $body_start, '');
        return \%response;
    }
    if (($headers->{'transfer-encoding'} // '') =~ /chunked/i)
    {
        my $position = $body_start;
        my $body = '';
        while (1)
        {
            my $line_end;
            until (($line_end = index($self->{buffer}, "\r\n", $position)) >= 0)
            {
                return undef unless $self->_fill($deadline);
            }
            my ($size) = substr($self->{buffer}, $position, $line_end - $position) =~ /^([0-9a-fA-F]+)/;
            unless (defined $size)
            {
                $self->{error} = 'malformed chunk size';
                return undef;
            }
            $size = hex $size;
            $position = $line_end + 2;
            if ($size == 0)
            {
                # Optional trailers, then an empty line: the first CRLF CRLF from the end of the "0" line.
                my $trailer_end;
                until (($trailer_end = index($self->{buffer}, "\r\n\r\n", $position - 2)) >= 0)
                {
                    return undef unless $self->_fill($deadline);
                }
                $position = $trailer_end + 4;
                last;
            }
            while (length($self->{buffer}) < $position + $size + 2)
            {
                return undef unless $self->_fill($deadline);
            }
            $body .= substr($self->{buffer}, $position, $size);
            $position += $size + 2;
        }
        $response{body} = $body;
        $response{raw} = substr($self->{buffer}, 0, $position, '');
        return \%response;
    }
    if (defined $headers->{'content-length'})
    {
        my $length = $headers->{'content-length'} + 0;
        while (length($self->{buffer}) < $body_start + $length)
        {
            return undef unless $self->_fill($deadline);
        }
        $response{body} = substr($self->{buffer}, $body_start, $length);
        $response{raw} = substr($self->{buffer}, 0, $body_start + $length, '');
        return \%response;
    }

    # No length: the body ends when the server closes the connection.
    while ($self->_fill($deadline)) { }
    return undef unless $self->{eof};
    $response{body} = substr($self->{buffer}, $body_start);
    $response{raw} = $self->{buffer};
    $self->{buffer} = '';
    return \%response;
}

# True when the server closes the connection (end of stream or reset) within $timeout seconds without sending
# anything more; false when bytes arrive or the connection stays open.
sub closed_by_server
{
    my ($self, $timeout) = @_;
    return 0 if length $self->{buffer};
    my $deadline = time + $timeout;
    while (!$self->{eof})
    {
        my $filled = $self->_fill($deadline);
        return 0 if length $self->{buffer};
        return 0 if !$filled && !$self->{eof};    # timed out: still open
    }
    return 1;
}

# True when bytes from the server are waiting to be read right now.
sub has_pending_data
{
    my ($self) = @_;
    return 1 if length $self->{buffer};
    return IO::Select->new($self->{socket})->can_read(0) ? 1 : 0;
}

sub close
{
    my ($self) = @_;
    CORE::close($self->{socket}) if $self->{socket};
    $self->{socket} = undef;
}

package SegmentWebhookTest;

sub http_connect { my ($port, %options) = @_; return SegmentWebhookTest::Connection->new($port, %options); }

# Build the bytes of one request. Options: headers (array ref of [name, value]), body, version ('1.1'),
# host (default "127.0.0.1:PORT"; undef sends no Host header), content_length (default: the body's length,
# unless a Transfer-Encoding header is given; undef sends none), connection (a Connection header value).
sub build_request
{
    my ($port, $method, $target, %options) = @_;
    my $version = $options{version} // '1.1';
    my @headers;
    my $host = exists $options{host} ? $options{host} : "127.0.0.1:$port";
    push @headers, [ 'Host', $host ] if defined $host;
    push @headers, @{ $options{headers} // [] };
    my $body = $options{body};
    my $has_transfer_encoding = grep { lc $_->[0] eq 'transfer-encoding' } @headers;
    my $content_length =
      exists $options{content_length} ? $options{content_length}
      : (defined $body && !$has_transfer_encoding) ? length $body
      : undef;
    push @headers, [ 'Content-Length', $content_length ] if defined $content_length;
    push @headers, [ 'Connection', $options{connection} ] if defined $options{connection};
    my $request = "$method $target HTTP/$version\r\n";
    $request .= "$_->[0]: $_->[1]\r\n" for @headers;
    $request .= "\r\n";
    $request .= $body if defined $body;
    return $request;
}

# One request on a new connection (closed afterwards). Returns the response hash, or undef (a diagnostic says
# why, unless quiet) when none arrived. Options as for build_request, plus timeout (seconds) and quiet (no
# diagnostic: for polling loops, where failing attempts are expected).
sub http_request
{
    my ($port, $method, $target, %options) = @_;
    my $quiet = delete $options{quiet};
    my $connection = http_connect($port, timeout => delete $options{timeout} // 15);
    unless ($connection)
    {
        diag("cannot connect to 127.0.0.1:$port: $!") unless $quiet;
        return undef;
    }
    my $response;
    if ($connection->send(build_request($port, $method, $target, connection => 'close', %options)))
    {
        $response = $connection->read_response;
    }
    else
    {
        # The server may have answered (e.g. 413) and closed before we finished writing: read what it sent.
        $response = $connection->read_response(timeout => 2);
    }
    diag("no response to $method $target: " . $connection->error) unless $response || $quiet;
    $connection->close;
    return $response;
}

# POST a Segment body to /v1/webhook. Options:
#   key      the write key, sent as ?writeKey= unless key_in says otherwise
#   key_in   query (default), basic, bearer, or none (the key is in the body, or absent)
#   secret   sign the whole body with this shared secret (X-Signature)
#   signature  an explicit X-Signature value
#   content_type  default application/json; undef sends none
#   headers  more headers; path (default /v1/webhook); and the options of build_request.
sub post_webhook
{
    my ($port, $body, %options) = @_;
    my $key_in = $options{key_in} // 'query';
    my $target = $options{path} // '/v1/webhook';
    my @headers;
    if (defined $options{key})
    {
        if ($key_in eq 'query') { $target .= ($target =~ /\?/ ? '&' : '?') . "writeKey=$options{key}"; }
        elsif ($key_in eq 'basic') { push @headers, [ 'Authorization', basic_auth($options{key}) ]; }
        elsif ($key_in eq 'bearer') { push @headers, [ 'Authorization', "Bearer $options{key}" ]; }
    }
    my $content_type = exists $options{content_type} ? $options{content_type} : 'application/json';
    push @headers, [ 'Content-Type', $content_type ] if defined $content_type;
    my $signature = $options{signature};
    $signature = sign_body($options{secret}, $body) if !defined $signature && defined $options{secret};
    push @headers, [ 'X-Signature', $signature ] if defined $signature;
    push @headers, @{ $options{headers} // [] };
    my %request_options = %options;
    delete @request_options{qw(key key_in secret signature content_type headers path)};
    return http_request($port, 'POST', $target, %request_options, headers => \@headers, body => $body);
}

1;
