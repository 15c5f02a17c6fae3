// Unit tests of src/core/rate_limit (token buckets with the time passed in, the shared table's slots and
// eviction, the 429 answer) and of how decide() counts the events a rate-limited source is charged.
#include "core/rate_limit.h"
#include "core/webhook.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using segment::RateLimitVerdict;
using segment::TokenBucket;

constexpr int64_t kSecond = 1000000;
constexpr int64_t kStart = 5 * kSecond;  // an arbitrary monotonic time

TokenBucket full_bucket(int32_t limit) {
    TokenBucket bucket{};
    segment::start_bucket(bucket, 7, limit, kStart);
    return bucket;
}

TEST(TokenBucket, OneSecondsBudgetThenTheRate) {
    TokenBucket bucket = full_bucket(10);
    // A full bucket holds one second's budget: ten single events pass at once, the eleventh does not.
    for (int i = 0; i < 10; ++i) {
        EXPECT_TRUE(segment::take_events(bucket, 10, 1, kStart).admitted) << i;
    }
    const RateLimitVerdict refused = segment::take_events(bucket, 10, 1, kStart);
    EXPECT_FALSE(refused.admitted);
    EXPECT_EQ(refused.retry_after_seconds, 1u);
    // One event flows back in every 100 ms.
    EXPECT_FALSE(segment::take_events(bucket, 10, 1, kStart + 99999).admitted);
    EXPECT_TRUE(segment::take_events(bucket, 10, 1, kStart + 100000).admitted);
    EXPECT_FALSE(segment::take_events(bucket, 10, 1, kStart + 100000).admitted);
    // Over a long run the admitted events stay within the rate plus the first second's burst.
    int admitted = 0;
    for (int64_t t = kStart + 100000; t < kStart + 100000 + 20 * kSecond; t += 7000) {
        admitted += segment::take_events(bucket, 10, 1, t).admitted ? 1 : 0;
    }
    EXPECT_GE(admitted, 199);
    EXPECT_LE(admitted, 201);
}

TEST(TokenBucket, CountsEventsNotRequests) {
    TokenBucket bucket = full_bucket(100);
    EXPECT_TRUE(segment::take_events(bucket, 100, 60, kStart).admitted);
    // 40 left: a request of 50 waits for 10 more, 100 ms, answered as a whole second.
    const RateLimitVerdict refused = segment::take_events(bucket, 100, 50, kStart);
    EXPECT_FALSE(refused.admitted);
    EXPECT_EQ(refused.retry_after_seconds, 1u);
    EXPECT_TRUE(segment::take_events(bucket, 100, 40, kStart).admitted);
    // Empty: 100 events need the whole second; 1 ms later they need 0.999 s, still one second.
    EXPECT_EQ(segment::take_events(bucket, 100, 100, kStart).retry_after_seconds, 1u);
    EXPECT_FALSE(segment::take_events(bucket, 100, 100, kStart + kSecond - 1).admitted);
    EXPECT_TRUE(segment::take_events(bucket, 100, 100, kStart + kSecond).admitted);
}

TEST(TokenBucket, ZeroEventsCostOne) {
    TokenBucket bucket = full_bucket(2);
    EXPECT_TRUE(segment::take_events(bucket, 2, 0, kStart).admitted);
    EXPECT_TRUE(segment::take_events(bucket, 2, 0, kStart).admitted);
    EXPECT_FALSE(segment::take_events(bucket, 2, 0, kStart).admitted);
}

TEST(TokenBucket, LargerThanTheBucketIsAdmittedWhenFullAndPaidOff) {
    TokenBucket bucket = full_bucket(10);
    EXPECT_TRUE(segment::take_events(bucket, 10, 1, kStart).admitted);
    // 35 events never fit in 10: refused until the bucket is full again (100 ms), then admitted into debt.
    const RateLimitVerdict early = segment::take_events(bucket, 10, 35, kStart);
    EXPECT_FALSE(early.admitted);
    EXPECT_EQ(early.retry_after_seconds, 1u);
    EXPECT_TRUE(segment::take_events(bucket, 10, 35, kStart + 100000).admitted);
    // Now 25 events in debt: a single event waits 2.6 s (Retry-After 3), the next big one 3.5 s (4).
    const RateLimitVerdict single = segment::take_events(bucket, 10, 1, kStart + 100000);
    EXPECT_FALSE(single.admitted);
    EXPECT_EQ(single.retry_after_seconds, 3u);
    EXPECT_EQ(segment::take_events(bucket, 10, 35, kStart + 100000).retry_after_seconds, 4u);
    EXPECT_FALSE(segment::take_events(bucket, 10, 1, kStart + 100000 + 2599999).admitted);
    EXPECT_TRUE(segment::take_events(bucket, 10, 1, kStart + 100000 + 2600000).admitted);
    // Huge counts do not overflow: admitted when full, and the debt is long.
    TokenBucket huge = full_bucket(1);
    EXPECT_TRUE(segment::take_events(huge, 1, UINT64_MAX, kStart).admitted);
    const RateLimitVerdict after = segment::take_events(huge, 1, 1, kStart);
    EXPECT_FALSE(after.admitted);
    EXPECT_GT(after.retry_after_seconds, 1000000u);
}

TEST(TokenBucket, LimitChangesApplyFromNow) {
    TokenBucket bucket = full_bucket(100);
    EXPECT_TRUE(segment::take_events(bucket, 100, 100, kStart).admitted);
    // Lowered: the bucket never holds more than the new second's budget.
    TokenBucket lowered = full_bucket(100);
    EXPECT_TRUE(segment::take_events(lowered, 5, 5, kStart).admitted);
    EXPECT_FALSE(segment::take_events(lowered, 5, 1, kStart).admitted);
    // Raised: the new rate refills from now on.
    EXPECT_FALSE(segment::take_events(bucket, 1000, 500, kStart + 100000).admitted);  // 10 tokens at 100/s
    EXPECT_TRUE(segment::take_events(bucket, 1000, 500, kStart + 600000).admitted);   // + 500 at 1000/s
}

TEST(TokenBucket, ClockThatDoesNotAdvance) {
    TokenBucket bucket = full_bucket(10);
    EXPECT_TRUE(segment::take_events(bucket, 10, 10, kStart).admitted);
    EXPECT_FALSE(
        segment::take_events(bucket, 10, 1, kStart - kSecond).admitted);  // earlier: nothing flows in
    EXPECT_TRUE(segment::take_events(bucket, 10, 1, kStart + 100000).admitted);
    EXPECT_TRUE(segment::bucket_full(full_bucket(3), kStart));
    EXPECT_FALSE(segment::bucket_full(bucket, kStart + 100000));
    EXPECT_TRUE(segment::bucket_full(bucket, kStart + kSecond + 100000));
}

TEST(RateLimitTable, SourcesHaveTheirOwnBuckets) {
    std::vector<TokenBucket> slots(64, TokenBucket{});
    for (int32_t source = 1; source <= 40; ++source) {
        EXPECT_TRUE(segment::charge_events(slots.data(), slots.size(), source, 5, 5, kStart).admitted);
    }
    for (int32_t source = 1; source <= 40; ++source) {
        EXPECT_FALSE(segment::charge_events(slots.data(), slots.size(), source, 5, 1, kStart).admitted)
            << source;
    }
    // A refund (the batch did not commit) gives the events back, never beyond a full bucket.
    segment::refund_events(slots.data(), slots.size(), 3, 2, kStart);
    EXPECT_TRUE(segment::charge_events(slots.data(), slots.size(), 3, 5, 2, kStart).admitted);
    EXPECT_FALSE(segment::charge_events(slots.data(), slots.size(), 3, 5, 1, kStart).admitted);
    segment::refund_events(slots.data(), slots.size(), 4, 1000, kStart);
    EXPECT_TRUE(segment::charge_events(slots.data(), slots.size(), 4, 5, 5, kStart).admitted);
    EXPECT_FALSE(segment::charge_events(slots.data(), slots.size(), 4, 5, 1, kStart).admitted);
    segment::refund_events(slots.data(), slots.size(), 999, 5, kStart);  // no bucket: nothing happens
    // No table, or no limit: nothing is refused.
    EXPECT_TRUE(segment::charge_events(nullptr, 0, 1, 5, 100, kStart).admitted);
    EXPECT_TRUE(segment::charge_events(slots.data(), slots.size(), 1, 0, 100, kStart).admitted);
}

TEST(RateLimitTable, AFullTableReusesIdleBucketsFirst) {
    // Four slots, six sources: every source finds a bucket; a busy one is only taken when nothing else is
    // left.
    std::vector<TokenBucket> slots(4, TokenBucket{});
    for (int32_t source = 1; source <= 4; ++source) {
        EXPECT_TRUE(segment::charge_events(slots.data(), 4, source, 10, 10, kStart).admitted);
    }
    // Source 1 and 2 were used a second ago and are full again; 3 and 4 were emptied since.
    EXPECT_TRUE(segment::charge_events(slots.data(), 4, 3, 10, 9, kStart + 900000).admitted);
    EXPECT_TRUE(segment::charge_events(slots.data(), 4, 4, 10, 9, kStart + 900000).admitted);
    EXPECT_TRUE(segment::charge_events(slots.data(), 4, 5, 10, 10, kStart + kSecond).admitted);
    EXPECT_TRUE(segment::charge_events(slots.data(), 4, 6, 10, 10, kStart + kSecond).admitted);
    // 3 and 4 kept their buckets (still nearly empty).
    EXPECT_FALSE(segment::charge_events(slots.data(), 4, 3, 10, 5, kStart + kSecond).admitted);
    EXPECT_FALSE(segment::charge_events(slots.data(), 4, 4, 10, 5, kStart + kSecond).admitted);
    // Nothing idle left: source 7 takes the least recently used slot, and that source starts again full.
    EXPECT_TRUE(segment::charge_events(slots.data(), 4, 7, 10, 10, kStart + kSecond).admitted);
    int found = 0;
    for (const TokenBucket &slot : slots) {
        found += slot.source_id == 7 ? 1 : 0;
    }
    EXPECT_EQ(found, 1);
}

TEST(RateLimitTable, PeekChargesNothing) {
    std::vector<TokenBucket> slots(16, TokenBucket{});
    EXPECT_TRUE(segment::peek_one_event(slots.data(), slots.size(), 9, 3, kStart).admitted);  // no bucket yet
    EXPECT_TRUE(segment::charge_events(slots.data(), slots.size(), 9, 3, 2, kStart).admitted);
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(segment::peek_one_event(slots.data(), slots.size(), 9, 3, kStart).admitted);
    }
    EXPECT_TRUE(segment::charge_events(slots.data(), slots.size(), 9, 3, 1, kStart).admitted);
    const RateLimitVerdict empty = segment::peek_one_event(slots.data(), slots.size(), 9, 3, kStart);
    EXPECT_FALSE(empty.admitted);
    EXPECT_EQ(empty.retry_after_seconds, 1u);
    EXPECT_TRUE(segment::peek_one_event(slots.data(), slots.size(), 9, 3, kStart + kSecond / 3 + 1).admitted);
}

TEST(RateLimitResponse, Is429WithRetryAfterAndTheErrorBody) {
    const segment::HttpResponse response = segment::rate_limited_response(50, 3);
    EXPECT_EQ(response.status, 429);
    ASSERT_TRUE(response.retry_after_seconds.has_value());
    EXPECT_EQ(*response.retry_after_seconds, 3u);
    EXPECT_EQ(response.body.rfind(R"({"success":false,"error":{"code":"rate_limited","message":")", 0), 0u)
        << response.body;
    const std::string wire = segment::serialize_http_response(response);
    EXPECT_NE(wire.find("HTTP/1.1 429 Too Many Requests\r\n"), std::string::npos) << wire;
    EXPECT_NE(wire.find("Retry-After: 3\r\n"), std::string::npos) << wire;
}

// decide(): a source with a limit gets its events counted exactly, even where the body is otherwise not
// parsed.
segment::HttpRequest parse(const std::string &bytes) {
    segment::HttpRequestParser parser;
    size_t fed = parser.feed(bytes.data(), bytes.size());
    if (parser.state() == segment::HttpParseState::kHeadersComplete) {
        parser.feed(bytes.data() + fed, bytes.size() - fed);
    }
    EXPECT_EQ(parser.state(), segment::HttpParseState::kComplete) << bytes;
    return parser.take_request();
}

std::string post(const std::string &target, const std::string &body) {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
}

class RateLimitDecisionTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::vector<segment::SourceInfo> sources(2);
        sources[0].id = 1;
        sources[0].write_key = "open-key";
        sources[1].id = 2;
        sources[1].write_key = "limited-key";
        sources[1].max_events_per_second = 20;
        directory.replace(std::move(sources));
        context.sources = &directory;
    }
    segment::WebhookDecision decide(const std::string &bytes) {
        return segment::decide(parse(bytes), "192.0.2.7", context);
    }
    segment::SourceDirectory directory;
    segment::WebhookContext context;
};

TEST_F(RateLimitDecisionTest, CountsTheEventsOfALimitedSource) {
    const std::string message = R"({"type":"track","event":"E","userId":"u"})";
    const std::string array = "[" + message + "," + message + "," + message + "]";
    const std::string batch =
        R"({"sentAt":"2024-01-01T00:00:00Z","batch":[)" + message + "," + message + "]}";

    auto single = decide(post("/v1/track?writeKey=limited-key", message));
    EXPECT_EQ(single.action, segment::WebhookAction::Ingest);
    ASSERT_TRUE(single.max_events_per_second.has_value());
    EXPECT_EQ(*single.max_events_per_second, 20);
    EXPECT_EQ(single.event_count, 1u);
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=limited-key", array)).event_count, 3u);
    EXPECT_EQ(decide(post("/v1/batch?writeKey=limited-key", batch)).event_count, 2u);
    // Key in the body: parsed anyway.
    const std::string keyed = R"({"writeKey":"limited-key","batch":[)" + message + "," + message + "]}";
    EXPECT_EQ(decide(post("/v1/batch", keyed)).event_count, 2u);
    // Newline-delimited JSON: one event per line.
    EXPECT_EQ(decide(post("/v1/webhook?writeKey=limited-key", message + "\n" + message + "\n")).event_count,
              2u);
    // A body that is not JSON (dead-lettered, answered 400) costs one.
    auto invalid = decide(post("/v1/webhook?writeKey=limited-key", "[{\"a\":"));
    EXPECT_EQ(invalid.action, segment::WebhookAction::Ingest);
    EXPECT_FALSE(invalid.json.valid);
    EXPECT_EQ(invalid.event_count, 1u);

    // Without a limit: nothing to charge, and the fast path still skips the parse.
    auto open = decide(post("/v1/webhook?writeKey=open-key", array));
    EXPECT_FALSE(open.max_events_per_second.has_value());
    EXPECT_EQ(open.event_count, 0u);
}

// The head check: a source with no room for one event is refused before its body is read; the CORS headers
// come along. Sources without a limit, or with room, pass.
bool no_room(int32_t source_id, int32_t, uint32_t *retry_after_seconds) {
    *retry_after_seconds = 4;
    return source_id != 2;
}

TEST_F(RateLimitDecisionTest, HeadCheckRefusesASourceWithoutRoom) {
    const std::string head =
        "POST /v1/batch?writeKey=limited-key HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
        "Content-Length: 100000\r\n\r\n";
    segment::HttpRequestParser parser;
    parser.feed(head.data(), head.size());
    ASSERT_EQ(parser.state(), segment::HttpParseState::kHeadersComplete);
    context.cors_origins = {"*"};
    EXPECT_FALSE(segment::check_request_head(parser.request(), context).has_value());  // no rate_limit_room
    context.rate_limit_room = no_room;
    const auto refusal = segment::check_request_head(parser.request(), context);
    ASSERT_TRUE(refusal.has_value());
    EXPECT_EQ(refusal->status, 429);
    EXPECT_EQ(refusal->retry_after_seconds.value_or(0), 4u);
    bool cors = false;
    for (const auto &header : refusal->extra_headers) {
        cors = cors || header.first == "Access-Control-Allow-Origin";
    }
    EXPECT_TRUE(cors);

    const std::string open_head =
        "POST /v1/batch?writeKey=open-key HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    segment::HttpRequestParser open_parser;
    open_parser.feed(open_head.data(), open_head.size());
    EXPECT_FALSE(segment::check_request_head(open_parser.request(), context).has_value());
}

}  // namespace
