// Unit tests of src/core/webhook: routing, every write-key form, signatures, the JSON checks, and the
// answers check_request_head() gives before the body is read.
#include "core/webhook.h"

#include <gtest/gtest.h>

#include <zlib.h>

#include <string>
#include <vector>

#include "core/signature.h"

namespace {

using segment::HttpRequest;
using segment::HttpRequestParser;
using segment::WebhookAction;

HttpRequest parse(const std::string &bytes) {
    HttpRequestParser parser;
    size_t fed = parser.feed(bytes.data(), bytes.size());
    if (parser.state() == segment::HttpParseState::kHeadersComplete) {
        fed += parser.feed(bytes.data() + fed, bytes.size() - fed);
    }
    EXPECT_EQ(parser.state(), segment::HttpParseState::kComplete) << bytes;
    return parser.take_request();
}

std::string post(const std::string &target, const std::string &body, const std::string &headers = "") {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\n" + headers +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string hex_hmac(const std::string &secret, const std::string &body) {
    segment::Sha1Digest digest;
    EXPECT_TRUE(segment::hmac_sha1(secret, body, digest));
    char hex[41];
    segment::digest_to_hex(digest, hex);
    return hex;
}

class WebhookTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::vector<segment::SourceInfo> sources(3);
        sources[0].id = 1;
        sources[0].write_key = "open-key";
        sources[1].id = 2;
        sources[1].write_key = "signed-key";
        sources[1].shared_secret = "s3cret";
        sources[2].id = 3;
        sources[2].write_key = "off-key";
        sources[2].enabled = false;
        directory.replace(std::move(sources));
        context.sources = &directory;
        context.cors_origins = {"*"};
    }

    segment::WebhookDecision decide(const std::string &bytes) {
        return segment::decide(parse(bytes), "192.0.2.7", context);
    }

    segment::SourceDirectory directory;
    segment::WebhookContext context;
};

const std::string kMessage = R"({"type":"track","event":"E","userId":"u"})";

TEST_F(WebhookTest, WriteKeyForms) {
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=open-key", kMessage)).source_id, 1);
    // base64("open-key:") = b3Blbi1rZXk6
    EXPECT_EQ(decide(post("/v1/webhook", kMessage, "Authorization: Basic b3Blbi1rZXk6\r\n")).source_id, 1);
    EXPECT_EQ(decide(post("/v1/webhook", kMessage, "authorization: bearer open-key\r\n")).source_id, 1);
    const std::string with_key = R"({"writeKey":"open-key","batch":[)" + kMessage + "]}";
    const auto body_key = decide(post("/v1/webhook", with_key));
    EXPECT_EQ(body_key.action, WebhookAction::Ingest);
    EXPECT_EQ(body_key.source_id, 1);
    EXPECT_EQ(body_key.json.message_count, 1u);
}

TEST_F(WebhookTest, UnknownMissingAndDisabledKeysAre401) {
    for (const std::string &request :
         {post("/v1/webhook?writeKey=nope", kMessage), post("/v1/webhook", kMessage),
          post("/v1/webhook?writeKey=off-key", kMessage),
          post("/v1/webhook", kMessage, "Authorization: Basic !!!\r\n"),
          post("/v1/webhook", R"({"batch":[{"writeKey":"open-key"}]})")}) {
        const auto decision = decide(request);
        EXPECT_EQ(decision.action, WebhookAction::Respond) << request;
        EXPECT_EQ(decision.response.status, 401) << request;
        EXPECT_NE(decision.response.body.find("invalid_write_key"), std::string::npos);
    }
}

TEST_F(WebhookTest, SignaturesWholeBodyOrFirstElement) {
    const std::string batch = "[" + kMessage + R"(,{"type":"page","name":"P","userId":"u"}])";
    const auto whole = decide(
        post("/v1/webhook?writeKey=signed-key", batch, "X-Signature: " + hex_hmac("s3cret", batch) + "\r\n"));
    EXPECT_EQ(whole.action, WebhookAction::Ingest);
    const auto first = decide(post("/v1/webhook?writeKey=signed-key", batch,
                                   "X-Signature: " + hex_hmac("s3cret", kMessage) + "\r\n"));
    EXPECT_EQ(first.action, WebhookAction::Ingest);
    const auto wrong = decide(
        post("/v1/webhook?writeKey=signed-key", batch, "X-Signature: " + hex_hmac("other", batch) + "\r\n"));
    EXPECT_EQ(wrong.response.status, 401);
    EXPECT_NE(wrong.response.body.find("invalid_signature"), std::string::npos);
    const auto missing = decide(post("/v1/webhook?writeKey=signed-key", batch));
    EXPECT_EQ(missing.response.status, 401);
    EXPECT_NE(missing.response.body.find("invalid_signature"), std::string::npos);
}

TEST(SourceDirectory, FindsASourceByItsPreviousWriteKeyWhileItLasts) {
    std::vector<segment::SourceInfo> sources(2);
    sources[0].id = 1;
    sources[0].write_key = "new-key-1";
    sources[0].previous_write_key = "old-key-1";
    sources[1].id = 2;
    sources[1].write_key = "key-2";
    sources[1].previous_write_key = "new-key-1";  // another source's current key: that source wins
    segment::SourceDirectory directory;
    directory.replace(sources);
    EXPECT_EQ(directory.size(), 2u);
    ASSERT_NE(directory.find("new-key-1"), nullptr);
    EXPECT_EQ(directory.find("new-key-1")->id, 1);
    ASSERT_NE(directory.find("old-key-1"), nullptr);
    EXPECT_EQ(directory.find("old-key-1")->id, 1);
    ASSERT_NE(directory.find("key-2"), nullptr);
    EXPECT_EQ(directory.find("key-2")->id, 2);
    EXPECT_EQ(directory.find("nope"), nullptr);
    EXPECT_EQ(directory.find(""), nullptr);  // an absent previous key (empty) matches nothing
    // The grace ended: the worker reloads the source without its previous key.
    sources[0].previous_write_key.clear();
    directory.replace(sources);
    EXPECT_EQ(directory.find("old-key-1"), nullptr);
    EXPECT_EQ(directory.find("new-key-1")->id, 1);
}

TEST_F(WebhookTest, PreviousWriteKeyAndSecretAreAcceptedWhileTheyLast) {
    std::vector<segment::SourceInfo> sources(1);
    sources[0].id = 7;
    sources[0].write_key = "rotated-key";
    sources[0].previous_write_key = "former-key";
    sources[0].shared_secret = "new-secret";
    sources[0].previous_shared_secret = "old-secret";
    directory.replace(sources);
    for (const std::string key : {"rotated-key", "former-key"}) {
        for (const std::string secret : {"new-secret", "old-secret"}) {
            const auto decision = decide(post("/v1/webhook?writeKey=" + key, kMessage,
                                              "X-Signature: " + hex_hmac(secret, kMessage) + "\r\n"));
            EXPECT_EQ(decision.action, WebhookAction::Ingest) << key << " " << secret;
            EXPECT_EQ(decision.source_id, 7);
            EXPECT_EQ(decision.signature, segment::SignatureCoverage::WholeBody);
        }
    }
    const auto wrong = decide(post("/v1/webhook?writeKey=rotated-key", kMessage,
                                   "X-Signature: " + hex_hmac("older-secret", kMessage) + "\r\n"));
    EXPECT_EQ(wrong.response.status, 401);
    // Once the grace ended, neither the previous key nor the previous secret is accepted.
    sources[0].previous_write_key.clear();
    sources[0].previous_shared_secret.reset();
    directory.replace(sources);
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=former-key", kMessage,
                          "X-Signature: " + hex_hmac("new-secret", kMessage) + "\r\n"))
                  .response.status,
              401);
    const auto old_secret = decide(post("/v1/webhook?writeKey=rotated-key", kMessage,
                                        "X-Signature: " + hex_hmac("old-secret", kMessage) + "\r\n"));
    EXPECT_EQ(old_secret.response.status, 401);
    EXPECT_NE(old_secret.response.body.find("invalid_signature"), std::string::npos);
}

TEST_F(WebhookTest, TheDecisionSaysWhatTheSignatureCovered) {
    using segment::SignatureCoverage;
    const std::string batch = "[" + kMessage + R"(,{"type":"page","name":"P","userId":"u"}])";
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=signed-key", batch,
                          "X-Signature: " + hex_hmac("s3cret", batch) + "\r\n"))
                  .signature,
              SignatureCoverage::WholeBody);
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=signed-key", batch,
                          "X-Signature: " + hex_hmac("s3cret", kMessage) + "\r\n"))
                  .signature,
              SignatureCoverage::FirstElement);
    // A source without a secret ignores X-Signature: nothing is verified.
    const auto unsigned_source = decide(
        post("/v1/webhook?writeKey=open-key", batch, "X-Signature: " + hex_hmac("s3cret", batch) + "\r\n"));
    EXPECT_EQ(unsigned_source.action, WebhookAction::Ingest);
    EXPECT_EQ(unsigned_source.signature, SignatureCoverage::None);
    // Newline-delimited JSON signed as sent covers every line.
    const std::string lines = kMessage + "\n" + kMessage + "\n";
    const auto ndjson = decide(
        post("/v1/webhook?writeKey=signed-key", lines, "X-Signature: " + hex_hmac("s3cret", lines) + "\r\n"));
    EXPECT_EQ(ndjson.action, WebhookAction::Ingest);
    EXPECT_EQ(ndjson.signature, SignatureCoverage::WholeBody);
}

TEST_F(WebhookTest, RequireFullSignatureRefusesAFirstElementSignature) {
    std::vector<segment::SourceInfo> sources(1);
    sources[0].id = 9;
    sources[0].write_key = "strict-key";
    sources[0].shared_secret = "new-secret";
    sources[0].previous_shared_secret = "old-secret";
    sources[0].require_full_signature = true;
    directory.replace(sources);
    const std::string batch = "[" + kMessage + R"(,{"type":"page","name":"P","userId":"u"}])";
    for (const std::string secret : {"new-secret", "old-secret"}) {
        const auto first = decide(post("/v1/webhook?writeKey=strict-key", batch,
                                       "X-Signature: " + hex_hmac(secret, kMessage) + "\r\n"));
        EXPECT_EQ(first.action, WebhookAction::Respond);
        EXPECT_EQ(first.response.status, 401);
        EXPECT_NE(first.response.body.find("invalid_signature"), std::string::npos);
        EXPECT_NE(first.response.body.find("whole body"), std::string::npos);
        const auto whole = decide(post("/v1/webhook?writeKey=strict-key", batch,
                                       "X-Signature: " + hex_hmac(secret, batch) + "\r\n"));
        EXPECT_EQ(whole.action, WebhookAction::Ingest);
        EXPECT_EQ(whole.signature, segment::SignatureCoverage::WholeBody);
    }
}

TEST_F(WebhookTest, InvalidJsonFromAKnownSourceIsIngestedAsADeadLetter) {
    // A one-line body from a known key is left to the database step's parse (which refuses it the same way).
    const auto deferred = decide(post("/v1/webhook?writeKey=open-key", "{\"type\":"));
    EXPECT_EQ(deferred.action, WebhookAction::Ingest);
    EXPECT_EQ(deferred.source_id, 1);
    // A body that must be looked at (several lines, or the key inside it) is checked here.
    const auto decision = decide(post("/v1/webhook?writeKey=open-key", "{\"type\":\n"));
    EXPECT_EQ(decision.action, WebhookAction::Ingest);
    EXPECT_FALSE(decision.json.valid);
    EXPECT_NE(decision.json.error.find("not valid JSON"), std::string::npos);
    // Without any key, invalid JSON cannot be attributed to a source.
    EXPECT_EQ(decide(post("/v1/webhook", "{\"type\":")).response.status, 400);
}

TEST_F(WebhookTest, Routing) {
    EXPECT_EQ(decide("GET /health HTTP/1.1\r\nHost: x\r\n\r\n").action, WebhookAction::Health);
    const auto not_found = decide(post("/v2/other", kMessage));
    EXPECT_EQ(not_found.response.status, 404);
    const auto wrong_method = decide("GET /v1/webhook HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(wrong_method.response.status, 405);
    EXPECT_NE(wrong_method.response.allow.find("POST"), std::string::npos);
    EXPECT_EQ(decide(post("/health", "")).response.status, 405);
    const std::string gzip_header = "Content-Encoding: gzip\r\n";  // but the body is not gzip data
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=open-key", kMessage, gzip_header)).response.status, 400);
    const std::string brotli_header = "Content-Encoding: br\r\n";
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=open-key", kMessage, brotli_header)).response.status, 415);
}

TEST_F(WebhookTest, UnavailableIngestIs503WithRetryAfter) {
    context.ingest_available = false;
    context.unavailable_code = "extension_missing";
    context.unavailable_message = "not installed";
    const auto decision = decide(post("/v1/webhook?writeKey=open-key", kMessage));
    EXPECT_EQ(decision.response.status, 503);
    ASSERT_TRUE(decision.response.retry_after_seconds.has_value());
    EXPECT_NE(decision.response.body.find("extension_missing"), std::string::npos);
}

TEST_F(WebhookTest, TrackingApiPathsImplyTheTypeAndFillTheClientAddress) {
    const auto track = decide(post("/v1/track?writeKey=open-key", R"({"event":"E","userId":"u"})"));
    EXPECT_EQ(track.action, WebhookAction::Ingest);
    ASSERT_TRUE(track.implied_type.has_value());
    EXPECT_EQ(*track.implied_type, segment::MessageType::Track);
    EXPECT_EQ(track.client_ip, "192.0.2.7");
    EXPECT_EQ(*decide(post("/v1/p?writeKey=open-key", kMessage)).implied_type, segment::MessageType::Page);
    EXPECT_EQ(*decide(post("/v1/alias/?writeKey=open-key", kMessage)).implied_type,
              segment::MessageType::Alias);
    const auto batch = decide(post("/v1/batch", R"({"writeKey":"open-key","batch":[)" + kMessage + "]}"));
    EXPECT_FALSE(batch.implied_type.has_value());
    EXPECT_EQ(batch.client_ip, "192.0.2.7");
    EXPECT_TRUE(
        decide(post("/v1/webhook?writeKey=open-key", kMessage)).client_ip.empty());  // Segment's servers
    context.trust_proxy = true;
    EXPECT_EQ(
        decide(post("/v1/import?writeKey=open-key", kMessage, "X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"))
            .client_ip,
        "203.0.113.9");
}

TEST_F(WebhookTest, NewlineDelimitedJsonBecomesAnArray) {
    const std::string lines = kMessage + "\n" + R"({"type":"page","name":"P","anonymousId":"a"})" + "\r\n\n";
    const auto decision = decide(post("/v1/batch?writeKey=open-key", lines));
    EXPECT_EQ(decision.action, WebhookAction::Ingest);
    EXPECT_TRUE(decision.json.valid);
    EXPECT_EQ(decision.json.message_count, 2u);
    EXPECT_EQ(decision.rewritten_body, "[" + kMessage + R"(,{"type":"page","name":"P","anonymousId":"a"}])");
    // Not on single-message endpoints, and not when a line is not an object.
    EXPECT_FALSE(decide(post("/v1/track?writeKey=open-key", lines)).json.valid);
    EXPECT_FALSE(decide(post("/v1/webhook?writeKey=open-key", kMessage + "\n[1]")).json.valid);
}

TEST_F(WebhookTest, Cors) {
    const auto preflight = decide(
        "OPTIONS /v1/t HTTP/1.1\r\nHost: x\r\nOrigin: https://shop.example\r\nAccess-Control-Request-Method: "
        "POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n");
    EXPECT_EQ(preflight.response.status, 204);
    const std::string head = segment::serialize_http_response(preflight.response);
    EXPECT_NE(head.find("Access-Control-Allow-Origin: *"), std::string::npos) << head;
    EXPECT_NE(head.find("Access-Control-Allow-Methods: POST, OPTIONS"), std::string::npos) << head;
    EXPECT_NE(head.find("Access-Control-Allow-Headers: content-type"), std::string::npos) << head;

    context.cors_origins = {"https://shop.example"};
    const auto allowed = decide(post("/v1/t", R"({"writeKey":"open-key","event":"E","userId":"u"})",
                                     "Origin: https://shop.example\r\nContent-Type: text/plain\r\n"));
    EXPECT_EQ(allowed.action, WebhookAction::Ingest);
    ASSERT_FALSE(allowed.headers.empty());
    EXPECT_EQ(allowed.headers[0].second, "https://shop.example");
    const auto refused = decide(post("/v1/t", kMessage, "Origin: https://evil.example\r\n"));
    EXPECT_EQ(refused.response.status, 403);
    // An error answer to an allowed origin carries the CORS header, so the page can read it.
    const auto unauthorized =
        decide(post("/v1/t?writeKey=nope", kMessage, "Origin: https://shop.example\r\n"));
    EXPECT_EQ(unauthorized.response.status, 401);
    EXPECT_FALSE(unauthorized.response.extra_headers.empty());
}

// Compresses with zlib as gzip (window bits 31).
std::string gzip(const std::string &data) {
    z_stream stream{};
    EXPECT_EQ(deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&stream, data.size()) + 32, '\0');
    stream.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    stream.next_out = reinterpret_cast<Bytef *>(&out[0]);
    stream.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    return out;
}

// check_request_head() sees only the head; decide() the whole request. Where the head decides, both must give
// the very same answer (status, body, Allow, Retry-After and CORS headers).
TEST_F(WebhookTest, HeadCheckAnswersAsDecideDoes) {
    const std::string origin = "Origin: https://shop.example\r\n";
    context.cors_origins = {"https://shop.example"};
    std::vector<std::string> requests = {
        post("/v2/other?writeKey=open-key", kMessage),
        post("/health", kMessage),
        "PUT /v1/track?writeKey=open-key HTTP/1.1\r\nHost: x\r\n" + origin + "Content-Length: 2\r\n\r\n{}",
        "OPTIONS /v1/t HTTP/1.1\r\nHost: x\r\n" + origin + "Content-Length: 2\r\n\r\n{}",
        post("/v1/t?writeKey=open-key", kMessage, "Origin: https://evil.example\r\n"),
        post("/v1/t?writeKey=nope", kMessage, origin),
        post("/v1/webhook?writeKey=", kMessage),
        post("/v1/webhook", kMessage, "Authorization: Bearer off-key\r\n"),
        post("/v1/webhook", kMessage, "Authorization: Basic !!!\r\n"),
    };
    auto expect_same = [this](const std::string &bytes) {
        const HttpRequest request = parse(bytes);
        const auto head = segment::check_request_head(request, context);
        ASSERT_TRUE(head.has_value()) << bytes;
        const auto decision = segment::decide(request, "192.0.2.7", context);
        EXPECT_EQ(decision.action, WebhookAction::Respond) << bytes;
        EXPECT_EQ(segment::serialize_http_response(*head),
                  segment::serialize_http_response(decision.response))
            << bytes;
    };
    for (const std::string &bytes : requests) {
        expect_same(bytes);
    }
    const auto cors = segment::check_request_head(parse(requests[5]), context);
    ASSERT_TRUE(cors.has_value());
    EXPECT_EQ(cors->status, 401);
    EXPECT_NE(cors->body.find("invalid_write_key"), std::string::npos);
    EXPECT_FALSE(cors->extra_headers.empty());  // the page can read the refusal

    context.ingest_available = false;
    context.unavailable_code = "extension_missing";
    context.unavailable_message = "not installed";
    expect_same(post("/v1/webhook?writeKey=open-key", kMessage));
    const auto unavailable = segment::check_request_head(parse(post("/v1/batch", kMessage)), context);
    ASSERT_TRUE(unavailable.has_value());
    EXPECT_EQ(unavailable->status, 503);
    EXPECT_TRUE(unavailable->retry_after_seconds.has_value());
}

TEST_F(WebhookTest, HeadCheckLetsThroughWhatTheBodyMayDecide) {
    for (const std::string &bytes :
         {post("/v1/webhook?writeKey=open-key", kMessage), post("/v1/webhook?writeKey=signed-key", kMessage),
          post("/v1/webhook", kMessage, "Authorization: Bearer open-key\r\n"),
          post("/v1/batch", R"({"writeKey":"nope"})"), post("/v1/webhook", "not json"),
          std::string("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")}) {
        EXPECT_FALSE(segment::check_request_head(parse(bytes), context).has_value()) << bytes;
    }
}

TEST_F(WebhookTest, UnknownKeyIsRefusedBeforeTheBodyIsDecompressed) {
    const std::string gzip_header = "Content-Encoding: gzip\r\n";
    // Not gzip data at all: decompressing it first would answer 400 invalid_encoding.
    const auto corrupt = decide(post("/v1/webhook?writeKey=nope", "\x1f\x8b garbage", gzip_header));
    EXPECT_EQ(corrupt.response.status, 401);
    EXPECT_NE(corrupt.response.body.find("invalid_write_key"), std::string::npos);
    EXPECT_EQ(
        decide(post("/v1/webhook", "\x1f\x8b garbage", gzip_header + "Authorization: Bearer off-key\r\n"))
            .response.status,
        401);
    // Larger than max_body_bytes once inflated: decompressing it first would answer 413.
    context.max_body_bytes = 1024;
    const std::string bomb = gzip(std::string(1 << 20, ' ') + kMessage);
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=nope", bomb, gzip_header)).response.status, 401);
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=open-key", bomb, gzip_header)).response.status, 413);
    // A known key proceeds as before.
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=open-key", "\x1f\x8b garbage", gzip_header)).response.status,
              400);
    const auto known = decide(post("/v1/webhook?writeKey=open-key", gzip(kMessage), gzip_header));
    EXPECT_EQ(known.action, WebhookAction::Ingest);
    EXPECT_EQ(known.source_id, 1);
    EXPECT_EQ(known.rewritten_body, kMessage);
}

TEST(CheckJson, CountsMessagesAndRefusesWhatIsNotJson) {
    EXPECT_EQ(segment::check_json(R"({"type":"track"})").message_count, 1u);
    EXPECT_EQ(segment::check_json(R"([{"a":[1,2,3]},{"b":{"c":[]}},3])").message_count, 3u);
    EXPECT_EQ(segment::check_json(R"({"batch":[{"x":[1,2]},{},{}],"context":{"batch":[1]}})").message_count,
              3u);
    EXPECT_EQ(segment::check_json("[]").message_count, 0u);
    // \u0000 is well-formed JSON that Postgres cannot store: valid, flagged, isolated later per message.
    const auto nul = segment::check_json(R"({"a":"x\u0000y"})");
    EXPECT_TRUE(nul.valid);
    EXPECT_TRUE(nul.has_poison);
    EXPECT_FALSE(segment::check_json(R"({"a":"x"})").has_poison);
    EXPECT_FALSE(segment::check_json(std::string("{}\0junk", 7)).valid);
    EXPECT_FALSE(segment::check_json("\xff\xfe").valid);
    EXPECT_FALSE(segment::check_json("").valid);
    EXPECT_FALSE(segment::check_json("{} {}").valid);
    // Deep nesting is parsed without recursion (a recursive parser would overflow the stack).
    const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
    EXPECT_TRUE(segment::check_json(deep).valid);
    EXPECT_FALSE(segment::check_json(std::string(1000000, '[')).valid);
    const auto key = segment::check_json(R"({"context":{"writeKey":"inner"},"writeKey":"outer"})");
    ASSERT_TRUE(key.write_key.has_value());
    EXPECT_EQ(*key.write_key, "outer");
    EXPECT_FALSE(segment::check_json(R"({"context":{"writeKey":"inner"}})").write_key.has_value());
    EXPECT_FALSE(segment::check_json(R"({"writeKey":5})").write_key.has_value());
}

}  // namespace
