// The HTTP ingest background worker's entry point and its registration from _PG_init.
#pragma once

#include "pg/postgres_headers.h"

extern "C" {
#include "postmaster/bgworker.h"
}

extern "C" PGDLLEXPORT void segment_webhook_worker_main(Datum argument);

namespace segment_pg {

// Registers segment_webhook.workers workers; only possible while shared_preload_libraries is processed.
void register_workers();

// One database-connected worker of this library that starts once recovery is over: `function` is its entry
// point, `name` and `type` what pg_stat_activity shows, `restart_seconds` its bgw_restart_time.
BackgroundWorker describe_worker(const char *function, const char *name, const char *type, int argument,
                                 int restart_seconds);

}  // namespace segment_pg
