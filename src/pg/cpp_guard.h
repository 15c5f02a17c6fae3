// The one crossing from Postgres into C++ that may throw. A C++ exception must never unwind through a
// Postgres frame, and ereport(ERROR)'s longjmp must never skip a C++ destructor, so: run the C++ work inside
// a try, copy any exception's message into a plain buffer, leave the catch block, and only then raise the
// Postgres error.
#pragma once

#include <cstdio>
#include <exception>
#include <new>
#include <utility>

#include "pg/postgres_headers.h"

namespace segment_pg {

template <typename Work>
auto run_cpp(const char *what, Work &&work) -> decltype(work()) {
    char message[512];
    bool failed = false;
    try {
        return std::forward<Work>(work)();
    } catch (const std::bad_alloc &) {
        snprintf(message, sizeof message, "out of memory");
        failed = true;
    } catch (const std::exception &error) {
        snprintf(message, sizeof message, "%s", error.what());
        failed = true;
    } catch (...) {
        snprintf(message, sizeof message, "unknown C++ exception");
        failed = true;
    }
    // Outside every catch block: no C++ exception object or frame is live across the longjmp.
    if (failed) {
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("%s failed: %s", what, message)));
    }
    pg_unreachable();
}

}  // namespace segment_pg
