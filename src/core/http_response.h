// Serializes HTTP/1.1 responses and the JSON error body every error answer of the server carries.
// It must never emit a header that could split the response (CR, LF or other control bytes in a value are
// replaced), never let the caller override framing headers, and never produce invalid JSON or UTF-8.
#pragma once

#include "core/no_postgres.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace segment {

// Written before reading the body of a request that sent "Expect: 100-continue" and is going to be accepted.
constexpr std::string_view kHttpContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";

struct HttpResponse {
    int status = 200;                               // 100..599; anything else is sent as 500
    std::string content_type = "application/json";  // empty: no Content-Type header
    std::string body;
    bool close_connection = false;  // adds "Connection: close"; the caller closes after writing
    bool keep_alive =
        false;  // adds "Connection: keep-alive" (HTTP/1.0 clients need it to keep the connection)
    std::optional<uint32_t> retry_after_seconds;
    std::string allow;  // e.g. "POST" for 405; empty: no Allow header
    std::string date;   // IMF-fixdate (format_http_date); empty: no Date header
    // Further headers, written in order. Content-Length, Transfer-Encoding and Connection are ignored here
    // (framing belongs to this module), as are names that are not valid tokens.
    std::vector<std::pair<std::string, std::string>> extra_headers;
};

// Reason phrase for a status code ("Payload Too Large" for 413); "Unknown" for codes without one.
std::string_view http_reason_phrase(int status);

// Appends the serialized response to *out (typically a connection's output buffer). Content-Length is always
// written, except for 1xx, 204 and 304 responses, which RFC 9110 says carry neither it nor a body.
void append_http_response(const HttpResponse &response, std::string *out);
std::string serialize_http_response(const HttpResponse &response);

// Length of the valid UTF-8 sequence starting at s[i] (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
// or 0 if it is not one. i < s.size().
size_t utf8_sequence_length(std::string_view s, size_t i);

// Appends s as a JSON string literal, quotes included: '"' and '\\' escaped, control characters as \u00XX,
// and bytes that are not valid UTF-8 replaced by \ufffd so the body is always valid JSON.
void append_json_string(std::string_view s, std::string *out);

// {"success":false,"error":{"code":"<code>","message":"<message>"}}
std::string json_error_body(std::string_view code, std::string_view message);

// A complete JSON error response: status, the error body, Content-Type application/json.
HttpResponse json_error_response(int status, std::string_view code, std::string_view message,
                                 bool close_connection);

// "Sun, 06 Nov 1994 08:49:37 GMT" for a Unix time in seconds (RFC 9110 5.6.7), without locale or libc time.
std::string format_http_date(int64_t unix_seconds);

}  // namespace segment
