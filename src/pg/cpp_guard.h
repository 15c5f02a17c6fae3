// The one crossing from Postgres into C++ that may throw: every call from a Postgres frame into code that may
// throw (the core, the standard library's containers and strings) is wrapped in run_cpp(...); `grep -n
// run_cpp src/pg` lists them all. A C++ exception must never unwind through a Postgres frame, and
// ereport(ERROR)'s longjmp must never skip a C++ destructor, so: run the C++ work inside a try, copy any
// exception's message into a plain buffer, leave the catch block, and only then raise the Postgres error
// (53200 out_of_memory for std::bad_alloc, XX000 otherwise).
//
// The rule for the other direction: a frame that calls Postgres (anything that can ereport) holds no C++
// object with a destructor. C++ objects live on the heap behind plain pointers (the worker's `state`) or
// inside the lambda passed to run_cpp, whose body calls nothing that can longjmp. Core calls that are
// noexcept and return plain values (views, numbers) may be made directly.
#pragma once

#include "core/cpp_failure.h"

#include <utility>

#include "pg/postgres_headers.h"

namespace segment_pg {

template <typename Work>
auto run_cpp(const char *what, Work &&work) -> decltype(work()) {
    segment::CppFailure failure;
    bool failed = false;
    try {
        return std::forward<Work>(work)();
    } catch (...) {
        failure = segment::describe_current_exception();
        failed = true;
    }
    // Outside every catch block: no C++ exception object or frame is live across the longjmp.
    if (failed) {
        ereport(ERROR, (errcode(failure.out_of_memory ? ERRCODE_OUT_OF_MEMORY : ERRCODE_INTERNAL_ERROR),
                        errmsg("%s failed: %s", what, failure.message)));
    }
    pg_unreachable();
}

}  // namespace segment_pg
