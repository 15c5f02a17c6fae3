// Shared memory of the library (only when preloaded): which processes are ingest workers, and a version of
// segment_sources that a trigger bumps at COMMIT so the workers re-read their sources at once instead of
// waiting for their periodic refresh.
#pragma once

#include "pg/postgres_headers.h"

namespace segment_pg {

// Installs the shared-memory hooks; call from _PG_init while preloading.
void install_shared_memory_hooks();

// Records the calling worker's process so that source changes can wake it.
void register_worker_process(int worker_number);

// The current version of segment_sources (0 when there is no shared memory).
uint64 sources_version();

// Counters of one worker, readable from SQL through segment_webhook_stats(). Only the worker writes its own.
enum WorkerCounter {
    kRequests,          // HTTP requests answered
    kRequestErrors,     // answered with 4xx (not counting database failures)
    kEventsStored,      // new events committed
    kDuplicates,        // messages already stored
    kRejected,          // messages or bodies written to segment_rejected
    kBatchesCommitted,  // transactions committed
    kBatchesFailed,     // batches answered 503 because the database could not commit
    kBytesReceived,     // request bodies, as received
    kRateLimited,       // answered 429 rate_limited (not counted in kRequestErrors)
    kCounterCount
};
void add_to_counter(WorkerCounter counter, uint64 amount = 1);
void set_open_connections(uint64 connections);
void set_last_commit(TimestampTz when);

// What one worker slot has recorded (for the metrics); false when the slot never ran a worker or there is no
// shared memory. Slots are numbered 0 .. worker_slot_count() - 1.
struct WorkerStatsSnapshot {
    uint32 pid;
    TimestampTz started_at;
    TimestampTz last_commit_at;  // 0: never
    uint64 open_connections;
    uint64 counters[kCounterCount];
};
int worker_slot_count();
bool read_worker_stats(int worker, WorkerStatsSnapshot *out);

}  // namespace segment_pg
