// The shared table of rate-limit buckets. See rate_limit_shared.h. A spinlock guards the whole table: each
// charge looks at no more than kRateLimitProbe slots and calls nothing that can fail or wait, which is what a
// spinlock is for. Time comes from CLOCK_MONOTONIC, one clock for every process of the machine, so that a
// wall-clock step changes nobody's budget.
#include "core/rate_limit.h"
#include "pg/rate_limit_shared.h"

#include <time.h>

#include "pg/postgres_headers.h"

extern "C" {
#include "storage/shmem.h"
#include "storage/spin.h"
}

namespace segment_pg {
namespace {

struct RateLimitTable {
    slock_t lock;
    segment::TokenBucket slots[kRateLimitSlots];
};

RateLimitTable *table = nullptr;

int64 monotonic_us() {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return int64(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
}

}  // namespace

Size rate_limit_shared_size() {
    return MAXALIGN(sizeof(RateLimitTable));
}

void attach_rate_limit_table() {
    bool found;
    table = static_cast<RateLimitTable *>(
        ShmemInitStruct("segment_webhook rate limits", sizeof(RateLimitTable), &found));
    if (!found) {
        SpinLockInit(&table->lock);
        memset(table->slots, 0, sizeof table->slots);  // source_id 0: every slot free
    }
}

bool charge_rate_limit(int32 source_id, int32 events_per_second, uint64 events, uint32 *retry_after_seconds) {
    *retry_after_seconds = 0;
    if (table == nullptr) {
        return true;
    }
    const int64 now = monotonic_us();
    SpinLockAcquire(&table->lock);
    const segment::RateLimitVerdict verdict =
        segment::charge_events(table->slots, kRateLimitSlots, source_id, events_per_second, events, now);
    SpinLockRelease(&table->lock);
    *retry_after_seconds = verdict.retry_after_seconds;
    return verdict.admitted;
}

bool rate_limit_room(int32 source_id, int32 events_per_second, uint32 *retry_after_seconds) {
    *retry_after_seconds = 0;
    if (table == nullptr) {
        return true;
    }
    const int64 now = monotonic_us();
    SpinLockAcquire(&table->lock);
    const segment::RateLimitVerdict verdict =
        segment::peek_one_event(table->slots, kRateLimitSlots, source_id, events_per_second, now);
    SpinLockRelease(&table->lock);
    *retry_after_seconds = verdict.retry_after_seconds;
    return verdict.admitted;
}

void refund_rate_limit(int32 source_id, uint64 events) {
    if (table == nullptr) {
        return;
    }
    const int64 now = monotonic_us();
    SpinLockAcquire(&table->lock);
    segment::refund_events(table->slots, kRateLimitSlots, source_id, events, now);
    SpinLockRelease(&table->lock);
}

}  // namespace segment_pg
