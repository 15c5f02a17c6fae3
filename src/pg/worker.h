// The HTTP ingest background worker's entry point and its registration from _PG_init.
#pragma once

#include "pg/postgres_headers.h"

extern "C" PGDLLEXPORT void segment_webhook_worker_main(Datum argument);

namespace segment_pg {

// Registers segment_webhook.workers workers; only possible while shared_preload_libraries is processed.
void register_workers();

}  // namespace segment_pg
