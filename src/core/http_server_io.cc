// One connection's traffic: reading what the client sends, parsing it into requests, handing complete ones
// out, and writing the answers back in request order. A connection has at most one request out at a time;
// while it is out, or while the client leaves its answers unread, we parse nothing more and soon stop reading
// from it, so what one client can make us buffer stays bounded. Never blocks and never calls into Postgres.
#include "core/no_postgres.h"
#include "core/http_server.h"

#include <sys/socket.h>

#include <cerrno>

#include "core/http_server_connection.h"

namespace segment {
namespace {

using namespace http_server_internal;

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

void HttpServer::read_from(Connection &connection, int64_t now_ms, bool hung_up) {
    size_t total = 0;
    bool closed = false;
    auto may_read = [&connection]() { return connection.may_read(); };
    if (hung_up && connection.state != Connection::State::Closing && !may_read()) {
        // A reset (or both sides shut) on a connection we are not reading from: the answers cannot be
        // delivered, and epoll would report the hang-up on every poll until the descriptor is closed.
        to_close_.push_back(connection.id);
        return;
    }
    while (total < kReadBudget && may_read()) {
        // Read into one shared buffer and keep only what arrived: a per-connection 64 kB read buffer would
        // cost 64 MB of memory for 1,000 idle keep-alive connections.
        const ssize_t count = receive(connection, read_buffer_.data(), read_buffer_.size());
        if (count > 0) {
            connection.input.append(read_buffer_.data(), static_cast<size_t>(count));
            total += static_cast<size_t>(count);
            connection.last_activity_ms = now_ms;
            if (connection.request_started_ms < 0) {
                connection.request_started_ms = now_ms;
            }
            if (connection.state == Connection::State::Reading) {
                // Parse as it arrives, so that only what no request can take yet stays in the input buffer.
                advance(connection, now_ms);
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
        recount(connection);
        return;
    }
    if (connection.state != Connection::State::Reading) {
        // Closing: an error or hang-up means nobody is listening any more.
        if (connection.state == Connection::State::Closing) {
            char sink[4096];
            const ssize_t count = receive(connection, sink, sizeof sink);
            if (count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                to_close_.push_back(connection.id);
            }
        }
        recount(connection);
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
        if (connection.output_backlogged()) {
            // The client is not reading its answers: parse nothing more until they drain (poll() resumes).
            connection.paused = true;
            deadline_may_be(connection.last_activity_ms + options_.idle_timeout_ms);
            break;
        }
        if (connection.paused) {
            connection.paused = false;
            if (connection.request_started_ms >= 0) {
                connection.request_started_ms = now_ms;  // the wait was ours, not the client's
            }
        }
        const size_t available = connection.unparsed();
        if (available > 0 && connection.request_started_ms < 0) {
            connection.request_started_ms = now_ms;
        }
        if (connection.parser.state() == HttpParseState::kHeadersComplete && !connection.head_admitted &&
            !admit_head(connection)) {
            break;  // answered from its head; the connection is closing
        }
        const size_t consumed =
            connection.parser.feed(connection.input.data() + connection.input_offset, available);
        connection.input_offset += consumed;
        const HttpParseState state = connection.parser.state();
        if (state == HttpParseState::kHeadersComplete) {
            continue;  // admitted at the top of the loop, before any body byte is fed
        }
        if (state == HttpParseState::kComplete) {
            connection.request = connection.parser.take_request();
            connection.state = Connection::State::Dispatched;
            connection.head_admitted = false;
            connection.body_reserved = 0;
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
        if (consumed > 0 && connection.parser.headers_complete() && connection.parser.request().chunked() &&
            !admit_chunk(connection)) {
            break;  // a chunked body grew past max_buffered_bytes
        }
        if (consumed == 0) {
            break;  // kNeedMore with nothing left to feed
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
        deadline_may_be(connection.last_activity_ms + options_.read_timeout_ms);
        write_to(connection);
    }
    update_interest(connection);
    recount(connection);
}

void HttpServer::fail(Connection &connection, int status, std::string_view code, std::string_view message) {
    answer_and_close(connection, json_error_response(status, code, message, true));
}

void HttpServer::answer_and_close(Connection &connection, HttpResponse response) {
    response.close_connection = true;
    response.keep_alive = false;
    append_http_response(response, &connection.output);
    connection.state = Connection::State::Closing;
    // Nothing more is parsed on this connection: drop the request in progress and whatever followed it.
    connection.parser = HttpRequestParser(options_.parser_limits);
    connection.head_admitted = false;
    connection.body_reserved = 0;
    connection.input.clear();
    connection.input_offset = 0;
    connection.last_activity_ms = now_ms_;
    write_to(connection);
    update_interest(connection);
}

void HttpServer::respond(uint64_t id, const HttpResponse &response, int64_t now_ms) {
    now_ms_ = now_ms;
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
        forget(connection);
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
        recount(connection);
    }
    for (uint64_t closing_id : to_close_) {
        close_connection(closing_id);
    }
    to_close_.clear();
}

void HttpServer::write_to(Connection &connection) {
    while (connection.unsent() > 0) {
        const ssize_t count =
            transmit(connection, connection.output.data() + connection.output_offset, connection.unsent());
        if (count > 0) {
            connection.output_offset += static_cast<size_t>(count);
            connection.last_activity_ms = now_ms_;
            continue;
        }
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (connection.output_offset > kMaxUnsentOutput) {
                // Do not let the sent part of a backlog grow the buffer: keep only what is still unsent.
                connection.output.erase(0, connection.output_offset);
                connection.output_offset = 0;
            }
            update_interest(connection);
            recount(connection);
            return;
        }
        to_close_.push_back(connection.id);
        recount(connection);
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
        if (connection.tls) {
            connection.tls->close_notify();
        }
        shutdown(connection.fd, SHUT_WR);
        connection.input.clear();
        connection.input_offset = 0;
    }
    update_interest(connection);
    recount(connection);
}

}  // namespace segment
