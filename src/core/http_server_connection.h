// Internal to the HttpServer implementation (http_server*.cc): one client connection's state and the
// constants that bound what it buffers. Not part of the server's interface; nothing else may include it.
#pragma once
#include "core/no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/http_request.h"
#include "core/http_server.h"
#include "core/tls.h"

namespace segment {
namespace http_server_internal {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kReadBudget = 1024 * 1024;  // per connection per poll, so one sender cannot starve the rest
constexpr size_t kKeptBufferBytes = 16 * 1024;
// While a request is out, what else the client sends is buffered (unparsed) up to this much; only past it do
// we stop watching the socket. Watching it all along spares two epoll_ctl calls per request.
constexpr size_t kBufferedWhileDispatched = 64 * 1024;
// Answers not yet taken by the client, past which we parse no further pipelined request and stop reading
// from it until they drain: a client that pipelines and never reads cannot make us buffer without bound.
constexpr size_t kMaxUnsentOutput = 64 * 1024;
// Largest piece handed to one TLS write (one record): a write retried after WANT_WRITE must offer at least
// the bytes of the first try, which a bounded piece of a buffer that only grows at its end always does.
constexpr size_t kTlsWriteChunk = 16 * 1024;

}  // namespace http_server_internal

struct HttpServer::Connection {
    enum class State { Reading, Dispatched, Closing, Dead };
    // How bytes travel: in the clear, or (HTTPS) first bytes awaited, TLS handshake, TLS established.
    enum class Transport { Plain, Sniffing, Handshake, Tls };

    explicit Connection(const HttpParserLimits &limits) : parser(limits) {}

    size_t unparsed() const { return input.size() - input_offset; }
    size_t unsent() const { return output.size() - output_offset; }
    bool output_backlogged() const { return unsent() > http_server_internal::kMaxUnsentOutput; }
    // Whether we take more input now (see read_from).
    bool may_read() const {
        return (state == State::Reading && !output_backlogged()) ||
               (state == State::Dispatched && !peer_closed &&
                unparsed() < http_server_internal::kBufferedWhileDispatched);
    }

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
    bool head_admitted = false;  // the head of the request being parsed passed head_check and the budget
    uint64_t body_reserved = 0;  // its Content-Length, counted against max_buffered_bytes from its head on
    bool paused = false;         // parsing stopped because the output is backlogged
    bool peer_closed = false;    // the client shut down its side (it may still read our answers)
    bool served_one =
        false;  // a keep-alive connection between requests waits idle_timeout, a new one read_timeout
    int64_t request_started_ms = -1;
    int64_t last_activity_ms = 0;  // last byte received, answer queued, or answer byte sent
    uint32_t interest = 0;
    size_t counted_request = 0;  // this connection's share of HttpServer::request_bytes_
    size_t counted_output = 0;   // and of output_bytes_
    Transport transport = Transport::Plain;
    std::unique_ptr<TlsSession> tls;  // from the first TLS byte on
    uint32_t handshake_interest = 0;  // the socket event the handshake waits for
    bool tls_read_wants_write = false;
    bool tls_write_wants_read = false;
    bool tls_buffered_listed = false;  // in HttpServer::tls_buffered_
};

}  // namespace segment
