// GoogleTest tests for the response builder and the JSON error body: exact bytes on the wire, escaping, and
// the refusal to emit header injections. They must never depend on timing or on anything outside src/core.
#include "core/no_postgres.h"

#include "core/http_response.h"

#include <string>

#include <gtest/gtest.h>

namespace segment {
namespace {

TEST(HttpResponse, SerializesStatusHeadersAndBody) {
    HttpResponse response;
    response.status = 200;
    response.body = R"({"success":true})";
    EXPECT_EQ(serialize_http_response(response),
              "HTTP/1.1 200 OK\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 16\r\n"
              "\r\n"
              "{\"success\":true}");
}

TEST(HttpResponse, CloseRetryAfterAllowDateAndExtraHeaders) {
    HttpResponse response;
    response.status = 503;
    response.content_type = "text/plain";
    response.body = "busy";
    response.close_connection = true;
    response.retry_after_seconds = 5;
    response.allow = "POST";
    response.date = "Sun, 06 Nov 1994 08:49:37 GMT";
    response.extra_headers = {{"X-Request-Id", "r1"}, {"Content-Length", "999"}, {"Bad Name", "v"}};
    EXPECT_EQ(serialize_http_response(response),
              "HTTP/1.1 503 Service Unavailable\r\n"
              "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
              "Content-Type: text/plain\r\n"
              "Content-Length: 4\r\n"
              "Connection: close\r\n"
              "Retry-After: 5\r\n"
              "Allow: POST\r\n"
              "X-Request-Id: r1\r\n"
              "\r\n"
              "busy");
}

TEST(HttpResponse, EmptyBodyStillHasContentLength) {
    HttpResponse response;
    response.status = 405;
    response.content_type.clear();
    response.allow = "POST";
    EXPECT_EQ(serialize_http_response(response),
              "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nAllow: POST\r\n\r\n");
}

TEST(HttpResponse, NoContentHasNoBodyOrLength) {
    HttpResponse response;
    response.status = 204;
    response.body = "ignored";
    EXPECT_EQ(serialize_http_response(response), "HTTP/1.1 204 No Content\r\n\r\n");
}

TEST(HttpResponse, HeaderValuesCannotInjectHeaders) {
    HttpResponse response;
    response.content_type.clear();
    response.extra_headers = {{"X-Echo", "a\r\nSet-Cookie: x=1"}};
    EXPECT_EQ(serialize_http_response(response),
              "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Echo: a  Set-Cookie: x=1\r\n\r\n");
}

TEST(HttpResponse, AppendsToAnExistingBuffer) {
    std::string out = "previous";
    HttpResponse response;
    response.status = 202;
    response.content_type.clear();
    append_http_response(response, &out);
    EXPECT_EQ(out, "previousHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpResponse, InvalidStatusIsSentAs500) {
    HttpResponse response;
    response.status = 42;
    response.content_type.clear();
    EXPECT_EQ(serialize_http_response(response),
              "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpResponse, ReasonPhrases) {
    EXPECT_EQ(http_reason_phrase(400), "Bad Request");
    EXPECT_EQ(http_reason_phrase(413), "Payload Too Large");
    EXPECT_EQ(http_reason_phrase(431), "Request Header Fields Too Large");
    EXPECT_EQ(http_reason_phrase(501), "Not Implemented");
    EXPECT_EQ(http_reason_phrase(505), "HTTP Version Not Supported");
    EXPECT_EQ(http_reason_phrase(299), "Unknown");
    EXPECT_EQ(kHttpContinueResponse, "HTTP/1.1 100 Continue\r\n\r\n");
}

TEST(JsonError, BodyShape) {
    EXPECT_EQ(
        json_error_body("payload_too_large", "request body is too large"),
        R"({"success":false,"error":{"code":"payload_too_large","message":"request body is too large"}})");
}

TEST(JsonError, EscapesQuotesBackslashesAndControlCharacters) {
    EXPECT_EQ(
        json_error_body("bad", std::string("say \"hi\" \\ \n\t\x01\x1f end")),
        R"({"success":false,"error":{"code":"bad","message":"say \"hi\" \\ \u000a\u0009\u0001\u001f end"}})");
    std::string out;
    append_json_string(std::string("a\0b", 3), &out);
    EXPECT_EQ(out, R"("a\u0000b")");
}

TEST(JsonError, KeepsValidUtf8AndReplacesInvalidBytes) {
    std::string out;
    append_json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", &out);
    EXPECT_EQ(out, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    out.clear();
    // A lone continuation byte, an overlong '/', a surrogate, and a truncated sequence.
    append_json_string("\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82", &out);
    EXPECT_EQ(out, R"("\ufffd|\ufffd\ufffd|\ufffd\ufffd\ufffd|\ufffd\ufffd")");
}

TEST(JsonError, ResponseHelper) {
    const HttpResponse response = json_error_response(413, "payload_too_large", "too big", true);
    EXPECT_EQ(serialize_http_response(response),
              "HTTP/1.1 413 Payload Too Large\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 74\r\n"
              "Connection: close\r\n"
              "\r\n"
              R"({"success":false,"error":{"code":"payload_too_large","message":"too big"}})");
}

TEST(HttpDate, FormatsImfFixdate) {
    EXPECT_EQ(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(format_http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
    EXPECT_EQ(format_http_date(1735689599), "Tue, 31 Dec 2024 23:59:59 GMT");
    EXPECT_EQ(format_http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
}

}  // namespace
}  // namespace segment
