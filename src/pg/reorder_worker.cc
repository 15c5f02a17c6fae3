// The reorder worker: see reorder_worker.h. Plain C-style code over Postgres.
#include "pg/reorder_worker.h"

#include "pg/deletion_pass.h"
#include "pg/settings.h"
#include "pg/worker.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "access/xlog.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
}

namespace segment_pg {
namespace {

// From version 0.6 on.
const char *const kReorderLookup =
    "SELECT e.extowner, pg_catalog.format('SELECT %I.segment_reorder_next() IS NOT NULL', n.nspname), "
    "NULL::text"
    " FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
    " WHERE e.extname = 'segment_webhook' AND EXISTS (SELECT FROM pg_catalog.pg_proc p"
    " WHERE p.pronamespace = n.oid AND p.proname = 'segment_reorder_next')";

BackgroundWorkerHandle *running = nullptr;  // in the warehouse worker: the last one started
bool start_failure_logged = false;

}  // namespace

void start_reorder_worker() {
    if (!settings.reorder_partitions || RecoveryInProgress()) {
        return;
    }
    pid_t pid;
    if (running != nullptr) {
        const BgwHandleStatus status = GetBackgroundWorkerPid(running, &pid);
        if (status == BGWH_STARTED || status == BGWH_NOT_YET_STARTED) {
            return;  // still at it
        }
        pfree(running);
        running = nullptr;
    }
    BackgroundWorker worker = describe_worker("segment_webhook_reorder_main", "segment_webhook reorder",
                                              "segment_webhook reorder", 0, BGW_NEVER_RESTART);
    worker.bgw_notify_pid = MyProcPid;  // so that GetBackgroundWorkerPid can follow it
    // The handle outlives the warehouse worker's per-turn memory.
    MemoryContext caller = MemoryContextSwitchTo(TopMemoryContext);
    const bool started = RegisterDynamicBackgroundWorker(&worker, &running);
    MemoryContextSwitchTo(caller);
    if (!started) {
        running = nullptr;
        if (!start_failure_logged) {
            ereport(LOG,
                    (errmsg("segment_webhook: could not start the reorder worker: no background worker "
                            "slot is free"),
                     errhint("Raise max_worker_processes; it is tried again after the next maintenance.")));
            start_failure_logged = true;
        }
        return;
    }
    start_failure_logged = false;
}

}  // namespace segment_pg

extern "C" PGDLLEXPORT void segment_webhook_reorder_main(Datum) {
    using namespace segment_pg;
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(settings.database, nullptr, 0);
    pgstat_report_appname("segment_webhook reorder");
    MemoryContext worker_context =
        AllocSetContextCreate(TopMemoryContext, "segment_webhook reorder", ALLOCSET_DEFAULT_SIZES);
    MemoryContextSwitchTo(worker_context);
    for (;;) {
        volatile bool reordered = false;
        bool absent = true;
        PG_TRY();
        { reordered = call_as_owner(kReorderLookup, &absent); }
        PG_CATCH();
        {
            MemoryContextSwitchTo(worker_context);
            ErrorData *error = CopyErrorData();
            FlushErrorState();
            AbortCurrentTransaction();
            // segment_events in use at the swap is expected now and then; anything else is worth a warning.
            ereport(error->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ? LOG : WARNING,
                    (errcode(error->sqlerrcode),
                     errmsg("segment_webhook: reordering stopped: %s", error->message),
                     errdetail("It starts again after the next maintenance, within an hour.")));
            proc_exit(0);
        }
        PG_END_TRY();
        MemoryContextReset(worker_context);
        if (absent || !reordered) {
            break;
        }
        CHECK_FOR_INTERRUPTS();
    }
    proc_exit(0);
}
