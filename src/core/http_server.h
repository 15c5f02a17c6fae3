// The ingest worker's sockets: listening, accepting, reading and parsing requests, writing answers, and the
// timeouts, all non-blocking behind one epoll descriptor that the worker's Postgres WaitEventSet watches.
// Pure C++ over the Linux socket API; never includes Postgres and never calls back into the caller: complete
// requests are handed out by poll() and answered later by respond(), after the caller's COMMIT. The one
// exception is head_check, which the caller installs to refuse a request from its head before its body is
// read. It bounds what it holds: per connection (a client that does not read its answers is not read from
// either) and across connections (max_buffered_bytes). Implemented in http_server.cc (sockets and the poll
// loop), http_server_io.cc (reading, parsing, answering) and http_server_limits.cc (admission, accounting,
// timeouts). With HTTPS on (options.https), every connection starts with a TLS handshake driven by the same
// loop (http_server_tls.cc); a server without it behaves as if TLS did not exist.
#pragma once
#include "core/no_postgres.h"

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/http_request.h"
#include "core/http_response.h"

namespace segment {

class TlsContext;

// Decides from a request's head alone whether to answer it before reading its body (see head_check).
using HttpHeadCheck = std::function<std::optional<HttpResponse>(const HttpRequest &)>;

struct HttpServerOptions {
    std::vector<std::string> listen_addresses;  // host names or addresses; "*" for every address
    int port = 8686;                            // 0: any free port (tests)
    bool reuse_port = false;                    // SO_REUSEPORT, so that several workers share the port
    size_t max_connections = 1024;
    HttpParserLimits parser_limits;
    int64_t read_timeout_ms = 10000;  // a started request must be complete within this (else 408)
    int64_t idle_timeout_ms = 60000;  // an idle keep-alive connection is closed after this
    // Bytes that requests not yet answered may hold across all connections: unparsed input, bodies being
    // received (a Content-Length body counts in full from its head on) and bodies handed out by poll() and
    // not yet answered. A request whose body would go past it is answered 503 server_busy (Retry-After,
    // Connection: close) from its head, before its body is read; a chunked body, as soon as it grows past it.
    // Requests already accepted are unaffected. 0: no limit.
    size_t max_buffered_bytes = 256 * 1024 * 1024;
    uint32_t busy_retry_after_seconds = 1;  // Retry-After of that 503
    // Called once for each request that has a body, as soon as its head is complete: before 100 Continue is
    // sent and before any body byte is read. A response it returns is sent at once with Connection: close,
    // the body is not read, and the request is never handed out by poll(). nullopt lets the request go on.
    // Empty: every head goes on. Should it throw, the connection is answered 500 and closed, and the
    // exception leaves poll() (or respond()) with the server in a consistent state.
    HttpHeadCheck head_check;
    // HTTPS only: every connection must begin with a TLS handshake, which must complete within
    // read_timeout_ms of the connection's accept. A plain HTTP request is answered 400 https_required (in
    // plain HTTP) and closed; anything else is closed. tls_context may be empty (its certificate could not
    // be loaded): handshakes are then refused until set_tls_context() gives one. Fixed for the server's life.
    bool https = false;
    std::shared_ptr<const TlsContext> tls_context;
};

// Requests the server answered itself before reading their body.
struct HttpServerCounters {
    uint64_t refused_by_head_check = 0;
    uint64_t refused_busy = 0;           // 503 server_busy (max_buffered_bytes)
    uint64_t tls_handshakes = 0;         // completed (HTTPS only)
    uint64_t tls_handshakes_failed = 0;  // refused, failed or closed by the client before completion
    uint64_t plain_http_refused = 0;     // plain HTTP requests on the HTTPS port (400 https_required)
    uint64_t deadline_scans = 0;         // walks over every connection for its timeout
};

// A complete request waiting for its answer. The request stays owned by the server until respond().
struct ReadyRequest {
    uint64_t connection;
    const HttpRequest *request;
    int64_t received_ms;    // when its first byte arrived
    std::string_view peer;  // the client's address, e.g. "127.0.0.1"
};

class HttpServer {
  public:
    // Binds and listens on every address; throws std::runtime_error saying which address failed and why.
    explicit HttpServer(const HttpServerOptions &options);
    ~HttpServer();
    HttpServer(const HttpServer &) = delete;
    HttpServer &operator=(const HttpServer &) = delete;

    // Readable when any socket has something to do; the caller waits on it, then calls poll().
    int epoll_fd() const { return epoll_fd_; }
    // "127.0.0.1:8686", … as bound.
    const std::vector<std::string> &bound_addresses() const { return bound_; }
    // The port listened on (the one the kernel chose when options.port was 0).
    int port() const { return port_; }

    // Limits that a configuration reload may change; they apply to requests started afterwards. The limits
    // left out (nullopt) keep their value.
    void set_limits(size_t max_connections, const HttpParserLimits &parser_limits, int64_t read_timeout_ms,
                    int64_t idle_timeout_ms, std::optional<size_t> max_buffered_bytes = std::nullopt,
                    std::optional<uint32_t> busy_retry_after_seconds = std::nullopt);
    // The certificate and key for connections accepted from now on (HTTPS only; ignored otherwise).
    // Connections already open keep theirs.
    void set_tls_context(std::shared_ptr<const TlsContext> context);
    bool https() const { return options_.https; }

    // Replaces options.head_check (e.g. when the caller's source directory changes); empty removes it.
    void set_head_check(HttpHeadCheck head_check);

    // Does everything ready without blocking: accepts, reads, parses, writes, expires timeouts. Appends the
    // requests that became complete to `ready` (a connection has at most one request out at a time; pipelined
    // requests behind it wait for its answer). Protocol errors and timeouts are answered here. Returns how
    // many socket events it handled (0: nothing was ready).
    size_t poll(int64_t now_ms, std::vector<ReadyRequest> &ready);

    // Answers the request out on `connection` (a no-op if the client has gone). Keeps the connection open
    // when the request allowed it and the response does not close it.
    void respond(uint64_t connection, const HttpResponse &response, int64_t now_ms);

    // When poll() must be called at the latest for the timeouts (never later than the first one is due, but
    // possibly earlier), or -1 when there is none. O(1).
    int64_t next_deadline_ms() const;

    // Closes the listening sockets: no new connections; open ones are still served.
    void stop_accepting();

    size_t connection_count() const { return connections_.size(); }
    // Requests already complete (pipelined behind an answered one) that the next poll() hands out: the caller
    // must not sleep while this is true, since no socket event will announce them.
    // Over TLS, also true while decrypted input waits in a connection's TLS session.
    bool has_ready_requests() const { return !pending_ready_.empty() || !tls_buffered_.empty(); }
    // Requests handed out by poll() and not answered yet.
    size_t requests_out() const { return requests_out_; }
    // Bytes accepted for writing and not yet sent.
    bool has_unsent_output() const;
    // Bytes held for requests not yet answered: what max_buffered_bytes caps (see there).
    size_t request_bytes() const { return request_bytes_; }
    // Everything the connections buffer: request_bytes() plus answers not yet sent.
    size_t buffered_bytes() const { return request_bytes_ + output_bytes_; }
    const HttpServerCounters &counters() const { return counters_; }

  private:
    struct Connection;

    void accept_all(int listen_fd, int64_t now_ms);
    void read_from(Connection &connection, int64_t now_ms, bool hung_up);
    ssize_t receive(Connection &connection, char *buffer, size_t size);
    ssize_t transmit(Connection &connection, const char *buffer, size_t size);
    void continue_handshake(Connection &connection, int64_t now_ms);
    bool sniff_first_bytes(Connection &connection);
    void read_buffered_tls(int64_t now_ms, size_t *handled);
    void advance(Connection &connection, int64_t now_ms);
    bool admit_head(Connection &connection);
    bool admit_chunk(Connection &connection);
    void refuse_busy(Connection &connection);
    bool over_budget(const Connection &connection, uint64_t wanted) const;
    void write_to(Connection &connection);
    void fail(Connection &connection, int status, std::string_view code, std::string_view message);
    void answer_and_close(Connection &connection, HttpResponse response);
    void recount(Connection &connection);
    void forget(Connection &connection);
    void close_connection(uint64_t id);
    void update_interest(Connection &connection);
    void expire(int64_t now_ms);
    int64_t deadline_of(const Connection &connection) const;
    void deadline_may_be(int64_t when);
    void pause_accepting(int64_t now_ms);
    void resume_accepting();

    HttpServerOptions options_;
    int epoll_fd_ = -1;
    std::vector<int> listen_fds_;
    std::vector<std::string> bound_;
    std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
    std::vector<uint64_t> to_close_;
    std::vector<ReadyRequest> pending_ready_;  // made ready by respond() (pipelined), handed out by poll()
    std::vector<uint64_t> tls_buffered_;       // connections whose TLS session holds input no event announces
    std::vector<char> read_buffer_;            // one for all connections: recv() lands here first
    uint64_t next_id_ = 1;
    int port_ = 0;
    int64_t accept_paused_until_ms_ = -1;  // out of descriptors: listening sockets unwatched until then
    size_t requests_out_ = 0;
    size_t request_bytes_ = 0;  // sum of every connection's counted_request
    size_t output_bytes_ = 0;   // sum of every connection's counted_output
    int64_t now_ms_ = 0;        // the time given to the last poll() or respond()
    // No connection can be due before this, so expire() need not look at them before. Set by each scan to the
    // earliest deadline it saw, or sooner: now + the shorter of read_timeout and idle_timeout, since every
    // timeout counts from the time it is set. The two state changes whose timeout counts from an earlier time
    // (an output backlog pauses a connection; a hang-up closes it) lower it with deadline_may_be().
    int64_t scan_due_ms_ = 0;
    HttpServerCounters counters_;
};

}  // namespace segment
