// The library's entry point. The SQL functions work whether or not the library is preloaded; the HTTP worker
// (registered from _PG_init) needs shared_preload_libraries.
#include "pg/postgres_headers.h"

extern "C" {

PG_MODULE_MAGIC;

void _PG_init(void);

void _PG_init(void) {}

}  // extern "C"
