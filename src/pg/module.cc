// The library's entry point. The SQL functions work whether or not the library is preloaded; the HTTP
// workers exist only when it is loaded through shared_preload_libraries.
#include "pg/metrics.h"
#include "pg/settings.h"
#include "pg/shared.h"
#include "pg/worker.h"

#include <cstdio>

#include "pg/postgres_headers.h"

extern "C" {
#include "postmaster/bgworker.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

namespace segment_pg {

BackgroundWorker describe_worker(const char *function, const char *name, const char *type, int argument,
                                 int restart_seconds) {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = restart_seconds;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "segment_webhook");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
    snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name);
    snprintf(worker.bgw_type, BGW_MAXLEN, "%s", type);
    worker.bgw_main_arg = Int32GetDatum(argument);
    worker.bgw_notify_pid = 0;
    return worker;
}

namespace {

void register_worker(const char *function, const char *name, const char *type, int argument,
                     int restart_seconds) {
    BackgroundWorker worker = describe_worker(function, name, type, argument, restart_seconds);
    RegisterBackgroundWorker(&worker);
}

}  // namespace

void register_workers() {
    for (int i = 0; i < settings.workers; ++i) {
        char name[BGW_MAXLEN];
        snprintf(name, sizeof name, "segment_webhook worker %d", i);
        register_worker("segment_webhook_worker_main", name, "segment_webhook worker", i, 1);
    }
    // The warehouse worker keeps the warehouse relations up to date (it idles while segment_webhook.warehouse
    // is off or the extension is not installed).
    register_worker("segment_webhook_warehouse_main", "segment_webhook warehouse",
                    "segment_webhook warehouse", 0, 10);
}

}  // namespace segment_pg

void _PG_init(void) {
    segment_pg::define_settings();
    if (process_shared_preload_libraries_in_progress) {
        segment_pg::install_shared_memory_hooks();
        segment_pg::install_metrics_shared_memory();
        // pg_upgrade runs the server in binary-upgrade mode: no worker may write to it.
        if (!IsBinaryUpgrade) {
            segment_pg::register_workers();
        }
    }
}
