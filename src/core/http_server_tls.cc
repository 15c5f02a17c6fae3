// The HttpServer's HTTPS side: telling a TLS client from a plain HTTP one by its first bytes, driving the
// non-blocking handshake from the poll loop, and the TLS reads and writes under read_from() and write_to().
// Every TLS call that would wait turns into epoll interest (a read may need the socket writable and a write
// may need it readable); decrypted input that OpenSSL holds is remembered in tls_buffered_, since no socket
// event will announce it. A stalled handshake holds nothing but its connection, and the read timeout closes
// it. Never blocks and never calls into Postgres.
#include "core/no_postgres.h"
#include "core/http_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

#include "core/http_server_connection.h"
#include "core/tls.h"

namespace segment {

using namespace http_server_internal;

void HttpServer::set_tls_context(std::shared_ptr<const TlsContext> context) {
    if (options_.https) {
        options_.tls_context = std::move(context);
    }
}

// Sniffing: looks at the first bytes without taking them. Returns true when a TLS handshake may begin.
bool HttpServer::sniff_first_bytes(Connection &connection) {
    unsigned char first[8];
    const ssize_t count = recv(connection.fd, first, sizeof first, MSG_PEEK);
    if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return false;  // nothing yet: epoll tells us
    }
    if (count <= 0) {
        ++counters_.tls_handshakes_failed;
        to_close_.push_back(connection.id);
        return false;
    }
    switch (classify_first_bytes(first, static_cast<size_t>(count))) {
        case FirstBytes::kTlsHandshake:
            if (!options_.tls_context) {
                // No certificate could be loaded: nothing to shake hands with.
                ++counters_.tls_handshakes_failed;
                to_close_.push_back(connection.id);
                return false;
            }
            connection.tls = std::make_unique<TlsSession>(options_.tls_context, connection.fd);
            connection.transport = Connection::Transport::Handshake;
            return true;
        case FirstBytes::kPlainHttp:
            // Answer in the client's own language, then close: the request itself is never read.
            ++counters_.plain_http_refused;
            connection.transport = Connection::Transport::Plain;
            fail(connection, 400, "https_required",
                 "this port speaks HTTPS only: send the request to https:// instead of http://");
            return false;
        case FirstBytes::kOther:
            break;
    }
    ++counters_.tls_handshakes_failed;
    to_close_.push_back(connection.id);
    return false;
}

// Called on any socket event of a connection that is not yet established. The handshake does not move the
// connection's last activity: it must complete within read_timeout of the accept, however slowly it trickles.
void HttpServer::continue_handshake(Connection &connection, int64_t now_ms) {
    if (connection.transport == Connection::Transport::Sniffing && !sniff_first_bytes(connection)) {
        return;
    }
    switch (connection.tls->handshake()) {
        case TlsStatus::kDone:
            ++counters_.tls_handshakes;
            connection.transport = Connection::Transport::Tls;
            connection.handshake_interest = 0;
            connection.last_activity_ms = now_ms;  // from here the usual read timeout for the first request
            update_interest(connection);
            read_from(connection, now_ms, false);  // a request may already have come with the handshake
            return;
        case TlsStatus::kWantRead:
            connection.handshake_interest = EPOLLIN;
            update_interest(connection);
            return;
        case TlsStatus::kWantWrite:
            connection.handshake_interest = EPOLLOUT;
            update_interest(connection);
            return;
        case TlsStatus::kClosed:
        case TlsStatus::kFailed:
            break;
    }
    ++counters_.tls_handshakes_failed;
    to_close_.push_back(connection.id);
}

// recv() for either transport: a count, 0 at the end of input, or -1 with errno (EAGAIN when TLS waits for
// the socket, whichever way; ECONNRESET for a TLS failure).
ssize_t HttpServer::receive(Connection &connection, char *buffer, size_t size) {
    if (connection.transport != Connection::Transport::Tls) {
        return recv(connection.fd, buffer, size, 0);
    }
    connection.tls_read_wants_write = false;
    size_t count = 0;
    switch (connection.tls->read(buffer, size, &count)) {
        case TlsStatus::kDone:
            return static_cast<ssize_t>(count);
        case TlsStatus::kWantWrite:
            connection.tls_read_wants_write = true;
            [[fallthrough]];
        case TlsStatus::kWantRead:
            errno = EAGAIN;
            return -1;
        case TlsStatus::kClosed:
            return 0;
        case TlsStatus::kFailed:
            break;
    }
    errno = ECONNRESET;
    return -1;
}

// send() for either transport, with the same conventions as receive().
ssize_t HttpServer::transmit(Connection &connection, const char *buffer, size_t size) {
    if (connection.transport != Connection::Transport::Tls) {
        return send(connection.fd, buffer, size, MSG_NOSIGNAL);
    }
    connection.tls_write_wants_read = false;
    size_t count = 0;
    switch (connection.tls->write(buffer, size < kTlsWriteChunk ? size : kTlsWriteChunk, &count)) {
        case TlsStatus::kDone:
            return static_cast<ssize_t>(count);
        case TlsStatus::kWantRead:
            connection.tls_write_wants_read = true;
            [[fallthrough]];
        case TlsStatus::kWantWrite:
            errno = EAGAIN;
            return -1;
        case TlsStatus::kClosed:
        case TlsStatus::kFailed:
            break;
    }
    errno = EPIPE;
    return -1;
}

// Reads the input OpenSSL already decrypted for connections that may take it (listed by update_interest()).
void HttpServer::read_buffered_tls(int64_t now_ms, size_t *handled) {
    if (tls_buffered_.empty()) {
        return;
    }
    std::vector<uint64_t> listed;
    listed.swap(tls_buffered_);
    for (uint64_t id : listed) {
        auto found = connections_.find(id);
        if (found == connections_.end()) {
            continue;
        }
        Connection &connection = *found->second;
        connection.tls_buffered_listed = false;
        if (connection.fd >= 0 && connection.transport == Connection::Transport::Tls &&
            connection.may_read()) {
            ++*handled;
            read_from(connection, now_ms, false);
        }
    }
}

}  // namespace segment
