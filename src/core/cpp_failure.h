// What a caught C++ exception was, as plain data that outlives the catch block: the Postgres side (run_cpp in
// src/pg/cpp_guard.h) raises its error only after leaving the catch, with SQLSTATE 53200 (out_of_memory) for
// std::bad_alloc. Pure C++; never includes Postgres. It includes nothing at all, so unlike the other core
// headers it may come after the Postgres headers (cpp_guard.h includes it wherever it is used).
#pragma once

namespace segment {

struct CppFailure {
    bool out_of_memory = false;
    char message[256] = "";
};

// Call only inside a catch block: describes the exception being handled. Never throws.
CppFailure describe_current_exception() noexcept;

}  // namespace segment
