// Token buckets per source and the shared table of them. See rate_limit.h. Integer arithmetic only, every
// product bounded so that nothing overflows whatever the clock or the request says.
#include "core/no_postgres.h"
#include "core/rate_limit.h"

#include <string>

namespace segment {
namespace {

constexpr int64_t kMicro = 1000000;  // tokens per event, and microseconds per second
// A body holds far fewer events than this (each takes at least two bytes); the cap keeps tokens in int64.
constexpr uint64_t kMaxChargedEvents = 1000000000000ULL;

int64_t capacity(int32_t events_per_second) {
    return int64_t(events_per_second) * kMicro;
}

int64_t cost(uint64_t events) {
    if (events == 0) {
        events = 1;
    }
    return int64_t(events < kMaxChargedEvents ? events : kMaxChargedEvents) * kMicro;
}

// ceil(a / b) for a >= 0, b > 0.
int64_t divide_up(int64_t a, int64_t b) {
    return a / b + (a % b != 0 ? 1 : 0);
}

uint32_t hash_source(int32_t source_id) {
    // Fibonacci hashing: consecutive ids (serial) land far apart.
    return static_cast<uint32_t>(static_cast<uint32_t>(source_id) * 2654435769u);
}

}  // namespace

void start_bucket(TokenBucket &bucket, int32_t source_id, int32_t events_per_second,
                  int64_t now_us) noexcept {
    bucket.source_id = source_id;
    bucket.events_per_second = events_per_second;
    bucket.tokens = capacity(events_per_second);
    bucket.updated_us = now_us;
}

void refill_bucket(TokenBucket &bucket, int32_t events_per_second, int64_t now_us) noexcept {
    const int64_t rate = bucket.events_per_second > 0 ? bucket.events_per_second : 1;
    if (now_us > bucket.updated_us) {
        const int64_t missing = capacity(bucket.events_per_second) - bucket.tokens;
        const int64_t elapsed_us = now_us - bucket.updated_us;
        if (missing > 0) {
            // elapsed_us * rate < missing + rate whenever it is computed: no overflow.
            if (elapsed_us >= divide_up(missing, rate)) {
                bucket.tokens = capacity(bucket.events_per_second);
            } else {
                bucket.tokens += elapsed_us * rate;
            }
        }
        bucket.updated_us = now_us;
    }
    if (events_per_second != bucket.events_per_second) {
        bucket.events_per_second = events_per_second;
    }
    if (bucket.tokens > capacity(events_per_second)) {
        bucket.tokens = capacity(events_per_second);
    }
}

RateLimitVerdict take_events(TokenBucket &bucket, int32_t events_per_second, uint64_t events,
                             int64_t now_us) noexcept {
    RateLimitVerdict verdict;
    if (events_per_second <= 0) {
        return verdict;  // not a limit (the column's CHECK forbids it)
    }
    refill_bucket(bucket, events_per_second, now_us);
    const int64_t full = capacity(events_per_second);
    const int64_t price = cost(events);
    if (price <= bucket.tokens || (price > full && bucket.tokens >= full)) {
        bucket.tokens -= price;
        return verdict;
    }
    // It fits once the bucket holds its price, or (larger than the bucket) once the bucket is full again.
    const int64_t wanted = price < full ? price : full;
    const int64_t wait_us = divide_up(wanted - bucket.tokens, events_per_second);
    const int64_t seconds = divide_up(wait_us, kMicro);
    verdict.admitted = false;
    verdict.retry_after_seconds = seconds < 1                     ? 1u
                                  : seconds > int64_t(UINT32_MAX) ? UINT32_MAX
                                                                  : static_cast<uint32_t>(seconds);
    return verdict;
}

bool bucket_full(const TokenBucket &bucket, int64_t now_us) noexcept {
    const int64_t missing = capacity(bucket.events_per_second) - bucket.tokens;
    if (missing <= 0) {
        return true;
    }
    const int64_t rate = bucket.events_per_second > 0 ? bucket.events_per_second : 1;
    return now_us > bucket.updated_us && now_us - bucket.updated_us >= divide_up(missing, rate);
}

RateLimitVerdict charge_events(TokenBucket *slots, size_t slot_count, int32_t source_id,
                               int32_t events_per_second, uint64_t events, int64_t now_us) noexcept {
    if (slots == nullptr || slot_count == 0 || events_per_second <= 0 || source_id == 0) {
        return RateLimitVerdict();
    }
    const size_t window = slot_count < kRateLimitProbe ? slot_count : kRateLimitProbe;
    const size_t start = hash_source(source_id) % slot_count;
    TokenBucket *free_slot = nullptr;
    TokenBucket *idle_slot = nullptr;
    TokenBucket *oldest_slot = nullptr;
    for (size_t i = 0; i < window; ++i) {
        TokenBucket &slot = slots[(start + i) % slot_count];
        if (slot.source_id == source_id) {
            return take_events(slot, events_per_second, events, now_us);
        }
        if (slot.source_id == 0) {
            if (free_slot == nullptr) {
                free_slot = &slot;
            }
        } else if (idle_slot == nullptr && bucket_full(slot, now_us)) {
            idle_slot = &slot;
        } else if (oldest_slot == nullptr || slot.updated_us < oldest_slot->updated_us) {
            oldest_slot = &slot;
        }
    }
    TokenBucket *slot = free_slot ? free_slot : idle_slot ? idle_slot : oldest_slot;
    start_bucket(*slot, source_id, events_per_second, now_us);
    return take_events(*slot, events_per_second, events, now_us);
}

RateLimitVerdict peek_one_event(const TokenBucket *slots, size_t slot_count, int32_t source_id,
                                int32_t events_per_second, int64_t now_us) noexcept {
    if (slots == nullptr || slot_count == 0 || events_per_second <= 0 || source_id == 0) {
        return RateLimitVerdict();
    }
    const size_t window = slot_count < kRateLimitProbe ? slot_count : kRateLimitProbe;
    const size_t start = hash_source(source_id) % slot_count;
    for (size_t i = 0; i < window; ++i) {
        if (slots[(start + i) % slot_count].source_id == source_id) {
            TokenBucket copy = slots[(start + i) % slot_count];
            return take_events(copy, events_per_second, 1, now_us);
        }
    }
    return RateLimitVerdict();  // no bucket yet: a new one is full
}

void refund_events(TokenBucket *slots, size_t slot_count, int32_t source_id, uint64_t events,
                   int64_t now_us) noexcept {
    if (slots == nullptr || slot_count == 0 || source_id == 0) {
        return;
    }
    const size_t window = slot_count < kRateLimitProbe ? slot_count : kRateLimitProbe;
    const size_t start = hash_source(source_id) % slot_count;
    for (size_t i = 0; i < window; ++i) {
        TokenBucket &slot = slots[(start + i) % slot_count];
        if (slot.source_id == source_id) {
            refill_bucket(slot, slot.events_per_second, now_us);
            const int64_t full = capacity(slot.events_per_second);
            slot.tokens = slot.tokens > full - cost(events) ? full : slot.tokens + cost(events);
            return;
        }
    }
}

HttpResponse rate_limited_response(int32_t events_per_second, uint32_t retry_after_seconds) {
    std::string message = "this source may send " + std::to_string(events_per_second) +
                          " events per second (segment_sources.max_events_per_second); retry after " +
                          std::to_string(retry_after_seconds) +
                          (retry_after_seconds == 1 ? " second" : " seconds");
    HttpResponse response = json_error_response(429, "rate_limited", message, false);
    response.retry_after_seconds = retry_after_seconds;
    return response;
}

}  // namespace segment
