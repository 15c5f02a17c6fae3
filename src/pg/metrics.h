// The Prometheus metrics of the server, kept in shared memory so that they survive a worker's restart (they
// describe the server since it started): requests by endpoint and status, events stored, duplicates and
// dead letters by source (and reason), batch commit latency and size histograms, and worker starts. The
// ingest workers write them (atomics; a lock only to give a new source or reason its slot); the admin
// listener reads them for GET /metrics and the debugger page.
//
// Per-source series are bounded: kMetricSources sources and kMetricReasons reasons get series of their own;
// the ones beyond are counted under source "(other)" and reason "other". Nothing is ever lost from the
// totals.
#pragma once

#include "core/admin_http.h"

#include <string>

#include "pg/postgres_headers.h"
#include "pg/shared.h"

namespace segment_pg {

constexpr int kMetricSources = 256;
constexpr int kMetricReasons = 32;  // the last slot is "other"
constexpr int kMetricNameBytes = 128;
constexpr int kLatencyBuckets = 13;
constexpr int kBatchSizeBuckets = 13;
constexpr int kStatusCodes = 500;  // 100 .. 599
constexpr int kEndpoints = static_cast<int>(segment::RequestEndpoint::Count);
constexpr int kMaxWorkerSlots = 64;

// Installs the shared-memory hooks of the metrics; call from _PG_init while preloading.
void install_metrics_shared_memory();

// Writers (the ingest workers). Each is a no-op without shared memory.
void metrics_worker_started(int worker_number);
void metrics_count_request(segment::RequestEndpoint endpoint, int status);
void metrics_observe_batch(int64 commit_microseconds, int messages);
void metrics_count_events(int32 source_id, const char *source_name, uint64 stored, uint64 duplicates);
void metrics_count_rejection(int32 source_id, const char *source_name, const char *reason);

// A copy of everything, taken at one moment (palloc'd; plain data).
struct MetricsSource {
    int32 source_id;  // -1: "(other)"
    char name[kMetricNameBytes];
    uint64 stored, duplicates;
    uint64 rejected[kMetricReasons];
};
struct MetricsSnapshot {
    bool available;  // false without shared memory (library not preloaded)
    TimestampTz taken_at;
    uint64 requests[kEndpoints][kStatusCodes];
    uint64 latency[kLatencyBuckets + 1];
    uint64 latency_sum_us;
    uint64 batch_size[kBatchSizeBuckets + 1];
    uint64 batch_size_sum;
    int reason_count;
    char reasons[kMetricReasons][64];
    int source_count;  // sources[source_count] is "(other)"
    MetricsSource sources[kMetricSources + 1];
    uint64 worker_starts[kMaxWorkerSlots];
    bool worker_seen[kMaxWorkerSlots];
    WorkerStatsSnapshot workers[kMaxWorkerSlots];
};
MetricsSnapshot *take_metrics_snapshot();

// Formatting (C++: call inside run_cpp). The exposition, and the sources' counters as a JSON object keyed by
// source id for the debugger page.
std::string format_metrics(const MetricsSnapshot &snapshot);
std::string format_source_counters_json(const MetricsSnapshot &snapshot);

}  // namespace segment_pg
