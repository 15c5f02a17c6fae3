// Non-blocking HTTP/1.1 connection handling for the ingest worker. One epoll descriptor (level-triggered)
// holds the listening sockets and every connection. A connection has at most one request out at a time, so
// answers go back in request order even when the client pipelines; while a request is out we stop reading
// from that connection, which also bounds what a fast sender can make us buffer.
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

namespace segment {
namespace {

constexpr uint64_t kListenTag = uint64_t(1) << 63;  // epoll data of a listening socket: tag | index
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kReadBudget = 1024 * 1024;  // per connection per poll, so one sender cannot starve the rest
constexpr int kEventBatch = 128;
constexpr size_t kKeptBufferBytes = 16 * 1024;
constexpr int64_t kAcceptPauseMs = 100;
// While a request is out, what else the client sends is buffered (unparsed) up to this much; only past it do
// we stop watching the socket. Watching it all along spares two epoll_ctl calls per request.
constexpr size_t kBufferedWhileDispatched = 64 * 1024;

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

std::string_view error_code_for(int status) {
    switch (status) {
        case 408:
            return "request_timeout";
        case 413:
            return "request_too_large";
        case 414:
            return "uri_too_long";
        case 431:
            return "headers_too_large";
        case 501:
            return "not_implemented";
        case 505:
            return "http_version_not_supported";
        default:
            return "bad_request";
    }
}

}  // namespace

struct HttpServer::Connection {
    enum class State { Reading, Dispatched, Closing, Dead };

    explicit Connection(const HttpParserLimits &limits) : parser(limits) {}

    uint64_t id = 0;
    int fd = -1;
    std::string peer;
    State state = State::Reading;
    HttpRequestParser parser;
    HttpRequest request;  // the request out, while Dispatched
    std::string input;
    size_t input_offset = 0;
    std::string output;
    size_t output_offset = 0;
    bool continue_sent = false;
    bool peer_closed = false;  // the client shut down its side (it may still read our answers)
    bool served_one =
        false;  // a keep-alive connection between requests waits idle_timeout, a new one read_timeout
    int64_t request_started_ms = -1;
    int64_t last_activity_ms = 0;
    uint32_t interest = 0;
};

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

void HttpServer::set_limits(size_t max_connections, const HttpParserLimits &parser_limits,
                            int64_t read_timeout_ms, int64_t idle_timeout_ms) {
    options_.max_connections = max_connections;
    options_.parser_limits = parser_limits;
    options_.read_timeout_ms = read_timeout_ms;
    options_.idle_timeout_ms = idle_timeout_ms;
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
            if (events[i].events & EPOLLOUT) {
                write_to(connection);
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                read_from(connection, now_ms);
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
        if (connections_.size() >= options_.max_connections) {
            HttpResponse response = json_error_response(
                503, "too_many_connections", "the server has too many open connections; retry later", true);
            response.retry_after_seconds = 1;
            const std::string bytes = serialize_http_response(response);
            [[maybe_unused]] ssize_t sent = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        const int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        auto connection = std::make_unique<Connection>(options_.parser_limits);
        connection->id = next_id_++;
        connection->fd = fd;
        connection->peer = peer_name(address);
        connection->last_activity_ms = now_ms;
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

void HttpServer::read_from(Connection &connection, int64_t now_ms) {
    size_t total = 0;
    bool closed = false;
    auto may_read = [&connection]() {
        return connection.state == Connection::State::Reading ||
               (connection.state == Connection::State::Dispatched && !connection.peer_closed &&
                connection.input.size() - connection.input_offset < kBufferedWhileDispatched);
    };
    while (total < kReadBudget && may_read()) {
        // Read into one shared buffer and keep only what arrived: a per-connection 64 kB read buffer would
        // cost 64 MB of memory for 1,000 idle keep-alive connections.
        const ssize_t count = recv(connection.fd, read_buffer_.data(), read_buffer_.size(), 0);
        if (count > 0) {
            connection.input.append(read_buffer_.data(), static_cast<size_t>(count));
            total += static_cast<size_t>(count);
            connection.last_activity_ms = now_ms;
            if (connection.request_started_ms < 0) {
                connection.request_started_ms = now_ms;
            }
            continue;
        }
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            closed = true;
        }
        break;
    }
    if (connection.state == Connection::State::Dispatched) {
        if (closed) {
            // End of input: the answer may still be read (half-close); stop watching for more input.
            connection.peer_closed = true;
        }
        update_interest(connection);
        return;
    }
    if (connection.state != Connection::State::Reading) {
        // Closing: an error or hang-up means nobody is listening any more.
        if (connection.state == Connection::State::Closing) {
            char sink[4096];
            const ssize_t count = recv(connection.fd, sink, sizeof sink, 0);
            if (count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                to_close_.push_back(connection.id);
            }
        }
        return;
    }
    if (closed) {
        connection.peer_closed = true;
    }
    advance(connection, now_ms);
    if (closed && connection.state == Connection::State::Reading) {
        to_close_.push_back(connection.id);
    }
}

void HttpServer::advance(Connection &connection, int64_t now_ms) {
    while (connection.state == Connection::State::Reading) {
        const size_t available = connection.input.size() - connection.input_offset;
        if (available > 0 && connection.request_started_ms < 0) {
            connection.request_started_ms = now_ms;
        }
        const size_t consumed =
            connection.parser.feed(connection.input.data() + connection.input_offset, available);
        connection.input_offset += consumed;
        const HttpParseState state = connection.parser.state();
        if (state == HttpParseState::kHeadersComplete) {
            if (connection.parser.request().expects_continue() && !connection.continue_sent) {
                connection.output.append(kHttpContinueResponse);
                connection.continue_sent = true;
                write_to(connection);
            }
            continue;
        }
        if (state == HttpParseState::kComplete) {
            connection.request = connection.parser.take_request();
            connection.state = Connection::State::Dispatched;
            connection.continue_sent = false;
            ++requests_out_;
            pending_ready_.push_back(
                {connection.id, &connection.request, connection.request_started_ms, connection.peer});
            connection.request_started_ms = -1;
            break;
        }
        if (state == HttpParseState::kError) {
            fail(connection, connection.parser.error_status(),
                 error_code_for(connection.parser.error_status()), connection.parser.error_message());
            break;
        }
        if (connection.input_offset == connection.input.size() && consumed == 0) {
            break;  // kNeedMore with nothing left to feed
        }
        if (consumed == 0) {
            break;
        }
    }
    // Keep the unread tail (pipelined requests, or a partial one) at the front of the buffer.
    if (connection.input_offset == connection.input.size()) {
        if (connection.input.capacity() > kKeptBufferBytes) {
            std::string().swap(connection.input);  // do not keep a large body's buffer for an idle connection
        } else {
            connection.input.clear();
        }
        connection.input_offset = 0;
    } else if (connection.input_offset > 64 * 1024) {
        connection.input.erase(0, connection.input_offset);
        connection.input_offset = 0;
    }
    if (connection.state == Connection::State::Reading && connection.peer_closed &&
        connection.input_offset == connection.input.size()) {
        // The client sent its last request and hung up its side: close once the answers are out.
        connection.state = Connection::State::Closing;
        write_to(connection);
    }
    update_interest(connection);
}

void HttpServer::fail(Connection &connection, int status, std::string_view code, std::string_view message) {
    HttpResponse response = json_error_response(status, code, message, true);
    append_http_response(response, &connection.output);
    connection.state = Connection::State::Closing;
    write_to(connection);
    update_interest(connection);
}

void HttpServer::respond(uint64_t id, const HttpResponse &response, int64_t now_ms) {
    auto found = connections_.find(id);
    if (found == connections_.end()) {
        return;
    }
    Connection &connection = *found->second;
    if (connection.state != Connection::State::Dispatched && connection.state != Connection::State::Dead) {
        return;
    }
    --requests_out_;
    if (connection.state == Connection::State::Dead) {
        connections_.erase(found);
        return;
    }
    const bool keep_open = connection.request.keep_alive() && !response.close_connection;
    const bool http10 = connection.request.version_minor() == 0;
    if (keep_open == !response.close_connection && !(keep_open && http10)) {
        append_http_response(response, &connection.output);
    } else {
        HttpResponse adjusted = response;
        adjusted.close_connection = !keep_open;
        adjusted.keep_alive = keep_open && http10;
        append_http_response(adjusted, &connection.output);
    }
    connection.request = HttpRequest();
    connection.last_activity_ms = now_ms;
    connection.served_one = true;
    connection.state = keep_open ? Connection::State::Reading : Connection::State::Closing;
    write_to(connection);
    if (connection.state == Connection::State::Reading) {
        advance(connection, now_ms);  // a pipelined request may already be waiting in the buffer
    } else {
        update_interest(connection);
    }
    for (uint64_t closing_id : to_close_) {
        close_connection(closing_id);
    }
    to_close_.clear();
}

void HttpServer::write_to(Connection &connection) {
    while (connection.output_offset < connection.output.size()) {
        const ssize_t count = send(connection.fd, connection.output.data() + connection.output_offset,
                                   connection.output.size() - connection.output_offset, MSG_NOSIGNAL);
        if (count > 0) {
            connection.output_offset += static_cast<size_t>(count);
            continue;
        }
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            update_interest(connection);
            return;
        }
        to_close_.push_back(connection.id);
        return;
    }
    if (connection.output.capacity() > kKeptBufferBytes) {
        std::string().swap(connection.output);
    } else {
        connection.output.clear();
    }
    connection.output_offset = 0;
    if (connection.state == Connection::State::Closing) {
        // Let the client read the answer before the close: stop sending, then close once it hangs up or the
        // timeout passes (closing at once with unread input could turn into a reset that eats the answer).
        shutdown(connection.fd, SHUT_WR);
        connection.input.clear();
        connection.input_offset = 0;
    }
    update_interest(connection);
}

void HttpServer::update_interest(Connection &connection) {
    if (connection.fd < 0) {
        return;
    }
    uint32_t wanted = 0;
    if (connection.state == Connection::State::Reading || connection.state == Connection::State::Closing ||
        (connection.state == Connection::State::Dispatched && !connection.peer_closed &&
         connection.input.size() - connection.input_offset < kBufferedWhileDispatched)) {
        wanted |= EPOLLIN;
    }
    if (connection.output_offset < connection.output.size()) {
        wanted |= EPOLLOUT;
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
    if (connection.state == Connection::State::Dispatched) {
        // The caller still holds a pointer to its request: keep the object until respond().
        connection.state = Connection::State::Dead;
        return;
    }
    if (connection.state != Connection::State::Dead) {
        connections_.erase(found);
    }
}

void HttpServer::expire(int64_t now_ms) {
    for (auto &entry : connections_) {
        Connection &connection = *entry.second;
        if (connection.fd < 0) {
            continue;
        }
        switch (connection.state) {
            case Connection::State::Reading:
                if (connection.request_started_ms >= 0 &&
                    now_ms >= connection.request_started_ms + options_.read_timeout_ms) {
                    fail(connection, 408, "request_timeout", "the request did not arrive in time");
                } else if (connection.request_started_ms < 0 &&
                           now_ms >= connection.last_activity_ms + (connection.served_one
                                                                        ? options_.idle_timeout_ms
                                                                        : options_.read_timeout_ms)) {
                    to_close_.push_back(connection.id);
                }
                break;
            case Connection::State::Closing:
                if (now_ms >= connection.last_activity_ms + options_.read_timeout_ms) {
                    to_close_.push_back(connection.id);
                }
                break;
            default:
                break;
        }
    }
}

int64_t HttpServer::next_deadline_ms() const {
    int64_t deadline = -1;
    auto consider = [&deadline](int64_t when) {
        if (deadline < 0 || when < deadline) {
            deadline = when;
        }
    };
    if (accept_paused_until_ms_ >= 0) {
        consider(accept_paused_until_ms_);
    }
    for (const auto &entry : connections_) {
        const Connection &connection = *entry.second;
        if (connection.fd < 0) {
            continue;
        }
        if (connection.state == Connection::State::Reading) {
            if (connection.request_started_ms >= 0) {
                consider(connection.request_started_ms + options_.read_timeout_ms);
            } else {
                consider(connection.last_activity_ms +
                         (connection.served_one ? options_.idle_timeout_ms : options_.read_timeout_ms));
            }
        } else if (connection.state == Connection::State::Closing) {
            consider(connection.last_activity_ms + options_.read_timeout_ms);
        }
    }
    return deadline;
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
        if (entry.second->fd >= 0 && entry.second->output_offset < entry.second->output.size()) {
            return true;
        }
    }
    return false;
}

}  // namespace segment
