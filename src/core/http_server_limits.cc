// What the ingest worker's HTTP server lets a client hold, and for how long: admission of a request from its
// head (the caller's head_check, then the max_buffered_bytes budget) before any body byte is read, the
// accounting of the bytes requests hold, and the read, idle and write timeouts. Never blocks and never calls
// into Postgres; head_check is the only call out, and it is exception-neutral.
#include "core/no_postgres.h"
#include "core/http_server.h"

#include <algorithm>

#include "core/http_server_connection.h"

namespace segment {

void HttpServer::set_limits(size_t max_connections, const HttpParserLimits &parser_limits,
                            int64_t read_timeout_ms, int64_t idle_timeout_ms,
                            std::optional<size_t> max_buffered_bytes,
                            std::optional<uint32_t> busy_retry_after_seconds) {
    options_.max_connections = max_connections;
    scan_due_ms_ = 0;  // the timeouts may have shortened: look at every connection on the next poll()
    options_.parser_limits = parser_limits;
    options_.read_timeout_ms = read_timeout_ms;
    options_.idle_timeout_ms = idle_timeout_ms;
    if (max_buffered_bytes) {
        options_.max_buffered_bytes = *max_buffered_bytes;
    }
    if (busy_retry_after_seconds) {
        options_.busy_retry_after_seconds = *busy_retry_after_seconds;
    }
}

void HttpServer::set_head_check(HttpHeadCheck head_check) {
    options_.head_check = std::move(head_check);
}

// Called when a request's head is complete and body bytes remain: before 100 Continue and before any body
// byte is fed to the parser. Returns false when the request was answered (and the connection is closing).
bool HttpServer::admit_head(Connection &connection) {
    if (options_.head_check) {
        std::optional<HttpResponse> answer;
        try {
            answer = options_.head_check(connection.parser.request());
        } catch (...) {
            // Leave no request half-admitted behind: answer and close this connection, then let the exception
            // go on to the caller of poll() or respond().
            fail(connection, 500, "internal_error", "the server could not check this request");
            throw;
        }
        if (answer) {
            ++counters_.refused_by_head_check;
            answer_and_close(connection, std::move(*answer));
            return false;
        }
    }
    const HttpRequest &request = connection.parser.request();
    if (!request.chunked()) {
        // The body counts in full from now on. Body bytes that came with the head are already in the input,
        // so what this request will hold is the larger of the two, not their sum.
        const uint64_t wanted = std::max<uint64_t>(request.content_length(), connection.unparsed());
        if (over_budget(connection, wanted)) {
            refuse_busy(connection);
            return false;
        }
        connection.body_reserved = request.content_length();
    }
    connection.head_admitted = true;
    if (request.expects_continue()) {
        connection.output.append(kHttpContinueResponse);
        write_to(connection);
    }
    return true;
}

// Called as a chunked body grows (its size is not known from its head). Returns false when it went past the
// budget and was answered.
bool HttpServer::admit_chunk(Connection &connection) {
    if (!over_budget(connection, connection.parser.request().body().size() + connection.unparsed())) {
        return true;
    }
    refuse_busy(connection);
    return false;
}

void HttpServer::refuse_busy(Connection &connection) {
    ++counters_.refused_busy;
    HttpResponse response = json_error_response(
        503, "server_busy",
        "the server is holding as many request bytes as it may while earlier requests are stored; retry "
        "after the Retry-After delay",
        true);
    response.retry_after_seconds = options_.busy_retry_after_seconds;
    answer_and_close(connection, std::move(response));
}

bool HttpServer::over_budget(const Connection &connection, uint64_t wanted) const {
    if (options_.max_buffered_bytes == 0) {
        return false;
    }
    const uint64_t others = request_bytes_ - connection.counted_request;
    return others + wanted > options_.max_buffered_bytes;
}

// Brings the server's totals up to date with what `connection` holds now. Totals are sums of what each
// connection last reported, so an update missed on one path (an exception) is corrected by the next one.
void HttpServer::recount(Connection &connection) {
    size_t request = connection.unparsed() + connection.request.body().size();
    request += static_cast<size_t>(
        std::max<uint64_t>(connection.body_reserved, connection.parser.request().body().size()));
    const size_t output = connection.unsent();
    request_bytes_ = request_bytes_ - connection.counted_request + request;
    output_bytes_ = output_bytes_ - connection.counted_output + output;
    connection.counted_request = request;
    connection.counted_output = output;
}

// Takes a connection about to be destroyed out of the totals.
void HttpServer::forget(Connection &connection) {
    request_bytes_ -= connection.counted_request;
    output_bytes_ -= connection.counted_output;
    connection.counted_request = connection.counted_output = 0;
}

// When `connection` must be acted on: the timeout of the state it is in, or -1 for none.
int64_t HttpServer::deadline_of(const Connection &connection) const {
    if (connection.fd < 0) {
        return -1;
    }
    if (connection.state == Connection::State::Reading) {
        if (connection.paused) {
            // Waiting for the client to read its answers: it must take some within the idle timeout.
            return connection.last_activity_ms + options_.idle_timeout_ms;
        }
        if (connection.request_started_ms >= 0) {
            return connection.request_started_ms + options_.read_timeout_ms;
        }
        return connection.last_activity_ms +
               (connection.served_one ? options_.idle_timeout_ms : options_.read_timeout_ms);
    }
    if (connection.state == Connection::State::Closing) {
        return connection.last_activity_ms + options_.read_timeout_ms;
    }
    return -1;
}

// Lowers the time before which no scan is needed, for a state change whose timeout counts from an earlier
// time than now (see scan_due_ms_).
void HttpServer::deadline_may_be(int64_t when) {
    scan_due_ms_ = std::min(scan_due_ms_, when);
}

// Walks every connection only when one may be due: with 10,000 idle connections, a walk on every loop turn
// was most of the worker's CPU time under a flood of slow clients (bench/README.md, Floods).
void HttpServer::expire(int64_t now_ms) {
    if (now_ms < scan_due_ms_) {
        return;
    }
    ++counters_.deadline_scans;
    // Every timeout set from now on counts from now: none can fall due before this.
    int64_t earliest = now_ms + std::min(options_.read_timeout_ms, options_.idle_timeout_ms);
    for (auto &entry : connections_) {
        Connection &connection = *entry.second;
        int64_t deadline = deadline_of(connection);
        if (deadline >= 0 && now_ms >= deadline) {
            if (connection.state == Connection::State::Reading && !connection.paused &&
                connection.request_started_ms >= 0) {
                fail(connection, 408, "request_timeout", "the request did not arrive in time");
                deadline = deadline_of(connection);  // closing now, within read_timeout
            } else {
                to_close_.push_back(connection.id);
                continue;
            }
        }
        if (deadline >= 0) {
            earliest = std::min(earliest, deadline);
        }
    }
    scan_due_ms_ = earliest;
}

int64_t HttpServer::next_deadline_ms() const {
    int64_t deadline = connections_.empty() ? -1 : scan_due_ms_;
    if (accept_paused_until_ms_ >= 0 && (deadline < 0 || accept_paused_until_ms_ < deadline)) {
        deadline = accept_paused_until_ms_;
    }
    return deadline;
}

}  // namespace segment
