// Shared state between the ingest workers and the backends that change segment_sources. See shared.h.
// The trigger only marks the transaction; the bump and the wake-up happen in a commit callback, after the
// change is visible, so a worker never re-reads too early and misses it.
#include "pg/shared.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "commands/trigger.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
}

namespace segment_pg {
namespace {

constexpr int kMaxWorkers = 64;

struct SharedState {
    pg_atomic_uint64 sources_version;
    pg_atomic_uint32 worker_procno[kMaxWorkers];  // pgprocno + 1 of each worker; 0 = none
};

SharedState *shared = nullptr;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;
bool sources_changed_in_transaction = false;
bool callback_registered = false;

void request_shared_memory() {
    if (previous_request_hook) {
        previous_request_hook();
    }
    RequestAddinShmemSpace(MAXALIGN(sizeof(SharedState)));
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
        }
    }
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
        pg_atomic_write_u32(&shared->worker_procno[worker_number], static_cast<uint32>(MyProc->pgprocno) + 1);
    }
}

uint64 sources_version() {
    return shared ? pg_atomic_read_u64(&shared->sources_version) : 0;
}

}  // namespace segment_pg

extern "C" {
PG_FUNCTION_INFO_V1(segment_sources_changed);

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
