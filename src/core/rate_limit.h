// Per-source rate limits (segment_sources.max_events_per_second): a token bucket per source, counted in
// events, and the fixed-size table of buckets that all ingest workers share. Pure arithmetic with the time
// passed in, so that it is unit-tested without a clock; src/pg/rate_limit_shared.cc keeps the table in shared
// memory and holds its lock around every call here. Nothing here allocates, throws or blocks: it runs under a
// spinlock.
#pragma once
#include "core/no_postgres.h"

#include <cstddef>
#include <cstdint>

#include "core/http_response.h"

namespace segment {

// One source's bucket. Plain data (it lives in shared memory, zeroed at start): source_id 0 is a free slot.
// The bucket holds at most one second's budget (`events_per_second` events) and refills continuously at that
// rate. Tokens are counted in millionths of an event, so that a refill after any number of microseconds is
// exact; they go negative when a request larger than the whole bucket was admitted (see take_events).
struct TokenBucket {
    int32_t source_id;
    int32_t events_per_second;
    int64_t tokens;      // millionths of an event; negative: in debt
    int64_t updated_us;  // when `tokens` was last brought up to date (a monotonic clock, microseconds)
};

struct RateLimitVerdict {
    bool admitted = true;
    uint32_t retry_after_seconds =
        0;  // when refused: whole seconds until the bucket allows the request, >= 1
};

// A full bucket for `source_id` at `now_us`.
void start_bucket(TokenBucket &bucket, int32_t source_id, int32_t events_per_second, int64_t now_us) noexcept;

// Adds what has flowed in since the bucket was last updated, up to one second's budget. A new
// `events_per_second` applies from now on (what flowed in until now flowed at the old rate), and the bucket
// never holds more than the new second's budget.
void refill_bucket(TokenBucket &bucket, int32_t events_per_second, int64_t now_us) noexcept;

// Takes `events` from the bucket if it holds them. A request of more events than one second's budget could
// never fit: it is admitted when the bucket is full, and the bucket goes into debt, so that the source's
// long-run rate stays within its limit (the request after it waits until the debt is paid off and the bucket
// is full). A request of 0 events costs one: every request costs a transaction. Refused: how long until it
// would fit.
RateLimitVerdict take_events(TokenBucket &bucket, int32_t events_per_second, uint64_t events,
                             int64_t now_us) noexcept;

// Whether the bucket is full at `now_us` (then it is in the state a new bucket would be: forgetting it loses
// nothing).
bool bucket_full(const TokenBucket &bucket, int64_t now_us) noexcept;

// The shared table: `slot_count` buckets, a source looked up by open addressing within a window of
// kRateLimitProbe slots from its hash. A source without a bucket in its window takes a free slot, else the
// slot of a full bucket (an idle source: nothing is lost), else the least recently used one; only in that
// last case does the evicted source forget its state, and its next request starts from a full bucket (it may
// then send up to one second's budget more than its limit). That takes more than kRateLimitProbe limited
// sources sending within the same second in one window, which a table much larger than the number of limited
// sources avoids.
constexpr size_t kRateLimitProbe = 16;

// Charges `events` to `source_id`'s bucket (limited to `events_per_second`), creating it when needed.
RateLimitVerdict charge_events(TokenBucket *slots, size_t slot_count, int32_t source_id,
                               int32_t events_per_second, uint64_t events, int64_t now_us) noexcept;

// What charging one event would answer now, without charging anything: for refusing a request from its head,
// before its body is read, when not even one event fits (whatever the body holds, it would be refused).
RateLimitVerdict peek_one_event(const TokenBucket *slots, size_t slot_count, int32_t source_id,
                                int32_t events_per_second, int64_t now_us) noexcept;

// Gives back events charged to a request that was not stored after all (its batch could not commit): the
// sender retries it, and the retry should not pay twice. No bucket (it was evicted meanwhile): nothing to do.
void refund_events(TokenBucket *slots, size_t slot_count, int32_t source_id, uint64_t events,
                   int64_t now_us) noexcept;

// 429 rate_limited with Retry-After and the JSON error body.
HttpResponse rate_limited_response(int32_t events_per_second, uint32_t retry_after_seconds);

}  // namespace segment
