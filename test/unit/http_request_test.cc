// GoogleTest tests for HttpRequestParser: framing, limits, keep-alive, pipelining and incremental feeding,
// written the way webhook senders and Segment SDKs actually send requests. Tests assert parsed values and
// status codes only; they must never depend on timing or on anything outside src/core.
#include "core/no_postgres.h"

#include "core/http_request.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace segment {
namespace {

// Feeds the whole input once, continuing past kHeadersComplete; returns bytes consumed.
size_t feed_all(HttpRequestParser &parser, std::string_view input) {
    size_t consumed = parser.feed(input.data(), input.size());
    if (parser.state() == HttpParseState::kHeadersComplete) {
        consumed += parser.feed(input.data() + consumed, input.size() - consumed);
    }
    return consumed;
}

// Feeds one byte at a time, the worst case of a slow client.
size_t feed_byte_by_byte(HttpRequestParser &parser, std::string_view input) {
    size_t consumed = 0;
    while (consumed < input.size()) {
        if (parser.state() == HttpParseState::kHeadersComplete) {
            parser.feed(input.data() + consumed, 0);
        }
        const size_t n = parser.feed(input.data() + consumed, 1);
        if (n == 0) {
            break;
        }
        consumed += n;
    }
    if (parser.state() == HttpParseState::kHeadersComplete) {
        parser.feed(input.data() + consumed, 0);
    }
    return consumed;
}

int error_status_of(std::string_view input, HttpParserLimits limits = HttpParserLimits()) {
    HttpRequestParser parser(limits);
    feed_all(parser, input);
    return parser.state() == HttpParseState::kError ? parser.error_status() : 0;
}

TEST(HttpRequestParser, SimpleGet) {
    HttpRequestParser parser;
    const std::string input = "GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.0\r\n\r\n";
    EXPECT_EQ(parser.feed(input.data(), input.size()), input.size());
    ASSERT_EQ(parser.state(), HttpParseState::kComplete);
    const HttpRequest &r = parser.request();
    EXPECT_EQ(r.method(), "GET");
    EXPECT_EQ(r.target(), "/health");
    EXPECT_EQ(r.path(), "/health");
    EXPECT_EQ(r.query(), "");
    EXPECT_EQ(r.version_minor(), 1);
    ASSERT_EQ(r.headers().size(), 2u);
    EXPECT_EQ(r.headers()[1].name, "User-Agent");
    EXPECT_EQ(r.headers()[1].value, "curl/8.0");
    EXPECT_EQ(r.body(), "");
    EXPECT_FALSE(r.chunked());
    EXPECT_TRUE(parser.keep_alive());
    EXPECT_EQ(r.head_bytes(), input.size());
}

TEST(HttpRequestParser, SimplePostWithContentLength) {
    HttpRequestParser parser;
    const std::string body = R"({"type":"track","event":"Signed Up"})";
    const std::string input =
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    EXPECT_EQ(feed_all(parser, input), input.size());
    ASSERT_EQ(parser.state(), HttpParseState::kComplete);
    EXPECT_EQ(parser.request().method(), "POST");
    EXPECT_EQ(parser.request().path(), "/v1/batch");
    EXPECT_EQ(parser.request().body(), body);
    EXPECT_EQ(parser.request().content_length(), body.size());
}

TEST(HttpRequestParser, HeadersCompleteIsReportedBeforeTheBody) {
    HttpRequestParser parser;
    const std::string head = "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
    const std::string input = head + "hello";
    EXPECT_EQ(parser.feed(input.data(), input.size()), head.size());
    EXPECT_EQ(parser.state(), HttpParseState::kHeadersComplete);
    EXPECT_TRUE(parser.headers_complete());
    EXPECT_EQ(parser.request().path(), "/v1/track");
    EXPECT_EQ(parser.feed(input.data() + head.size(), 5), 5u);
    EXPECT_EQ(parser.state(), HttpParseState::kComplete);
    EXPECT_EQ(parser.request().body(), "hello");
}

TEST(HttpRequestParser, KeepAliveRules) {
    auto keep_alive = [](std::string_view input) {
        HttpRequestParser parser;
        feed_all(parser, input);
        EXPECT_EQ(parser.state(), HttpParseState::kComplete) << input;
        return parser.keep_alive();
    };
    EXPECT_TRUE(keep_alive("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_FALSE(keep_alive("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    EXPECT_FALSE(keep_alive("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, CLOSE\r\n\r\n"));
    EXPECT_FALSE(keep_alive("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo\r\nConnection: close\r\n\r\n"));
    EXPECT_TRUE(keep_alive("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_FALSE(keep_alive("GET / HTTP/1.0\r\n\r\n"));
    EXPECT_TRUE(keep_alive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    EXPECT_FALSE(keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
    EXPECT_FALSE(keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive-not\r\n\r\n"));
}

TEST(HttpRequestParser, PipelinedRequestsInOneBuffer) {
    const std::string input =
        "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        "POST /v1/identify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
        "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    HttpRequestParser parser;
    std::vector<HttpRequest> requests;
    size_t offset = 0;
    while (offset < input.size()) {
        offset += parser.feed(input.data() + offset, input.size() - offset);
        if (parser.state() == HttpParseState::kComplete) {
            requests.push_back(parser.take_request());
        } else if (parser.state() != HttpParseState::kHeadersComplete) {
            break;
        }
    }
    EXPECT_EQ(offset, input.size());
    ASSERT_EQ(requests.size(), 3u);
    // Views stay valid after the requests were moved out of the parser and into the vector.
    EXPECT_EQ(requests[0].path(), "/v1/track");
    EXPECT_EQ(requests[0].body(), "abc");
    EXPECT_EQ(requests[1].path(), "/v1/identify");
    EXPECT_EQ(requests[1].header("transfer-encoding").value_or(""), "chunked");
    EXPECT_EQ(requests[1].body(), "de");
    EXPECT_EQ(requests[2].path(), "/last");
    EXPECT_TRUE(requests[0].keep_alive());
    EXPECT_FALSE(requests[2].keep_alive());
}

TEST(HttpRequestParser, ResetKeepsParsingFromTheRemainingBytes) {
    const std::string input = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b?k=v HTTP/1.1\r\nHost: x\r\n\r\n";
    HttpRequestParser parser;
    const size_t first = parser.feed(input.data(), input.size());
    ASSERT_EQ(parser.state(), HttpParseState::kComplete);
    EXPECT_EQ(parser.request().path(), "/a");
    EXPECT_EQ(parser.feed(input.data() + first, input.size() - first), 0u);  // nothing until reset()
    parser.reset();
    EXPECT_EQ(parser.feed(input.data() + first, input.size() - first), input.size() - first);
    ASSERT_EQ(parser.state(), HttpParseState::kComplete);
    EXPECT_EQ(parser.request().path(), "/b");
    EXPECT_EQ(parser.request().query_parameter("k").value_or(""), "v");
}

TEST(HttpRequestParser, ByteByByteEqualsAllAtOnce) {
    const std::string inputs[] = {
        "POST /v1/batch?writeKey=abc HTTP/1.1\r\nHost: api\r\nContent-Length: 11\r\nX-A:  b \r\n\r\nhello "
        "world",
        "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;name=\"v\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        "POST /p HTTP/1.1\nHost: x\nContent-Length: 2\n\nok",
    };
    for (const std::string &input : inputs) {
        HttpRequestParser whole, bytes;
        EXPECT_EQ(feed_all(whole, input), input.size());
        EXPECT_EQ(feed_byte_by_byte(bytes, input), input.size());
        ASSERT_EQ(whole.state(), HttpParseState::kComplete) << input;
        ASSERT_EQ(bytes.state(), HttpParseState::kComplete) << input;
        EXPECT_EQ(whole.request().method(), bytes.request().method());
        EXPECT_EQ(whole.request().target(), bytes.request().target());
        EXPECT_EQ(whole.request().body(), bytes.request().body());
        ASSERT_EQ(whole.request().headers().size(), bytes.request().headers().size());
        for (size_t i = 0; i < whole.request().headers().size(); ++i) {
            EXPECT_EQ(whole.request().headers()[i].name, bytes.request().headers()[i].name);
            EXPECT_EQ(whole.request().headers()[i].value, bytes.request().headers()[i].value);
        }
    }
}

TEST(HttpRequestParser, ChunkedWithExtensionsAndTrailers) {
    const std::string input =
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4;ext=1\r\nWiki\r\n"
        "5 ; a=\"b c\";d\r\npedia\r\n"
        "E\r\n in\r\n\r\nchunks.\r\n"
        "0;last\r\nExpires: never\r\nX-Checksum: 1234\r\n\r\n"
        "GET /next";
    HttpRequestParser parser;
    const size_t consumed = feed_all(parser, input);
    ASSERT_EQ(parser.state(), HttpParseState::kComplete) << parser.error_message();
    EXPECT_EQ(consumed, input.size() - std::string_view("GET /next").size());
    EXPECT_TRUE(parser.request().chunked());
    EXPECT_EQ(parser.request().body(), "Wikipedia in\r\n\r\nchunks.");
    EXPECT_EQ(parser.request().content_length(), parser.request().body().size());
    EXPECT_FALSE(parser.request().header("Expires").has_value());  // trailers are ignored
}

TEST(HttpRequestParser, ChunkedSplitAcrossFeeds) {
    const std::string input =
        "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n3\r\n123\r\n0\r\n\r\n";
    // Split at every position into two feeds.
    for (size_t split = 0; split <= input.size(); ++split) {
        HttpRequestParser parser;
        size_t consumed = feed_all(parser, std::string_view(input).substr(0, split));
        consumed += feed_all(parser, std::string_view(input).substr(consumed));
        ASSERT_EQ(parser.state(), HttpParseState::kComplete) << split;
        EXPECT_EQ(consumed, input.size());
        EXPECT_EQ(parser.request().body(), "abcdefghijklmnopqrstuvwxyz123") << split;
    }
}

TEST(HttpRequestParser, InvalidChunkSize) {
    const std::string head = "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    EXPECT_EQ(error_status_of(head + "zz\r\nab\r\n0\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of(head + "\r\n"), 400);
    EXPECT_EQ(error_status_of(head + ";ext\r\n"), 400);
    EXPECT_EQ(error_status_of(head + "-1\r\n"), 400);
    EXPECT_EQ(error_status_of(head + "2 \r\nab\r\n"), 400);           // whitespace without an extension
    EXPECT_EQ(error_status_of(head + "2\r\nabc\r\n0\r\n\r\n"), 400);  // data longer than its size
    EXPECT_EQ(error_status_of(head + "2\rX"), 400);
    EXPECT_EQ(error_status_of(head + "0\r\nbad trailer\r\n\r\n"), 400);
}

TEST(HttpRequestParser, ContentLengthWithTransferEncodingIsRejected) {
    HttpRequestParser parser;
    feed_all(parser,
             "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
             "0\r\n\r\n");
    EXPECT_EQ(parser.state(), HttpParseState::kError);
    EXPECT_EQ(parser.error_status(), 400);
    EXPECT_FALSE(parser.headers_complete());
    EXPECT_FALSE(parser.keep_alive());
    EXPECT_FALSE(parser.error_message().empty());
}

TEST(HttpRequestParser, ContentLengthValues) {
    EXPECT_EQ(
        error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        400);
    EXPECT_EQ(
        error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc"),
        0);
    EXPECT_EQ(error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc"), 400);
    EXPECT_EQ(error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"), 400);
    EXPECT_EQ(error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n"), 400);
    // Overflowing values are refused as too large, never wrapped around.
    EXPECT_EQ(error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551617\r\n\r\n"),
              413);
}

TEST(HttpRequestParser, HeaderLimits) {
    HttpParserLimits limits;
    limits.max_header_bytes = 64;
    limits.max_header_count = 3;
    EXPECT_EQ(
        error_status_of("GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n", limits),
        431);
    EXPECT_EQ(error_status_of("GET /" + std::string(100, 'a') + " HTTP/1.1\r\n", limits), 414);
    EXPECT_EQ(error_status_of("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits), 431);
    EXPECT_EQ(error_status_of("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n", limits), 0);
    // The limit is reached without a line end: refused without waiting for the rest of the line.
    HttpRequestParser parser(limits);
    const std::string unterminated = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a');
    parser.feed(unterminated.data(), unterminated.size());
    EXPECT_EQ(parser.state(), HttpParseState::kError);
    EXPECT_EQ(parser.error_status(), 431);
}

TEST(HttpRequestParser, BodyLimitFromContentLengthBeforeTheBody) {
    HttpParserLimits limits;
    limits.max_body_bytes = 10;
    HttpRequestParser parser(limits);
    const std::string head =
        "POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n";
    parser.feed(head.data(), head.size());
    // Refused at the end of the head: no kHeadersComplete, so no 100 Continue is ever sent for it.
    EXPECT_EQ(parser.state(), HttpParseState::kError);
    EXPECT_EQ(parser.error_status(), 413);
    EXPECT_FALSE(parser.headers_complete());
    EXPECT_EQ(error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789", limits),
              0);
}

TEST(HttpRequestParser, BodyLimitForChunkedAsSoonAsTheSumPassesIt) {
    HttpParserLimits limits;
    limits.max_body_bytes = 10;
    const std::string head = "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    HttpRequestParser parser(limits);
    // 6 bytes, then a chunk size of 5: refused at the size digit, before any of its data arrives.
    const std::string input = head + "6\r\nabcdef\r\n5";
    feed_all(parser, input);
    EXPECT_EQ(parser.state(), HttpParseState::kError);
    EXPECT_EQ(parser.error_status(), 413);
    EXPECT_EQ(error_status_of(head + "fffffffffffffffffffffff\r\n", limits), 413);
    EXPECT_EQ(error_status_of(head + "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n", limits), 0);
}

TEST(HttpRequestParser, UnknownTransferEncodingIs501) {
    EXPECT_EQ(error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
              501);
    EXPECT_EQ(error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n"), 501);
    EXPECT_EQ(error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
              400);
    EXPECT_EQ(error_status_of("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400);
}

TEST(HttpRequestParser, HttpVersions) {
    EXPECT_EQ(error_status_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
    EXPECT_EQ(error_status_of("GET / HTTP/0.9\r\nHost: x\r\n\r\n"), 505);
    EXPECT_EQ(error_status_of("GET / HTTP/1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET / http/1.1\r\nHost: x\r\n\r\n"), 400);
    HttpRequestParser parser;
    feed_all(parser, "GET / HTTP/1.2\r\nHost: x\r\n\r\n");
    ASSERT_EQ(parser.state(), HttpParseState::kComplete);
    EXPECT_EQ(parser.request().version_minor(), 1);
    // 505 is decided on the request line, before the headers arrive.
    HttpRequestParser early;
    const std::string line = "PRI * HTTP/2.0\r\n";
    early.feed(line.data(), line.size());
    EXPECT_EQ(early.error_status(), 505);
}

TEST(HttpRequestParser, ExpectContinue) {
    HttpRequestParser parser;
    const std::string head =
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n";
    EXPECT_EQ(parser.feed(head.data(), head.size()), head.size());
    ASSERT_EQ(parser.state(), HttpParseState::kHeadersComplete);
    EXPECT_TRUE(parser.request().expects_continue());
    EXPECT_EQ(parser.feed("ok", 2), 2u);
    EXPECT_EQ(parser.state(), HttpParseState::kComplete);
    EXPECT_EQ(parser.request().body(), "ok");

    HttpRequestParser plain;
    feed_all(plain, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
    EXPECT_FALSE(plain.request().expects_continue());
    HttpRequestParser old;
    feed_all(old, "POST /p HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok");
    EXPECT_FALSE(old.request().expects_continue());  // ignored for HTTP/1.0
}

TEST(HttpRequestParser, CaseInsensitiveHeaderLookupAndTrimming) {
    HttpRequestParser parser;
    feed_all(
        parser,
        "GET / HTTP/1.1\r\nHOST: x\r\nx-signature:\t abc123 \t\r\nEmpty:\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n");
    ASSERT_EQ(parser.state(), HttpParseState::kComplete);
    const HttpRequest &r = parser.request();
    EXPECT_EQ(r.header("X-Signature").value_or("?"), "abc123");
    EXPECT_EQ(r.header("x-SIGNATURE").value_or("?"), "abc123");
    EXPECT_EQ(r.header("host").value_or("?"), "x");
    EXPECT_EQ(r.header("empty").value_or("?"), "");
    EXPECT_EQ(r.header("x-dup").value_or("?"), "1");  // first one; all are kept in headers()
    EXPECT_EQ(r.headers().size(), 5u);
    EXPECT_FALSE(r.header("missing").has_value());
}

TEST(HttpRequestParser, QueryDecoding) {
    HttpRequestParser parser;
    feed_all(parser, "GET /v1/batch?writeKey=a%2Bb&x=1+2&&flag&e%3D=%e2%82%AC HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(parser.state(), HttpParseState::kComplete);
    const HttpRequest &r = parser.request();
    EXPECT_EQ(r.path(), "/v1/batch");
    EXPECT_EQ(r.query(), "writeKey=a%2Bb&x=1+2&&flag&e%3D=%e2%82%AC");
    EXPECT_EQ(r.query_parameter("writeKey").value_or("?"), "a+b");
    EXPECT_EQ(r.query_parameter("x").value_or("?"), "1 2");
    EXPECT_EQ(r.query_parameter("flag").value_or("?"), "");
    EXPECT_EQ(r.query_parameter("e=").value_or("?"), "\xe2\x82\xac");
    EXPECT_FALSE(r.query_parameter("writekey").has_value());
    EXPECT_EQ(r.query_parameters().size(), 4u);
    EXPECT_EQ(error_status_of("GET /?writeKey=%zz HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET /?writeKey=%2 HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
}

TEST(HttpRequestParser, PercentDecodeHelper) {
    std::string out;
    EXPECT_TRUE(percent_decode("a%20b+c", false, &out));
    EXPECT_EQ(out, "a b+c");
    EXPECT_TRUE(percent_decode("a%20b+c", true, &out));
    EXPECT_EQ(out, "a b c");
    EXPECT_FALSE(percent_decode("%", true, &out));
    EXPECT_FALSE(percent_decode("ab%4", true, &out));
    EXPECT_TRUE(percent_decode("%00", true, &out));
    EXPECT_EQ(out, std::string(1, '\0'));
}

TEST(HttpRequestParser, RequestTargetForms) {
    HttpRequestParser absolute;
    feed_all(absolute,
             "POST http://Example.com:8080/v1/track?writeKey=k HTTP/1.1\r\nHost: example.com\r\n\r\n");
    ASSERT_EQ(absolute.state(), HttpParseState::kComplete);
    EXPECT_EQ(absolute.request().path(), "/v1/track");
    EXPECT_EQ(absolute.request().query_parameter("writeKey").value_or("?"), "k");
    HttpRequestParser no_path;
    feed_all(no_path, "GET https://example.com?a=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    ASSERT_EQ(no_path.state(), HttpParseState::kComplete);
    EXPECT_EQ(no_path.request().path(), "/");
    EXPECT_EQ(no_path.request().query(), "a=1");
    HttpRequestParser asterisk;
    feed_all(asterisk, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(asterisk.request().path(), "*");
    EXPECT_EQ(error_status_of("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET http:///p HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
}

TEST(HttpRequestParser, MalformedHeadsAre400) {
    EXPECT_EQ(error_status_of("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  continued\r\n\r\n"),
              400);  // obs-fold
    EXPECT_EQ(error_status_of("GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET / HTTP/1.1\r\n\r\n"), 400);                        // no Host in 1.1
    EXPECT_EQ(error_status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);  // two Hosts
    EXPECT_EQ(error_status_of("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(error_status_of("GET / HTTP/1.1 \r\nHost: x\r\n\r\n"), 400);
}

TEST(HttpRequestParser, LeniencyEmptyLinesAndBareLf) {
    HttpRequestParser parser;
    const std::string input = "\r\n\nGET /a HTTP/1.1\nHost: x\r\nX-B: y\n\n";
    EXPECT_EQ(feed_all(parser, input), input.size());
    ASSERT_EQ(parser.state(), HttpParseState::kComplete);
    EXPECT_EQ(parser.request().path(), "/a");
    EXPECT_EQ(parser.request().header("x-b").value_or("?"), "y");
}

TEST(HttpRequestParser, ErrorsAreSticky) {
    HttpRequestParser parser;
    const std::string bad = "GET / HTTP/3.0\r\n";
    parser.feed(bad.data(), bad.size());
    ASSERT_EQ(parser.state(), HttpParseState::kError);
    parser.reset();
    const std::string good = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    EXPECT_EQ(parser.feed(good.data(), good.size()), 0u);
    EXPECT_EQ(parser.state(), HttpParseState::kError);
    EXPECT_EQ(parser.error_status(), 505);
}

TEST(HttpRequestParser, TakeBodyMovesItOut) {
    HttpRequestParser parser;
    feed_all(parser, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz");
    HttpRequest request = parser.take_request();
    EXPECT_EQ(parser.state(), HttpParseState::kNeedMore);
    EXPECT_EQ(parser.request().method(), "");
    EXPECT_EQ(request.take_body(), "xyz");
    EXPECT_EQ(request.method(), "POST");
}

}  // namespace
}  // namespace segment
