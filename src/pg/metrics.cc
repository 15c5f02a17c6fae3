// The metrics' shared memory: its layout, the workers' writes and the snapshot GET /metrics formats. See
// metrics.h. The counters are atomics written without a lock; the source and reason tables take an LWLock
// only to give a new name its slot, or to copy the names out.
#include "pg/metrics.h"
#include "core/prometheus.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "pg/postgres_headers.h"

extern "C" {
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

namespace segment_pg {
namespace {

// Upper bounds of the histogram buckets (the last bucket, +Inf, is implicit).
constexpr double kLatencyBounds[kLatencyBuckets] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                    0.25,  0.5,    1,     2.5,  5,     10};
constexpr double kBatchSizeBounds[kBatchSizeBuckets] = {1,   2,   5,    10,   25,   50,   100,
                                                        250, 500, 1000, 2500, 5000, 10000};
constexpr const char *kOtherSource = "(other)";
constexpr const char *kOtherReason = "other";
constexpr const char *kTrancheName = "segment_webhook metrics";

struct SourceSlot {
    int32 source_id;  // 0: free
    char name[kMetricNameBytes];
    pg_atomic_uint64 stored, duplicates;
    pg_atomic_uint64 rejected[kMetricReasons];
};

struct MetricsShared {
    LWLock *lock;  // source and reason slots (and their names)
    pg_atomic_uint64 requests[kEndpoints][kStatusCodes];
    pg_atomic_uint64 latency[kLatencyBuckets + 1];
    pg_atomic_uint64 latency_sum_us;
    pg_atomic_uint64 batch_size[kBatchSizeBuckets + 1];
    pg_atomic_uint64 batch_size_sum;
    pg_atomic_uint64 worker_starts[kMaxWorkerSlots];
    int reason_count;
    char reasons[kMetricReasons][64];
    int source_count;
    SourceSlot sources[kMetricSources + 1];  // [kMetricSources]: every source beyond the table
};

MetricsShared *metrics = nullptr;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

void init_slot(SourceSlot &slot) {
    slot.source_id = 0;
    slot.name[0] = '\0';
    pg_atomic_init_u64(&slot.stored, 0);
    pg_atomic_init_u64(&slot.duplicates, 0);
    for (int r = 0; r < kMetricReasons; ++r) {
        pg_atomic_init_u64(&slot.rejected[r], 0);
    }
}

void request_metrics_memory() {
    if (previous_request_hook) {
        previous_request_hook();
    }
    RequestAddinShmemSpace(MAXALIGN(sizeof(MetricsShared)));
    RequestNamedLWLockTranche(kTrancheName, 1);
}

void attach_metrics_memory() {
    if (previous_startup_hook) {
        previous_startup_hook();
    }
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    metrics = static_cast<MetricsShared *>(
        ShmemInitStruct("segment_webhook metrics", sizeof(MetricsShared), &found));
    if (!found) {
        metrics->lock = &GetNamedLWLockTranche(kTrancheName)->lock;
        for (int e = 0; e < kEndpoints; ++e) {
            for (int s = 0; s < kStatusCodes; ++s) {
                pg_atomic_init_u64(&metrics->requests[e][s], 0);
            }
        }
        for (int b = 0; b <= kLatencyBuckets; ++b) {
            pg_atomic_init_u64(&metrics->latency[b], 0);
        }
        for (int b = 0; b <= kBatchSizeBuckets; ++b) {
            pg_atomic_init_u64(&metrics->batch_size[b], 0);
        }
        pg_atomic_init_u64(&metrics->latency_sum_us, 0);
        pg_atomic_init_u64(&metrics->batch_size_sum, 0);
        for (int w = 0; w < kMaxWorkerSlots; ++w) {
            pg_atomic_init_u64(&metrics->worker_starts[w], 0);
        }
        metrics->reason_count = 0;
        metrics->source_count = 0;
        for (int i = 0; i <= kMetricSources; ++i) {
            init_slot(metrics->sources[i]);
        }
        metrics->sources[kMetricSources].source_id = -1;
        snprintf(metrics->sources[kMetricSources].name, kMetricNameBytes, "%s", kOtherSource);
    }
    LWLockRelease(AddinShmemInitLock);
}

// The slot of a source (claimed on first sight, its name kept current), or the "(other)" slot when the table
// is full. Caller holds the lock exclusively.
SourceSlot &source_slot(int32 source_id, const char *name) {
    for (int i = 0; i < metrics->source_count; ++i) {
        SourceSlot &slot = metrics->sources[i];
        if (slot.source_id == source_id) {
            if (name != nullptr && strncmp(slot.name, name, kMetricNameBytes - 1) != 0) {
                strlcpy(slot.name, name, kMetricNameBytes);  // renamed
            }
            return slot;
        }
    }
    if (metrics->source_count >= kMetricSources) {
        return metrics->sources[kMetricSources];
    }
    SourceSlot &slot = metrics->sources[metrics->source_count];
    slot.source_id = source_id;
    if (name != nullptr) {
        strlcpy(slot.name, name, kMetricNameBytes);
    } else {
        snprintf(slot.name, kMetricNameBytes, "source %d", source_id);
    }
    // Published last: a reader that sees the count sees the slot filled in (both under the lock anyway).
    ++metrics->source_count;
    return slot;
}

int reason_slot(const char *reason) {
    for (int r = 0; r < metrics->reason_count; ++r) {
        if (strncmp(metrics->reasons[r], reason, sizeof metrics->reasons[r]) == 0) {
            return r;
        }
    }
    if (metrics->reason_count >= kMetricReasons - 1) {
        return kMetricReasons - 1;  // "other"
    }
    strlcpy(metrics->reasons[metrics->reason_count], reason, sizeof metrics->reasons[0]);
    return metrics->reason_count++;
}

}  // namespace

void install_metrics_shared_memory() {
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = request_metrics_memory;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = attach_metrics_memory;
}

void metrics_worker_started(int worker_number) {
    if (metrics != nullptr && worker_number >= 0 && worker_number < kMaxWorkerSlots) {
        pg_atomic_fetch_add_u64(&metrics->worker_starts[worker_number], 1);
    }
}

void metrics_count_request(segment::RequestEndpoint endpoint, int status) {
    const int e = static_cast<int>(endpoint);
    if (metrics != nullptr && e >= 0 && e < kEndpoints) {
        const int s = status >= 100 && status <= 599 ? status - 100 : 500 - 100;
        pg_atomic_fetch_add_u64(&metrics->requests[e][s], 1);
    }
}

void metrics_observe_batch(int64 commit_microseconds, int messages) {
    if (metrics == nullptr) {
        return;
    }
    const double seconds = static_cast<double>(commit_microseconds) / 1e6;
    int b = 0;
    while (b < kLatencyBuckets && seconds > kLatencyBounds[b]) {
        ++b;
    }
    pg_atomic_fetch_add_u64(&metrics->latency[b], 1);
    pg_atomic_fetch_add_u64(&metrics->latency_sum_us, static_cast<uint64>(Max(commit_microseconds, 0)));
    b = 0;
    while (b < kBatchSizeBuckets && messages > kBatchSizeBounds[b]) {
        ++b;
    }
    pg_atomic_fetch_add_u64(&metrics->batch_size[b], 1);
    pg_atomic_fetch_add_u64(&metrics->batch_size_sum, static_cast<uint64>(Max(messages, 0)));
}

void metrics_count_events(int32 source_id, const char *source_name, uint64 stored, uint64 duplicates) {
    if (metrics == nullptr || (stored == 0 && duplicates == 0)) {
        return;
    }
    LWLockAcquire(metrics->lock, LW_EXCLUSIVE);
    SourceSlot &slot = source_slot(source_id, source_name);
    LWLockRelease(metrics->lock);
    pg_atomic_fetch_add_u64(&slot.stored, stored);
    pg_atomic_fetch_add_u64(&slot.duplicates, duplicates);
}

void metrics_count_rejection(int32 source_id, const char *source_name, const char *reason) {
    if (metrics == nullptr) {
        return;
    }
    LWLockAcquire(metrics->lock, LW_EXCLUSIVE);
    SourceSlot &slot = source_slot(source_id, source_name);
    const int r = reason_slot(reason != nullptr ? reason : kOtherReason);
    LWLockRelease(metrics->lock);
    pg_atomic_fetch_add_u64(&slot.rejected[r], 1);
}

MetricsSnapshot *take_metrics_snapshot() {
    MetricsSnapshot *snapshot = static_cast<MetricsSnapshot *>(palloc0(sizeof(MetricsSnapshot)));
    snapshot->taken_at = GetCurrentTimestamp();
    if (metrics == nullptr) {
        return snapshot;
    }
    snapshot->available = true;
    for (int e = 0; e < kEndpoints; ++e) {
        for (int s = 0; s < kStatusCodes; ++s) {
            snapshot->requests[e][s] = pg_atomic_read_u64(&metrics->requests[e][s]);
        }
    }
    for (int b = 0; b <= kLatencyBuckets; ++b) {
        snapshot->latency[b] = pg_atomic_read_u64(&metrics->latency[b]);
    }
    snapshot->latency_sum_us = pg_atomic_read_u64(&metrics->latency_sum_us);
    for (int b = 0; b <= kBatchSizeBuckets; ++b) {
        snapshot->batch_size[b] = pg_atomic_read_u64(&metrics->batch_size[b]);
    }
    snapshot->batch_size_sum = pg_atomic_read_u64(&metrics->batch_size_sum);
    LWLockAcquire(metrics->lock, LW_SHARED);
    snapshot->reason_count = metrics->reason_count;
    memcpy(snapshot->reasons, metrics->reasons, sizeof snapshot->reasons);
    snapshot->source_count = metrics->source_count;
    for (int i = 0; i <= kMetricSources; ++i) {
        if (i < metrics->source_count || i == kMetricSources) {
            const SourceSlot &slot = metrics->sources[i];
            MetricsSource &copy = snapshot->sources[i < metrics->source_count ? i : metrics->source_count];
            copy.source_id = slot.source_id;
            memcpy(copy.name, slot.name, sizeof copy.name);
        }
    }
    LWLockRelease(metrics->lock);
    for (int i = 0; i <= snapshot->source_count; ++i) {
        SourceSlot &slot = metrics->sources[i < snapshot->source_count ? i : kMetricSources];
        MetricsSource &copy = snapshot->sources[i];
        copy.stored = pg_atomic_read_u64(&slot.stored);
        copy.duplicates = pg_atomic_read_u64(&slot.duplicates);
        for (int r = 0; r < kMetricReasons; ++r) {
            copy.rejected[r] = pg_atomic_read_u64(&slot.rejected[r]);
        }
    }
    for (int w = 0; w < kMaxWorkerSlots && w < worker_slot_count(); ++w) {
        snapshot->worker_starts[w] = pg_atomic_read_u64(&metrics->worker_starts[w]);
        snapshot->worker_seen[w] = read_worker_stats(w, &snapshot->workers[w]);
    }
    return snapshot;
}

namespace {

// TimestampTz (microseconds since 2000-01-01) as Unix seconds.
double unix_seconds(TimestampTz when) {
    return static_cast<double>(when) / 1e6 +
           static_cast<double>((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY);
}

std::string reason_name(const MetricsSnapshot &snapshot, int r) {
    return r < snapshot.reason_count && r < kMetricReasons - 1 ? std::string(snapshot.reasons[r])
                                                               : kOtherReason;
}

}  // namespace

std::string format_metrics(const MetricsSnapshot &snapshot) {
    segment::PrometheusWriter out;
    out.family("segment_webhook_requests_total", "counter",
               "HTTP requests answered, by endpoint and status code (the admin listener's too).");
    for (int e = 0; e < kEndpoints; ++e) {
        const std::string endpoint(segment::request_endpoint_label(static_cast<segment::RequestEndpoint>(e)));
        for (int s = 0; s < kStatusCodes; ++s) {
            if (snapshot.requests[e][s] != 0) {
                const std::string code = std::to_string(s + 100);
                out.sample("segment_webhook_requests_total", {{"endpoint", endpoint}, {"code", code}},
                           snapshot.requests[e][s]);
            }
        }
    }
    const int sources = snapshot.source_count + 1;  // with "(other)"
    out.family("segment_webhook_events_stored_total", "counter", "Events stored (committed), by source.");
    for (int i = 0; i < sources; ++i) {
        const MetricsSource &source = snapshot.sources[i];
        if (i < snapshot.source_count || source.stored != 0) {
            out.sample("segment_webhook_events_stored_total", {{"source", source.name}}, source.stored);
        }
    }
    out.family("segment_webhook_events_duplicate_total", "counter",
               "Messages not stored because their messageId was already stored, by source.");
    for (int i = 0; i < sources; ++i) {
        const MetricsSource &source = snapshot.sources[i];
        if (i < snapshot.source_count || source.duplicates != 0) {
            out.sample("segment_webhook_events_duplicate_total", {{"source", source.name}},
                       source.duplicates);
        }
    }
    out.family("segment_webhook_events_rejected_total", "counter",
               "Messages or bodies written to segment_rejected (the dead letter), by source and reason.");
    for (int i = 0; i < sources; ++i) {
        const MetricsSource &source = snapshot.sources[i];
        for (int r = 0; r < kMetricReasons; ++r) {
            if (source.rejected[r] != 0) {
                const std::string reason = reason_name(snapshot, r);
                out.sample("segment_webhook_events_rejected_total",
                           {{"source", source.name}, {"reason", reason}}, source.rejected[r]);
            }
        }
    }
    out.family("segment_webhook_batch_commit_seconds", "histogram",
               "Time from the start of a batch's transaction to its COMMIT, for committed batches.");
    out.histogram("segment_webhook_batch_commit_seconds", {},
                  std::vector<double>(std::begin(kLatencyBounds), std::end(kLatencyBounds)),
                  std::vector<uint64_t>(std::begin(snapshot.latency), std::end(snapshot.latency)),
                  static_cast<double>(snapshot.latency_sum_us) / 1e6);
    out.family("segment_webhook_batch_messages", "histogram", "Messages per committed batch.");
    out.histogram("segment_webhook_batch_messages", {},
                  std::vector<double>(std::begin(kBatchSizeBounds), std::end(kBatchSizeBounds)),
                  std::vector<uint64_t>(std::begin(snapshot.batch_size), std::end(snapshot.batch_size)),
                  static_cast<double>(snapshot.batch_size_sum));

    uint64 bytes = 0, failed = 0;
    TimestampTz last_commit = 0;
    for (int w = 0; w < kMaxWorkerSlots; ++w) {
        if (snapshot.worker_seen[w]) {
            bytes += snapshot.workers[w].counters[kBytesReceived];
            failed += snapshot.workers[w].counters[kBatchesFailed];
            last_commit = Max(last_commit, snapshot.workers[w].last_commit_at);
        }
    }
    out.family("segment_webhook_batches_failed_total", "counter",
               "Batches answered 503 because the database could not commit them.");
    out.sample("segment_webhook_batches_failed_total", {}, failed);
    out.family("segment_webhook_received_bytes_total", "counter",
               "Request bodies received, in bytes, as sent.");
    out.sample("segment_webhook_received_bytes_total", {}, bytes);
    out.family("segment_webhook_open_connections", "gauge", "Open HTTP connections of each ingest worker.");
    for (int w = 0; w < kMaxWorkerSlots; ++w) {
        if (snapshot.worker_seen[w]) {
            const std::string worker = std::to_string(w);
            out.sample("segment_webhook_open_connections", {{"worker", worker}},
                       snapshot.workers[w].open_connections);
        }
    }
    out.family("segment_webhook_worker_restarts_total", "counter",
               "Times an ingest worker was started again since the server started.");
    for (int w = 0; w < kMaxWorkerSlots; ++w) {
        if (snapshot.worker_seen[w]) {
            const std::string worker = std::to_string(w);
            const uint64 starts = snapshot.worker_starts[w];
            out.sample("segment_webhook_worker_restarts_total", {{"worker", worker}},
                       starts > 0 ? starts - 1 : 0);
        }
    }
    if (last_commit != 0) {
        out.family("segment_webhook_last_commit_timestamp_seconds", "gauge",
                   "Unix time of the last committed batch of any worker.");
        out.sample("segment_webhook_last_commit_timestamp_seconds", {}, unix_seconds(last_commit));
        out.family("segment_webhook_last_commit_age_seconds", "gauge",
                   "Seconds since the last committed batch of any worker.");
        out.sample("segment_webhook_last_commit_age_seconds", {},
                   Max(0.0, static_cast<double>(snapshot.taken_at - last_commit) / 1e6));
    }
    return out.text();
}

std::string format_source_counters_json(const MetricsSnapshot &snapshot) {
    std::string json = "{";
    for (int i = 0; i < snapshot.source_count; ++i) {
        const MetricsSource &source = snapshot.sources[i];
        uint64 rejected = 0;
        for (int r = 0; r < kMetricReasons; ++r) {
            rejected += source.rejected[r];
        }
        if (i > 0) {
            json += ',';
        }
        json += "\"" + std::to_string(source.source_id) + "\":{\"stored\":" + std::to_string(source.stored) +
                ",\"duplicates\":" + std::to_string(source.duplicates) +
                ",\"rejected\":" + std::to_string(rejected) + "}";
    }
    json += "}";
    return json;
}

}  // namespace segment_pg
