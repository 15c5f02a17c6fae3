// Shared state between the ingest workers and the backends that change segment_sources. See shared.h.
// The trigger only marks the transaction; the bump and the wake-up happen in a commit callback, after the
// change is visible, so a worker never re-reads too early and misses it.
#include "pg/shared.h"
#include "pg/rate_limit_shared.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "commands/trigger.h"
#include "funcapi.h"
#include "utils/tuplestore.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
}

namespace segment_pg {
namespace {

constexpr int kMaxWorkers = 64;

struct WorkerStats {
    pg_atomic_uint32 pid;
    pg_atomic_uint64 started_at;  // TimestampTz
    pg_atomic_uint64 last_commit_at;
    pg_atomic_uint64 open_connections;
    pg_atomic_uint64 counters[kCounterCount];
};

struct SharedState {
    pg_atomic_uint64 sources_version;
    pg_atomic_uint32 worker_procno[kMaxWorkers];  // pgprocno + 1 of each worker; 0 = none
    WorkerStats stats[kMaxWorkers];
};

SharedState *shared = nullptr;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;
bool sources_changed_in_transaction = false;
bool callback_registered = false;
int my_worker = -1;  // this process's worker number, or -1

void request_shared_memory() {
    if (previous_request_hook) {
        previous_request_hook();
    }
    RequestAddinShmemSpace(MAXALIGN(sizeof(SharedState)));
    RequestAddinShmemSpace(rate_limit_shared_size());
}

void attach_shared_memory() {
    if (previous_startup_hook) {
        previous_startup_hook();
    }
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    shared = static_cast<SharedState *>(ShmemInitStruct("segment_webhook", sizeof(SharedState), &found));
    if (!found) {
        pg_atomic_init_u64(&shared->sources_version, 1);
        for (int i = 0; i < kMaxWorkers; ++i) {
            pg_atomic_init_u32(&shared->worker_procno[i], 0);
            WorkerStats &stats = shared->stats[i];
            pg_atomic_init_u32(&stats.pid, 0);
            pg_atomic_init_u64(&stats.started_at, 0);
            pg_atomic_init_u64(&stats.last_commit_at, 0);
            pg_atomic_init_u64(&stats.open_connections, 0);
            for (int c = 0; c < kCounterCount; ++c) {
                pg_atomic_init_u64(&stats.counters[c], 0);
            }
        }
    }
    attach_rate_limit_table();
    LWLockRelease(AddinShmemInitLock);
}

void wake_workers_at_commit(XactEvent event, void *) {
    if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_COMMIT &&
        event != XACT_EVENT_PARALLEL_ABORT) {
        return;
    }
    const bool changed = sources_changed_in_transaction;
    sources_changed_in_transaction = false;
    if (!changed || shared == nullptr ||
        (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT)) {
        return;
    }
    pg_atomic_fetch_add_u64(&shared->sources_version, 1);
    for (int i = 0; i < kMaxWorkers; ++i) {
        const uint32 procno = pg_atomic_read_u32(&shared->worker_procno[i]);
        if (procno != 0) {
            SetLatch(&GetPGProcByNumber(procno - 1)->procLatch);
        }
    }
}

}  // namespace

void install_shared_memory_hooks() {
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = request_shared_memory;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = attach_shared_memory;
}

void register_worker_process(int worker_number) {
    if (shared != nullptr && worker_number >= 0 && worker_number < kMaxWorkers) {
        my_worker = worker_number;
        pg_atomic_write_u32(&shared->worker_procno[worker_number], static_cast<uint32>(MyProc->pgprocno) + 1);
        WorkerStats &stats = shared->stats[worker_number];
        pg_atomic_write_u32(&stats.pid, static_cast<uint32>(MyProcPid));
        pg_atomic_write_u64(&stats.started_at, static_cast<uint64>(GetCurrentTimestamp()));
        pg_atomic_write_u64(&stats.open_connections, 0);
    }
}

// Counters survive a worker's restart (they describe the server since it started); only the worker writes
// them.
void add_to_counter(WorkerCounter counter, uint64 amount) {
    if (shared != nullptr && my_worker >= 0) {
        pg_atomic_fetch_add_u64(&shared->stats[my_worker].counters[counter], amount);
    }
}

void set_open_connections(uint64 connections) {
    if (shared != nullptr && my_worker >= 0) {
        pg_atomic_write_u64(&shared->stats[my_worker].open_connections, connections);
    }
}

void set_last_commit(TimestampTz when) {
    if (shared != nullptr && my_worker >= 0) {
        pg_atomic_write_u64(&shared->stats[my_worker].last_commit_at, static_cast<uint64>(when));
    }
}

int worker_slot_count() {
    return kMaxWorkers;
}

bool read_worker_stats(int worker, WorkerStatsSnapshot *out) {
    if (shared == nullptr || worker < 0 || worker >= kMaxWorkers) {
        return false;
    }
    WorkerStats &stats = shared->stats[worker];
    out->started_at = static_cast<TimestampTz>(pg_atomic_read_u64(&stats.started_at));
    if (out->started_at == 0) {
        return false;
    }
    out->pid = pg_atomic_read_u32(&stats.pid);
    out->last_commit_at = static_cast<TimestampTz>(pg_atomic_read_u64(&stats.last_commit_at));
    out->open_connections = pg_atomic_read_u64(&stats.open_connections);
    for (int c = 0; c < kCounterCount; ++c) {
        out->counters[c] = pg_atomic_read_u64(&stats.counters[c]);
    }
    return true;
}

uint64 sources_version() {
    return shared ? pg_atomic_read_u64(&shared->sources_version) : 0;
}

}  // namespace segment_pg

extern "C" {
PG_FUNCTION_INFO_V1(segment_sources_changed);
PG_FUNCTION_INFO_V1(segment_webhook_stats);

// segment_webhook_stats(): one row per worker slot that has run since the server started.
Datum segment_webhook_stats(PG_FUNCTION_ARGS) {
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    InitMaterializedSRF(fcinfo, 0);
    if (segment_pg::shared == nullptr) {
        return Datum(0);  // not preloaded: no workers, no rows
    }
    for (int i = 0; i < segment_pg::kMaxWorkers; ++i) {
        segment_pg::WorkerStats &stats = segment_pg::shared->stats[i];
        const uint64 started = pg_atomic_read_u64(&stats.started_at);
        if (started == 0) {
            continue;
        }
        // One value per column of this version's SQL; an installation not yet updated declares fewer columns,
        // and the tuple takes only those.
        Datum values[5 + segment_pg::kCounterCount];
        bool nulls[5 + segment_pg::kCounterCount] = {false};
        values[0] = Int32GetDatum(i);
        const uint32 pid = pg_atomic_read_u32(&stats.pid);
        values[1] = Int32GetDatum(static_cast<int32>(pid));
        values[2] = TimestampTzGetDatum(static_cast<TimestampTz>(started));
        const uint64 last_commit = pg_atomic_read_u64(&stats.last_commit_at);
        values[3] = TimestampTzGetDatum(static_cast<TimestampTz>(last_commit));
        nulls[3] = last_commit == 0;
        values[4] = Int64GetDatum(static_cast<int64>(pg_atomic_read_u64(&stats.open_connections)));
        for (int c = 0; c < segment_pg::kCounterCount; ++c) {
            values[5 + c] = Int64GetDatum(static_cast<int64>(pg_atomic_read_u64(&stats.counters[c])));
        }
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return Datum(0);
}

// Statement trigger on segment_sources: tells the ingest workers to re-read their sources once this
// transaction commits.
Datum segment_sources_changed(PG_FUNCTION_ARGS) {
    if (!CALLED_AS_TRIGGER(fcinfo)) {
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("segment_sources_changed() must be called as a trigger")));
    }
    if (!segment_pg::callback_registered) {
        RegisterXactCallback(segment_pg::wake_workers_at_commit, nullptr);
        segment_pg::callback_registered = true;
    }
    segment_pg::sources_changed_in_transaction = true;
    return PointerGetDatum(nullptr);
}
}
