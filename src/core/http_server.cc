// The ingest worker's sockets: listening, accepting, the poll loop, epoll interest and closing. One epoll
// descriptor (level-triggered) holds the listening sockets and every connection. What happens on a connection
// (reading, parsing, answering) is in http_server_io.cc; admission, accounting and timeouts in
// http_server_limits.cc; the TLS handshake and transport in http_server_tls.cc. Never blocks and never calls
// into Postgres.
#include "core/no_postgres.h"
#include "core/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "core/http_server_connection.h"

namespace segment {
namespace {

using namespace http_server_internal;

constexpr uint64_t kListenTag = uint64_t(1) << 63;  // epoll data of a listening socket: tag | index
constexpr int kEventBatch = 128;
constexpr int64_t kAcceptPauseMs = 100;
constexpr size_t kRefusedDrainBytes = 64 * 1024;

std::string describe_errno(const std::string &what) {
    return what + ": " + std::strerror(errno);
}

std::string peer_name(const sockaddr_storage &address) {
    char text[INET6_ADDRSTRLEN] = "";
    if (address.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in &>(address).sin_addr, text, sizeof text);
    } else if (address.ss_family == AF_INET6) {
        const auto &v6 = reinterpret_cast<const sockaddr_in6 &>(address);
        if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
            inet_ntop(AF_INET, &v6.sin6_addr.s6_addr[12], text, sizeof text);
        } else {
            inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
        }
    }
    return text;
}

// Answers a connection beyond max_connections 503 and closes it at once, keeping nothing for it. The request
// the client has already sent is read and dropped before the close: closing a socket with unread input sends
// a reset instead of an orderly close, and a client that gets the reset before it reads the 503 sees only
// "connection reset". Reads at most kRefusedDrainBytes, so that refusing stays cheap.
void refuse_connection(int fd) {
    static const std::string answer = [] {
        HttpResponse response = json_error_response(
            503, "too_many_connections", "the server has too many open connections; retry later", true);
        response.retry_after_seconds = 1;
        return serialize_http_response(response);
    }();
    [[maybe_unused]] ssize_t sent = send(fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    char sink[4096];
    for (size_t drained = 0; drained < kRefusedDrainBytes;) {
        const ssize_t count = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (count <= 0) {
            break;
        }
        drained += static_cast<size_t>(count);
    }
    close(fd);
}

}  // namespace

HttpServer::HttpServer(const HttpServerOptions &options) : options_(options), read_buffer_(kReadChunk) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
        throw std::runtime_error(describe_errno("epoll_create1"));
    }
    std::string failures;
    for (const std::string &name : options_.listen_addresses) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        addrinfo *results = nullptr;
        const std::string port = std::to_string(options_.port);
        const int rc = getaddrinfo(name == "*" ? nullptr : name.c_str(), port.c_str(), &hints, &results);
        if (rc != 0) {
            failures += "could not resolve \"" + name + "\": " + gai_strerror(rc) + "; ";
            continue;
        }
        for (addrinfo *address = results; address != nullptr; address = address->ai_next) {
            const std::string shown =
                peer_name(*reinterpret_cast<sockaddr_storage *>(address->ai_addr)) + ":" + port;
            if (std::find(bound_.begin(), bound_.end(), shown) != bound_.end()) {
                continue;
            }
            const int fd = socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                  address->ai_protocol);
            if (fd < 0) {
                failures += describe_errno("socket for " + shown) + "; ";
                continue;
            }
            const int on = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
            if (options_.reuse_port) {
                setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
            }
            if (address->ai_family == AF_INET6) {
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
            }
            if (bind(fd, address->ai_addr, address->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
                failures += describe_errno("could not listen on " + shown) + "; ";
                close(fd);
                continue;
            }
            epoll_event event{};
            event.events = EPOLLIN;
            event.data.u64 = kListenTag | listen_fds_.size();
            if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
                failures += describe_errno("epoll_ctl for " + shown) + "; ";
                close(fd);
                continue;
            }
            listen_fds_.push_back(fd);
            sockaddr_storage actual{};
            socklen_t actual_length = sizeof actual;
            getsockname(fd, reinterpret_cast<sockaddr *>(&actual), &actual_length);
            const uint16_t actual_port =
                ntohs(actual.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 &>(actual).sin6_port
                                                   : reinterpret_cast<sockaddr_in &>(actual).sin_port);
            port_ = actual_port;
            bound_.push_back(peer_name(actual) + ":" + std::to_string(actual_port));
        }
        freeaddrinfo(results);
    }
    if (listen_fds_.empty()) {
        close(epoll_fd_);
        throw std::runtime_error(failures.empty() ? "no address to listen on" : failures);
    }
}

HttpServer::~HttpServer() {
    for (auto &entry : connections_) {
        if (entry.second->fd >= 0) {
            close(entry.second->fd);
        }
    }
    for (int fd : listen_fds_) {
        if (fd >= 0) {
            close(fd);
        }
    }
    if (epoll_fd_ >= 0) {
        close(epoll_fd_);
    }
}

void HttpServer::pause_accepting(int64_t now_ms) {
    if (accept_paused_until_ms_ >= 0) {
        return;
    }
    accept_paused_until_ms_ = now_ms + kAcceptPauseMs;
    for (size_t i = 0; i < listen_fds_.size(); ++i) {
        if (listen_fds_[i] >= 0) {
            epoll_event event{};
            event.events = 0;
            event.data.u64 = kListenTag | i;
            epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fds_[i], &event);
        }
    }
}

void HttpServer::resume_accepting() {
    accept_paused_until_ms_ = -1;
    for (size_t i = 0; i < listen_fds_.size(); ++i) {
        if (listen_fds_[i] >= 0) {
            epoll_event event{};
            event.events = EPOLLIN;
            event.data.u64 = kListenTag | i;
            epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fds_[i], &event);
        }
    }
}

size_t HttpServer::poll(int64_t now_ms, std::vector<ReadyRequest> &ready) {
    size_t handled = 0;
    now_ms_ = now_ms;
    if (accept_paused_until_ms_ >= 0 && now_ms >= accept_paused_until_ms_) {
        resume_accepting();
    }
    epoll_event events[kEventBatch];
    for (int round = 0; round < 64; ++round) {
        const int count = epoll_wait(epoll_fd_, events, kEventBatch, 0);
        if (count <= 0) {
            break;
        }
        handled += static_cast<size_t>(count);
        for (int i = 0; i < count; ++i) {
            const uint64_t tag = events[i].data.u64;
            if (tag & kListenTag) {
                const size_t index = static_cast<size_t>(tag & ~kListenTag);
                if (index < listen_fds_.size() && listen_fds_[index] >= 0) {
                    accept_all(listen_fds_[index], now_ms);
                }
                continue;
            }
            auto found = connections_.find(tag);
            if (found == connections_.end() || found->second->fd < 0) {
                continue;
            }
            Connection &connection = *found->second;
            if (connection.transport == Connection::Transport::Sniffing ||
                connection.transport == Connection::Transport::Handshake) {
                continue_handshake(connection, now_ms);
                continue;
            }
            if ((events[i].events & EPOLLOUT) && connection.tls_read_wants_write) {
                read_from(connection, now_ms, false);
            }
            if ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && connection.tls_write_wants_read) {
                write_to(connection);
            }
            if (events[i].events & EPOLLOUT) {
                write_to(connection);
                if (connection.paused && !connection.output_backlogged()) {
                    advance(connection, now_ms);  // the client read its answers: parse what it sent since
                }
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                read_from(connection, now_ms, (events[i].events & (EPOLLHUP | EPOLLERR)) != 0);
            }
        }
        for (uint64_t id : to_close_) {
            close_connection(id);
        }
        to_close_.clear();
        if (count < kEventBatch) {
            break;
        }
    }
    read_buffered_tls(now_ms, &handled);
    expire(now_ms);
    for (uint64_t id : to_close_) {
        close_connection(id);
    }
    to_close_.clear();
    ready.insert(ready.end(), pending_ready_.begin(), pending_ready_.end());
    pending_ready_.clear();
    return handled;
}

void HttpServer::accept_all(int listen_fd, int64_t now_ms) {
    for (;;) {
        sockaddr_storage address{};
        socklen_t length = sizeof address;
        const int fd =
            accept4(listen_fd, reinterpret_cast<sockaddr *>(&address), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors or memory: the pending connection stays queued and the listening socket
                // stays readable, so stop watching it for a moment instead of spinning on it.
                pause_accepting(now_ms);
            }
            return;  // EAGAIN, or a connection that went away before we took it
        }
        if (connections_.size() >= options_.max_connections && options_.https) {
            close(fd);  // no handshake yet, so no way to say why
            continue;
        }
        if (connections_.size() >= options_.max_connections) {
            refuse_connection(fd);
            continue;
        }
        const int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        auto connection = std::make_unique<Connection>(options_.parser_limits);
        connection->id = next_id_++;
        connection->fd = fd;
        connection->peer = peer_name(address);
        connection->last_activity_ms = now_ms;
        if (options_.https) {
            connection->transport = Connection::Transport::Sniffing;
        }
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = connection->id;
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
            close(fd);
            continue;
        }
        connection->interest = EPOLLIN;
        connections_.emplace(connection->id, std::move(connection));
    }
}

void HttpServer::update_interest(Connection &connection) {
    if (connection.fd < 0) {
        return;
    }
    uint32_t wanted = 0;
    const bool may_read = connection.may_read();
    if (may_read || connection.state == Connection::State::Closing) {
        wanted |= EPOLLIN;
    }
    if (connection.unsent() > 0) {
        wanted |= EPOLLOUT;
    }
    if (connection.transport == Connection::Transport::Sniffing) {
        wanted = EPOLLIN;
    } else if (connection.transport == Connection::Transport::Handshake) {
        wanted = connection.handshake_interest;
    } else if (connection.transport == Connection::Transport::Tls) {
        // TLS may need the other direction to make progress on this one.
        if (connection.tls_read_wants_write && may_read) {
            wanted |= EPOLLOUT;
        }
        if (connection.tls_write_wants_read && connection.unsent() > 0) {
            wanted |= EPOLLIN;
        }
        if (may_read && !connection.tls_buffered_listed && connection.tls->has_buffered_input()) {
            connection.tls_buffered_listed = true;
            tls_buffered_.push_back(connection.id);
        }
    }
    if (wanted != connection.interest) {
        epoll_event event{};
        event.events = wanted;
        event.data.u64 = connection.id;
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, connection.fd, &event);
        connection.interest = wanted;
    }
}

void HttpServer::close_connection(uint64_t id) {
    auto found = connections_.find(id);
    if (found == connections_.end()) {
        return;
    }
    Connection &connection = *found->second;
    if (connection.fd >= 0) {
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, connection.fd, nullptr);
        close(connection.fd);
        connection.fd = -1;
    }
    connection.tls.reset();
    connection.transport = Connection::Transport::Plain;
    if (connection.state == Connection::State::Dispatched) {
        // The caller still holds a pointer to its request: keep the object (and count its body) until
        // respond(), but nothing else.
        connection.state = Connection::State::Dead;
        std::string().swap(connection.input);
        std::string().swap(connection.output);
        connection.input_offset = connection.output_offset = 0;
        connection.parser = HttpRequestParser(options_.parser_limits);
        connection.body_reserved = 0;
        recount(connection);
        return;
    }
    if (connection.state != Connection::State::Dead) {
        forget(connection);
        connections_.erase(found);
    }
}

void HttpServer::stop_accepting() {
    for (int &fd : listen_fds_) {
        if (fd >= 0) {
            epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
            close(fd);
            fd = -1;
        }
    }
}

bool HttpServer::has_unsent_output() const {
    for (const auto &entry : connections_) {
        if (entry.second->fd >= 0 && entry.second->unsent() > 0) {
            return true;
        }
    }
    return false;
}

}  // namespace segment
