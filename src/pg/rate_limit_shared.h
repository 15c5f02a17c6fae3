// The rate-limit buckets of every source with segment_sources.max_events_per_second, in shared memory so that
// all ingest workers spend one budget per source. The arithmetic is src/core/rate_limit.h; this file only
// holds the table and its lock. Without shared memory (library not preloaded: no workers) nothing is limited.
#pragma once

#include "pg/postgres_headers.h"

namespace segment_pg {

// Buckets in the table: sources with a limit beyond this many (more exactly, beyond what fits each one's
// probe window) share slots as rate_limit.h says; a source may then get up to one second's extra burst.
constexpr Size kRateLimitSlots = 4096;

// For the shared-memory hooks of shared.cc: the size to request, and the attach (under AddinShmemInitLock).
Size rate_limit_shared_size();
void attach_rate_limit_table();

// Charges a request of `events` events to the source's bucket: true when it is admitted (always when there is
// no table), else false with the seconds until it would fit. Never throws and never raises a Postgres error
// (a spinlock is held for a few dozen instructions). Plain types only, so that this header needs no core
// header and can come after the Postgres headers.
bool charge_rate_limit(int32 source_id, int32 events_per_second, uint64 events, uint32 *retry_after_seconds);
// Whether the source has room for one event now, charging nothing (else false with the seconds until it has):
// the head check. Same guarantees as charge_rate_limit, whose signature it shares with
// WebhookContext::rate_limit_room.
bool rate_limit_room(int32 source_id, int32 events_per_second, uint32 *retry_after_seconds);
// Gives back what charge_rate_limit took for a request that was then not stored (see refund_events).
void refund_rate_limit(int32 source_id, uint64 events);

}  // namespace segment_pg
