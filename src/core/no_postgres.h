// Included first by every file in src/core: the core is pure C++17 and must never see a Postgres header.
// Postgres' macros (Min, Max, printf, ERROR) break RapidJSON and the standard library, and its longjmp-based
// errors must never cross a C++ frame; keeping the two worlds apart starts with the includes.
#pragma once

#ifdef POSTGRES_H
static_assert(false,
              "src/core must not include Postgres headers (postgres.h was included before a core header)");
#endif
