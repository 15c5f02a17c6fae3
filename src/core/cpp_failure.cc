// See cpp_failure.h.
#include "core/no_postgres.h"
#include "core/cpp_failure.h"

#include <cstdio>
#include <exception>
#include <new>

namespace segment {

CppFailure describe_current_exception() noexcept {
    CppFailure failure;
    try {
        throw;  // the exception being handled
    } catch (const std::bad_alloc &) {
        failure.out_of_memory = true;
        std::snprintf(failure.message, sizeof failure.message, "out of memory");
    } catch (const std::exception &error) {
        std::snprintf(failure.message, sizeof failure.message, "%s", error.what());
    } catch (...) {
        std::snprintf(failure.message, sizeof failure.message, "unknown C++ exception");
    }
    return failure;
}

}  // namespace segment
