// Incremental HTTP/1.1 request parser for the ingest worker's non-blocking epoll loop: bytes are fed as they
// arrive, split anywhere, and pipelined requests are parsed one after another from the same input.
// It must never read past the bytes it is given, never buffer more than the configured limits, never call
// into Postgres, and never accept a message whose framing is ambiguous (RFC 9112 request smuggling rules).
#pragma once

#include "core/no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace segment {

// Limits are per request. Exceeding max_header_bytes answers 431 (414 while still in the request line),
// exceeding max_body_bytes answers 413.
struct HttpParserLimits {
    size_t max_header_bytes = 16 * 1024;  // request line + header fields + line endings
    size_t max_header_count = 100;
    uint64_t max_body_bytes = 4 * 1024 * 1024;  // decoded body (chunk data only, for chunked bodies)
};

struct HttpHeader {
    std::string_view name;   // as sent; compare case-insensitively
    std::string_view value;  // optional whitespace trimmed
};

struct QueryParameter {
    std::string name;   // percent-decoded, '+' as space
    std::string value;  // percent-decoded, '+' as space
};

// ASCII case-insensitive equality (header names, Connection and Transfer-Encoding tokens).
bool equals_ignore_case(std::string_view a, std::string_view b);

// Decodes %XX escapes (and '+' as space when plus_as_space). Returns false on a malformed escape.
bool percent_decode(std::string_view in, bool plus_as_space, std::string *out);

// Splits an application/x-www-form-urlencoded query ("a=1&b=x+y") into decoded parameters, in order.
// Empty pieces ("a=1&&b=2") are skipped; a piece without '=' has an empty value. Returns false (and leaves
// out unspecified) on a malformed percent escape.
bool parse_query(std::string_view query, std::vector<QueryParameter> *out);

// One parsed request. The string_views point into a buffer the request owns, so they stay valid when the
// request is moved (std::vector's move keeps its storage) and die with it; copying is therefore disabled.
class HttpRequest {
  public:
    HttpRequest() = default;
    HttpRequest(HttpRequest &&) = default;
    HttpRequest &operator=(HttpRequest &&) = default;
    HttpRequest(const HttpRequest &) = delete;
    HttpRequest &operator=(const HttpRequest &) = delete;

    std::string_view method() const { return method_; }   // case-sensitive token, e.g. "POST"
    std::string_view target() const { return target_; }   // request-target as sent
    std::string_view path() const { return path_; }       // raw (not percent-decoded); "/" or "*" at least
    std::string_view query() const { return query_; }     // raw, without '?'; empty if none
    int version_minor() const { return version_minor_; }  // 0 for HTTP/1.0, 1 for HTTP/1.1

    const std::vector<HttpHeader> &headers() const { return headers_; }
    // First field with this name (case-insensitive), or nullopt.
    std::optional<std::string_view> header(std::string_view name) const;

    const std::vector<QueryParameter> &query_parameters() const { return query_parameters_; }
    // First decoded query parameter with this exact (case-sensitive) name, or nullopt.
    std::optional<std::string_view> query_parameter(std::string_view name) const;

    bool keep_alive() const { return keep_alive_; }
    bool expects_continue() const { return expects_continue_; }  // "Expect: 100-continue" on HTTP/1.1
    bool chunked() const { return chunked_; }
    // Declared Content-Length; for chunked bodies, the decoded size once complete.
    uint64_t content_length() const { return content_length_; }
    // Bytes of the request head as received (leading empty lines, request line, fields, final empty line).
    size_t head_bytes() const { return head_.size(); }

    const std::string &body() const { return body_; }
    std::string take_body() { return std::move(body_); }

  private:
    friend class HttpRequestParser;
    void clear();

    std::vector<char> head_;  // raw head bytes; every string_view above points in here (or at a literal)
    std::string body_;
    std::string_view method_, target_, path_, query_;
    std::vector<HttpHeader> headers_;
    std::vector<QueryParameter> query_parameters_;
    int version_minor_ = 1;
    bool keep_alive_ = false;
    bool expects_continue_ = false;
    bool chunked_ = false;
    uint64_t content_length_ = 0;
};

enum class HttpParseState {
    kNeedMore,         // every byte fed so far was consumed; feed more
    kHeadersComplete,  // head parsed and accepted, body bytes still to come; feed again to continue
    kComplete,         // request() is complete; bytes after it were not consumed
    kError,            // error_status()/error_message() are set; close the connection after answering
};

// Usage, with a per-connection input buffer `in`:
//   size_t n = parser.feed(in.data(), in.size()); in.erase(0, n);
//   kHeadersComplete: inspect request() headers; write "100 Continue" if expects_continue() and the request
//                     is wanted; feed again (even with no new bytes) to continue with the body.
//   kComplete:        take_request() (or use request() then reset()), then feed the rest of `in`.
// kHeadersComplete is reported only when body bytes remain to be read; a request without a body goes
// straight to kComplete. A request whose Content-Length exceeds the limit fails with 413 before
// kHeadersComplete, so a server never sends 100 Continue for a body it will refuse.
class HttpRequestParser {
  public:
    explicit HttpRequestParser(HttpParserLimits limits = HttpParserLimits());

    // Consumes bytes up to the end of the current phase (head, or body) and returns how many it consumed.
    // Consumes nothing in kComplete or kError.
    size_t feed(const char *data, size_t len);

    HttpParseState state() const { return state_; }
    bool headers_complete() const { return headers_complete_; }

    // Method, target, headers, query and flags are valid once headers_complete(); the body once kComplete.
    const HttpRequest &request() const { return request_; }
    // Moves the complete request out and resets the parser for the next pipelined request.
    HttpRequest take_request();
    // Forgets the current request (keeping buffer capacity) and starts on the next one. An error is sticky:
    // the connection must be closed, so reset() does not leave kError (use a new parser per connection).
    void reset();

    bool keep_alive() const { return state_ != HttpParseState::kError && request_.keep_alive_; }
    int error_status() const { return error_status_; }                 // 0 unless kError
    std::string_view error_message() const { return error_message_; }  // short, for the JSON error body

    const HttpParserLimits &limits() const { return limits_; }

  private:
    enum class Phase {
        kHead,
        kBodyPending,  // reported kHeadersComplete; the next feed() starts the body
        kFixedBody,
        kChunkSizeStart,
        kChunkSize,
        kChunkSizeSpace,
        kChunkExtension,
        kChunkSizeLf,
        kChunkData,
        kChunkDataEnd,
        kChunkDataLf,
        kTrailerLineStart,
        kTrailerName,
        kTrailerValue,
        kTrailerLineLf,
        kTrailerEndLf,
        kDone,
        kError,
    };
    struct HeaderOffsets {
        uint32_t name_begin, name_size, value_begin, value_size;
    };

    size_t feed_head(const char *data, size_t len);
    size_t feed_chunked(const char *data, size_t len);
    bool process_head_line(size_t begin, size_t end);
    bool parse_request_line(size_t begin, size_t end);
    bool parse_header_line(size_t begin, size_t end);
    bool finish_head();
    void complete();
    size_t fail(int status, const char *message, size_t consumed);

    HttpParserLimits limits_;
    HttpRequest request_;
    HttpParseState state_ = HttpParseState::kNeedMore;
    Phase phase_ = Phase::kHead;
    int error_status_ = 0;
    const char *error_message_ = "";
    bool headers_complete_ = false;

    // Head parsing: offsets, because head_ may reallocate until the head is complete.
    size_t line_begin_ = 0;
    bool have_request_line_ = false;
    uint32_t method_begin_ = 0, method_size_ = 0, target_begin_ = 0, target_size_ = 0;
    std::vector<HeaderOffsets> header_offsets_;

    // Body parsing.
    uint64_t remaining_ = 0;   // bytes left in the fixed body or the current chunk
    uint64_t chunk_size_ = 0;  // chunk size being read
    size_t chunk_line_bytes_ = 0;
    size_t trailer_bytes_ = 0;
};

}  // namespace segment
