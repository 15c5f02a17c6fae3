// The ingest worker's sockets: listening, accepting, reading and parsing requests, writing answers, and the
// timeouts, all non-blocking behind one epoll descriptor that the worker's Postgres WaitEventSet watches.
// Pure C++ over the Linux socket API; never includes Postgres and never calls back into the caller: complete
// requests are handed out by poll() and answered later by respond(), after the caller's COMMIT.
#pragma once
#include "core/no_postgres.h"

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/http_request.h"
#include "core/http_response.h"

namespace segment {

struct HttpServerOptions {
    std::vector<std::string> listen_addresses;  // host names or addresses; "*" for every address
    int port = 8686;                            // 0: any free port (tests)
    bool reuse_port = false;                    // SO_REUSEPORT, so that several workers share the port
    size_t max_connections = 1024;
    HttpParserLimits parser_limits;
    int64_t read_timeout_ms = 10000;  // a started request must be complete within this (else 408)
    int64_t idle_timeout_ms = 60000;  // an idle keep-alive connection is closed after this
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

    // Limits that a configuration reload may change; they apply to requests started afterwards.
    void set_limits(size_t max_connections, const HttpParserLimits &parser_limits, int64_t read_timeout_ms,
                    int64_t idle_timeout_ms);

    // Does everything ready without blocking: accepts, reads, parses, writes, expires timeouts. Appends the
    // requests that became complete to `ready` (a connection has at most one request out at a time; pipelined
    // requests behind it wait for its answer). Protocol errors and timeouts are answered here. Returns how
    // many socket events it handled (0: nothing was ready).
    size_t poll(int64_t now_ms, std::vector<ReadyRequest> &ready);

    // Answers the request out on `connection` (a no-op if the client has gone). Keeps the connection open
    // when the request allowed it and the response does not close it.
    void respond(uint64_t connection, const HttpResponse &response, int64_t now_ms);

    // The earliest time a timeout must be handled, or -1 when there is none.
    int64_t next_deadline_ms() const;

    // Closes the listening sockets: no new connections; open ones are still served.
    void stop_accepting();

    size_t connection_count() const { return connections_.size(); }
    // Requests already complete (pipelined behind an answered one) that the next poll() hands out: the caller
    // must not sleep while this is true, since no socket event will announce them.
    bool has_ready_requests() const { return !pending_ready_.empty(); }
    // Requests handed out by poll() and not answered yet.
    size_t requests_out() const { return requests_out_; }
    // Bytes accepted for writing and not yet sent.
    bool has_unsent_output() const;

  private:
    struct Connection;

    void accept_all(int listen_fd, int64_t now_ms);
    void read_from(Connection &connection, int64_t now_ms);
    void advance(Connection &connection, int64_t now_ms);
    void write_to(Connection &connection);
    void fail(Connection &connection, int status, std::string_view code, std::string_view message);
    void close_connection(uint64_t id);
    void update_interest(Connection &connection);
    void expire(int64_t now_ms);
    void pause_accepting(int64_t now_ms);
    void resume_accepting();

    HttpServerOptions options_;
    int epoll_fd_ = -1;
    std::vector<int> listen_fds_;
    std::vector<std::string> bound_;
    std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
    std::vector<uint64_t> to_close_;
    std::vector<ReadyRequest> pending_ready_;
    std::vector<char> read_buffer_;  // made ready by respond() (pipelined), handed out by poll()
    uint64_t next_id_ = 1;
    int port_ = 0;
    int64_t accept_paused_until_ms_ = -1;  // out of descriptors: listening sockets unwatched until then
    size_t requests_out_ = 0;
};

}  // namespace segment
