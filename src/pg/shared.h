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

}  // namespace segment_pg
